"""Whether what a listener sent is proper protocol, and how the proxy process is doing.

IMAP: every line outside a literal is a continuation (``+``), untagged (``*``) or a tagged
``OK``/``NO``/``BAD``; literals the server announces (``{n}``) are skipped, never read as lines.
SMTP: every line is a reply, a three-digit code and words. Neither may carry a Python exception
name or traceback: that is the proxy talking about itself instead of the protocol.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# "UnicodeDecodeError", "KeyError", "Traceback", "Errno"; not Dovecot's "Error in IMAP command".
PYTHON_TALK = re.compile(
    rb"Traceback|\bErrno\b|\b[A-Z][A-Za-z]*(?:Error|Exception|Exit|Interrupt)\b|Error: \("
)
_IMAP_LINE = re.compile(rb"\+(?: .*)?|\* .+|[\x21-\x7e]+ (?:OK|NO|BAD)(?: .*)?", re.DOTALL)
_LITERAL_AT_END = re.compile(rb"~?\{(\d+)\}$")
# 334 carries a base64 challenge, which may be empty. Other replies may quote what the client
# sent (aiosmtpd: 'command "\x00" not recognized'), bytes and all.
_SMTP_LINE = re.compile(rb"334 [A-Za-z0-9+/=]*|[2-5]\d\d[ -][^\n]*[A-Za-z]{2}[^\n]*")


def imap_lines(data: bytes) -> list[bytes]:
    """The lines of a server's IMAP stream, without CRLF, skipping announced literals.

    A line cut off by the end of the connection is left out.
    """
    lines: list[bytes] = []
    at = 0
    while (end := data.find(b"\r\n", at)) >= 0:
        line = data[at:end]
        lines.append(line)
        at = end + 2
        literal = _LITERAL_AT_END.search(line)
        if literal is not None:
            at += int(literal.group(1))
    return lines


def imap_problems(data: bytes) -> list[str]:
    """Lines in a server's IMAP stream that are not proper IMAP responses."""
    problems = []
    for line in imap_lines(data):
        if not _IMAP_LINE.fullmatch(line):
            problems.append(f"not an IMAP response: {line!r:.300}")
        elif PYTHON_TALK.search(line):
            problems.append(f"Python internals in a response: {line!r:.300}")
    return problems


def smtp_problems(data: bytes) -> list[str]:
    """Lines in an SMTP server's stream that are not proper replies (code and words)."""
    problems = []
    lines = data.split(b"\r\n")[:-1]  # the last one is cut off, or empty
    for line in lines:
        if not _SMTP_LINE.fullmatch(line):
            problems.append(f"not an SMTP reply: {line!r:.300}")
        elif PYTHON_TALK.search(line):
            problems.append(f"Python internals in a reply: {line!r:.300}")
    return problems


def rss_kib(pid: int) -> int:
    """The resident memory of process ``pid`` (VmRSS), in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None, status
    return int(match.group(1))


def log_problems(lines: list[str]) -> list[str]:
    """Log lines that show the proxy failed in itself rather than refused bad input."""
    return [line for line in lines if "Traceback" in line or re.search(r"\bERROR\b", line)]


def upstream_connections(pid: int, port: int) -> int:
    """How many established TCP connections process ``pid`` has to ``port`` (from /proc)."""
    inodes = set()
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for row in path.read_text().splitlines()[1:]:
            fields = row.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count
