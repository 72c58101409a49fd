"""The target of a fuzzing run: one ``commsproxy run`` process in front of the test Dovecot.

It keeps what every example must leave intact: the process is up, its log has no traceback or
ERROR line, its memory stays under a ceiling and does not keep growing from batch to batch, and
a normal mail program can still read a known message (imaplib) and send one that arrives at the
relay target (smtplib).
"""

from __future__ import annotations

import imaplib
import os
import re
import smtplib
import time
import uuid
from dataclasses import dataclass, field

from tests.fuzzing.checks import log_problems, rss_kib, upstream_connections
from tests.integration.helpers import message
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess

# A fixed, derandomized run by default; COMMSPROXY_FUZZ_EXAMPLES=N asks for N random examples.
LONG_RUN = bool(os.environ.get("COMMSPROXY_FUZZ_EXAMPLES"))
# Examples between two checks of memory and of a normal client.
BATCH = 25
# Far above the proxy's resident size at rest; a leak per session would pass it in a long run.
RSS_CEILING_MIB = 400
# Growth allowed from the first batch to the last (allocator arenas settle in the first ones).
RSS_GROWTH_MIB = 48


def examples(default: int) -> int:
    return int(os.environ.get("COMMSPROXY_FUZZ_EXAMPLES") or default)


@dataclass
class Target:
    proxy: ProxyProcess
    dovecot: Dovecot
    user: tuple[str, str]  # the fuzzed sessions log in as this user
    reader: tuple[str, str]  # the normal client's user, with one known message
    subject: str
    played: int = 0
    rss_mib: list[float] = field(default_factory=list)
    _log_seen: int = 0

    @classmethod
    def start(cls, proxy: ProxyProcess, dovecot: Dovecot) -> Target:
        reader = dovecot.new_user()
        subject = f"known {uuid.uuid4().hex[:12]}"
        dovecot.deliver(reader[0], message(subject))
        return cls(proxy, dovecot, dovecot.new_user(), reader, subject)

    def after_example(self, imap_port: int | None = None) -> list[str]:
        """What is wrong with the process after one example; every BATCH, the full check.

        ``imap_port``: the example's IMAP client port, whose session must end first.
        """
        self.played += 1
        problems = self.imap_settled(imap_port) if imap_port is not None else []
        problems += self.upstream_released()
        problems += self.process_problems()
        if not problems and self.played % BATCH == 0:
            problems = self.batch_problems()
        return problems

    def imap_settled(self, client_port: int, timeout: float = 5.0) -> list[str]:
        """Wait until the proxy logs the end of the IMAP session from ``client_port``.

        This keeps what the log says about a session with the example that caused it. A
        session that never logs its end did not end cleanly: that is a finding itself.
        """
        opened = re.compile(rf"(imap#\d+): client 127\.0\.0\.1:{client_port} connected")
        deadline = time.monotonic() + timeout
        while True:
            lines = self.proxy.lines()
            names = [m.group(1) for line in lines if (m := opened.search(line))]
            if not names:  # refused before a session began, or not logged yet
                if time.monotonic() > deadline:
                    return []
            elif any(f"{names[-1]}: closed (" in line for line in lines):
                return []
            if time.monotonic() > deadline or self.proxy.returncode is not None:
                return [f"{names[-1]} did not end within {timeout:g} s after the client left"]
            time.sleep(0.02)

    def upstream_released(self, timeout: float = 5.0) -> list[str]:
        """Once its client has left, the proxy keeps no connection upstream (triage is off)."""
        ports = {"IMAP": self.dovecot.imaps_port, "SMTP": self.dovecot.submission_port}
        deadline = time.monotonic() + timeout
        while True:
            held = {k: upstream_connections(self.proxy.pid, p) for k, p in ports.items()}
            if not any(held.values()):
                return []
            if time.monotonic() > deadline or self.proxy.returncode is not None:
                return [f"{n} {kind} upstream connection(s) still open {timeout:g} s after the "
                        "client left" for kind, n in held.items() if n]  # fmt: skip
            time.sleep(0.02)

    def process_problems(self) -> list[str]:
        if self.proxy.returncode is not None:
            return [f"commsproxy exited with {self.proxy.returncode}:\n{self.proxy.log_text()}"]
        lines = self.proxy.lines()
        new, self._log_seen = lines[self._log_seen :], len(lines)
        bad = log_problems(new)
        if not bad:
            return []
        # The whole stretch, so the traceback's own lines say what failed.
        return [f"log: {line}" for line in bad] + ["log since the last example:", *new[-60:]]

    def batch_problems(self) -> list[str]:
        problems = []
        rss = rss_kib(self.proxy.pid) / 1024
        self.rss_mib.append(rss)
        if rss > RSS_CEILING_MIB:
            problems.append(f"commsproxy uses {rss:.0f} MiB (ceiling {RSS_CEILING_MIB})")
        if len(self.rss_mib) > 1 and rss - self.rss_mib[0] > RSS_GROWTH_MIB:
            problems.append(f"commsproxy grew from {self.rss_mib[0]:.0f} to {rss:.0f} MiB")
        problems += self.client_problems()
        return problems + self.process_problems()

    def client_problems(self) -> list[str]:
        """A normal IMAP and SMTP client still work through the proxy."""
        problems = []
        try:
            with imaplib.IMAP4("127.0.0.1", self.proxy.imap_port, timeout=30) as imap:
                imap.login(*self.reader)
                imap.select("INBOX")
                typ, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                if typ != "OK" or self.subject.encode() not in repr(data).encode():
                    problems.append(f"imaplib could not read the known message: {typ} {data!r}")
        except (imaplib.IMAP4.error, OSError) as err:
            problems.append(f"imaplib failed: {err!r}")
        token = uuid.uuid4().hex
        body = message(f"check {token}")
        address = f"{self.reader[0]}@localhost"
        try:
            with smtplib.SMTP("127.0.0.1", self.proxy.smtp_port, timeout=30) as smtp:
                smtp.login(*self.reader)
                smtp.sendmail(address, [address], body)
        except (smtplib.SMTPException, OSError) as err:
            return [*problems, f"smtplib failed: {err!r}"]
        deadline = time.monotonic() + 15
        while not any(token.encode() in m for m in self.dovecot.relay_captured()):
            if time.monotonic() > deadline:
                problems.append("a message sent with smtplib never reached the relay target")
                break
            time.sleep(0.05)
        return problems

    def final_problems(self) -> list[str]:
        """After the whole run: one more full check, and memory that did not keep growing."""
        return self.batch_problems()
