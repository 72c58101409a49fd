"""One message, parsed once into the fields the classifiers and label derivation use.

Parsing real mail must never fail: broken MIME, missing or unparsable dates, 8-bit and RFC 2047
headers, HTML-only bodies and huge attachments all occur in every mailbox. ``parse_mail`` reads
at most a bounded prefix of the message, decodes what it can, and leaves the rest empty.

How: the stdlib ``email`` parser costs 70-200 µs per message before any field is decoded (it
walks the message line by line in Python), which is most of the budget for classifying 2,000
messages a second. So this module splits the message itself with C-speed bytes operations: the
header block with one regular expression, MIME parts by searching for the boundary, and it decodes
only what it uses: the wanted header fields and the one text part that becomes the body. The
stdlib still does the fiddly parts (``getaddresses``, ``parsedate_tz``, ``binascii`` transfer
decodings); HTML turns into text in :mod:`commsproxy.classifier.html`.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses, parsedate_tz

from commsproxy.classifier.html import html_to_text

__all__ = [
    "BULK_HEADERS",
    "KEPT_HEADERS",
    "MAX_BODY_CHARS",
    "MAX_MESSAGE_BYTES",
    "Mail",
    "MailParseError",
    "decode_header_value",
    "parse_mail",
]

# Headers kept (lower-case names) because features or labels read them.
BULK_HEADERS = ("list-id", "list-unsubscribe", "precedence", "auto-submitted", "list-post")
KEPT_HEADERS = (
    *BULK_HEADERS,
    "importance",
    "x-priority",
    "priority",
    "x-msmail-priority",
    "content-type",
    "x-mailer",
    "return-path",
    "reply-to",  # where an auto-reply goes
    "x-auto-response-suppress",
)

# How much of a message is parsed, and how much body text is kept.
MAX_MESSAGE_BYTES = 512 * 1024
MAX_BODY_CHARS = 20_000


class MailParseError(ValueError):
    """The bytes are not a message at all (empty, or no header could be read)."""


@dataclass(frozen=True, slots=True)
class Mail:
    """A parsed message. Addresses are lower-case ``local@domain``; dates are aware, in UTC."""

    message_id: str | None  # "<...>", as in the header, stripped
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    date: datetime | None
    sender: str  # From address ("" if none)
    sender_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str  # decoded (RFC 2047), whitespace folded
    body: str  # text prefix: text/plain preferred, else HTML turned into text; quotes kept
    headers: Mapping[str, str] = field(default_factory=dict)  # KEPT_HEADERS present, decoded
    size: int = 0  # bytes of the whole message
    attachments: int = 0  # parts with a filename or Content-Disposition: attachment
    folder: str = ""  # the folder it was read from, relative to the mailbox root
    path: str | None = None  # where it was read from (file path or imap://...)
    # Whom the server delivered it to: Delivered-To, X-Original-To, Envelope-To and the "for"
    # of the newest Received (a Bcc or list copy names the user in none of To and Cc).
    envelope_to: tuple[str, ...] = ()

    @property
    def recipients(self) -> tuple[str, ...]:
        return self.to + self.cc

    @property
    def automatic(self) -> bool:
        """Sent by a machine (RFC 3834 ``Auto-Submitted`` other than "no"): an auto-reply,
        a report, a notice."""
        return self.headers.get("auto-submitted", "no").strip().lower() not in ("", "no")


# A header field and its continuation lines, in a block whose line ends are already b"\n".
# Names are printable ASCII without colon (RFC 5322 2.2); lines that are neither are skipped.
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*(?:\n[ \t].*)*)", re.MULTILINE)
_KEPT = tuple((name, name.encode()) for name in KEPT_HEADERS)
# One address in its common shapes, after separators, ending at a comma or the end.
_SIMPLE_ADDRESS = re.compile(
    r'[\s,]*(?:(?:"([^"\\]*)"|([^"<>,;:()\\@]*?))\s*<\s*([^<>\s"(),;:\\]*)\s*>\s*(?=,|\Z)'
    r'|([^<>\s"(),;:\\]+)\s*(?=,|\Z))'
)
_MSG_ID = re.compile(r"<[^>]+>")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)')
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")

# Charsets to read as something else: declared ASCII or unknown 8-bit is usually UTF-8 or
# cp1252 in practice; latin-1 mail routinely carries cp1252 quotes (HTML5 maps it the same way);
# GB2312 and GBK text is decodable as their superset GB18030.
_GUESS = None
_CHARSET_ALIASES: dict[str, str | None] = {
    "": _GUESS,
    "us-ascii": _GUESS,
    "ascii": _GUESS,
    "unknown-8bit": _GUESS,
    "x-unknown": _GUESS,
    "unknown": _GUESS,
    "default": _GUESS,
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
}

# MIME recursion bounds, so a hostile message cannot make parsing slow or deep.
_MAX_DEPTH = 10
_MAX_PARTS = 200
# Raw bytes of the chosen text part that are decoded: enough for MAX_BODY_CHARS of text even in
# base64 of 4-byte UTF-8, and for the markup that HTML wraps around its text.
_MAX_TEXT_PART_BYTES = 8 * MAX_BODY_CHARS


def parse_mail(
    data: bytes, *, folder: str = "", path: str | None = None, size: int | None = None
) -> Mail:
    """Parse raw RFC 822 bytes (only the first MAX_MESSAGE_BYTES are read).

    ``size`` is the size of the whole message when ``data`` is only its prefix (a file or IMAP
    fetch read partially); it defaults to ``len(data)``. Raises :class:`MailParseError` only when
    ``data`` has no header at all; everything else that is broken is read as well as it can be.
    """
    total = len(data) if size is None else size
    # One pass of C code makes every line end b"\n", so nothing below cares about CRLF.
    text = data[:MAX_MESSAGE_BYTES].replace(b"\r\n", b"\n").lstrip(b"\n")
    if text.startswith((b"From ", b">From ")):  # an mbox "From_" line, not a header
        text = text.partition(b"\n")[2]
    headers, body = _split_message(text)
    if not headers:
        raise MailParseError("no header fields" if text.strip() else "empty message")

    walk = _Walk()
    walk.part(headers, body, 0)
    sender_name, sender = _first_address(headers.get(b"from") or headers.get(b"sender"))
    message_ids = _ids(headers.get(b"message-id"))
    return Mail(
        message_id=message_ids[0] if message_ids else _bare_id(headers.get(b"message-id")),
        in_reply_to=_ids(headers.get(b"in-reply-to")),
        references=_ids(headers.get(b"references")),
        date=_date(headers.get(b"date")),
        sender=sender,
        sender_name=sender_name,
        to=_addresses(headers.get(b"to")),
        cc=_addresses(headers.get(b"cc")),
        subject=" ".join(decode_header_value(_header_text(headers.get(b"subject"))).split()),
        body=walk.body_text(),
        headers={
            name: " ".join(decode_header_value(_header_text(headers[key])).split())
            for name, key in _KEPT
            if key in headers
        },
        size=total,
        attachments=walk.attachments,
        folder=folder,
        path=path,
        envelope_to=_envelope_to(headers),
    )


# -- headers ---------------------------------------------------------------------------------


def _split_message(text: bytes) -> tuple[dict[bytes, bytes], bytes]:
    """Header fields (lower-case name → raw value, first wins; To/Cc joined) and the body."""
    if text.startswith(b"\n"):  # a MIME part without headers
        return {}, text[1:]
    end = text.find(b"\n\n")
    block, body = (text, b"") if end < 0 else (text[: end + 1], text[end + 2 :])
    headers: dict[bytes, bytes] = {}
    for name, value in _FIELD.findall(block):
        key = name.lower()
        if key not in headers:
            headers[key] = value
        elif key in _JOINED:  # repeated address headers all count
            headers[key] += b"," + value
    if headers and _FIELD.match(block) is None:
        # The block does not open with a field: this is text that happens to contain a colon
        # (or a body glued to no header), not a header block.
        return {}, text
    return headers, body


_ENVELOPE_HEADERS = (b"delivered-to", b"x-original-to", b"envelope-to", b"x-envelope-to")
_JOINED = frozenset((b"to", b"cc", *_ENVELOPE_HEADERS))
# Read from the raw bytes with one expression each: these fields hold bare addresses (qmail
# writes "Delivered-To: mailing list x@y"), and parsing them as address lists cost a tenth of
# a parse.
_BARE_ADDRESS = re.compile(rb'[^\s<>,;:"()@]+@[^\s<>,;:"()]+')
_RECEIVED_FOR = re.compile(rb"for\s+<?([^\s<>;@]+@[^\s<>;]+)>?\s*(?:;|$)")


def _envelope_to(headers: dict[bytes, bytes]) -> tuple[str, ...]:
    found: list[bytes] = []
    for key in _ENVELOPE_HEADERS:
        value = headers.get(key)
        if value:
            found.extend(_BARE_ADDRESS.findall(value))
    received = headers.get(b"received")  # the newest: the delivering server's
    if received:
        # The envelope's "for" ends the field, before the date: look there first.
        at = received.rfind(b"for")
        match = _RECEIVED_FOR.match(received, at) if at >= 0 else None
        if match is None and at >= 0:
            match = _RECEIVED_FOR.search(received)
        if match is not None:
            found.append(match.group(1))
    if not found:
        return ()
    return tuple(dict.fromkeys(a.decode("utf-8", "replace").lower() for a in found))


def _header_text(value: bytes | None) -> str:
    """Unfold a raw header value and decode raw 8-bit bytes (UTF-8, else cp1252)."""
    if not value:
        return ""
    value = value.replace(b"\n", b"").strip()
    if value.isascii():
        return value.decode("ascii")
    return _decode_guess(value)


def decode_header_value(value: str) -> str:
    """Decode RFC 2047 encoded words (``=?utf-8?Q?...?=``); other text is left as it is."""
    if "=?" not in value:
        return value
    out: list[str] = []
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        gap = value[pos : match.start()]
        # Whitespace between two encoded words is folding, not text (RFC 2047 6.2).
        if not (pos and gap.isspace()):
            out.append(gap)
        out.append(_decode_word(match))
        pos = match.end()
    out.append(value[pos:])
    return "".join(out)


def _decode_word(match: re.Match[str]) -> str:
    charset, encoding, encoded = match.groups()
    try:
        if encoding in "Bb":
            raw = binascii.a2b_base64(encoded + "=" * (-len(encoded) % 4))
        else:
            raw = binascii.a2b_qp(encoded.encode("latin-1", "replace"), header=True)
    except (binascii.Error, ValueError):
        return match.group(0)
    return _decode(raw, charset.partition("*")[0])  # "*" starts an RFC 2231 language tag


def _addresses(value: bytes | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(address for _, address in _address_pairs(_header_text(value)))


def _first_address(value: bytes | None) -> tuple[str, str]:
    """(display name, address) of the first address, ("", "") if there is none."""
    for name, address in _address_pairs(_header_text(value)) if value else ():
        return " ".join(decode_header_value(name).split()), address
    return "", ""


def _address_pairs(text: str) -> list[tuple[str, str]]:
    """(name, lower-case address) pairs; entries without a usable address are dropped.

    ``getaddresses`` is a character-by-character parser: it was 80% of the parse time on the
    Enron mail with its long recipient lists. The common shapes (``a@x``, ``Name <a@x>``,
    ``"Name" <a@x>``) are matched here with one expression each; a list with anything else
    (comments, groups, escapes, quoted local parts) goes to ``getaddresses`` whole.
    """
    pairs: list[tuple[str, str]] = []
    text = text.rstrip(", \t\n")
    pos, end = 0, len(text)
    while pos < end:
        match = _SIMPLE_ADDRESS.match(text, pos)
        if match is None:
            return [
                (name, address.lower())
                for name, address in getaddresses([text])
                if "@" in address and len(address.split()) == 1
            ]
        quoted, plain, angle, bare = match.groups()
        address = angle if angle is not None else bare
        if "@" in address:
            pairs.append((quoted if quoted is not None else plain or "", address.lower()))
        pos = match.end()
    return pairs


def _ids(value: bytes | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(_MSG_ID.findall(_header_text(value)))


def _bare_id(value: bytes | None) -> str | None:
    """A Message-ID written without angle brackets, bracketed; None if there is no usable one."""
    text = _header_text(value)
    text = text.strip("<>")
    return f"<{text}>" if text and len(text.split()) == 1 else None


# The Date most mail carries ("Mon, 07 Dec 2026 08:00:00 +0000", maybe a zone comment),
# read as parsedate_tz reads it; anything else goes to parsedate_tz.
_RFC5322_DATE = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(\d{1,2}) "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([1-9]\d{3}) "
    r"(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})(?: \([^()]*\))?",
    re.ASCII,
)
_MONTH_NUMBERS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def _date(value: bytes | None) -> datetime | None:
    if not value:
        return None
    text = _header_text(value)
    common = _RFC5322_DATE.fullmatch(text)
    if common is not None:
        day, name, year, hour, minute, second, sign, zone_h, zone_m = common.groups()
        parts: tuple[int, ...] = (int(year), _MONTH_NUMBERS[name], int(day), int(hour),
                                  int(minute), int(second))  # fmt: skip
        offset = (int(zone_h) * 3600 + int(zone_m) * 60) * (-1 if sign == "-" else 1)
        return _utc(parts, offset)
    return _parsed_date(text)


def _parsed_date(text: str) -> datetime | None:
    """A Date of any shape, read with the standard library."""
    try:
        parsed = parsedate_tz(text)
    except (TypeError, ValueError, IndexError):  # garbage the stdlib does not expect
        return None
    if parsed is None:
        return None
    return _utc(tuple(parsed[:6]), parsed[9] or 0)  # no zone or -0000: taken as UTC


def _utc(parts: tuple[int, ...], offset: int) -> datetime | None:
    """The time ``offset`` seconds east of UTC, in UTC (an offset of a day or more: UTC).

    Written as UTC less the offset: the same instant as converting from a zone of that offset,
    without making the zone (a third less time per message)."""
    year, month, day, hour, minute, second = parts
    if abs(offset) >= 86_400:
        offset = 0
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC) - timedelta(
            seconds=offset
        )
    except (ValueError, OverflowError):  # "Feb 30", hour 99, year 0, ...
        return None


# -- bodies ----------------------------------------------------------------------------------


def _params(value: bytes | None) -> tuple[str, dict[str, str]]:
    """``Content-Type``/``Content-Disposition`` → (lower-case value, {lower-case name: value})."""
    text = _header_text(value)
    head, _, rest = text.partition(";")
    params: dict[str, str] = {}
    if rest:
        for name, raw in _PARAM.findall(";" + rest):
            raw = raw.strip()
            if raw.startswith('"'):
                raw = raw[1:].removesuffix('"')
                if "\\" in raw:
                    raw = re.sub(r"\\(.)", r"\1", raw)
            params.setdefault(name.lower(), raw)
    return head.strip().lower(), params


class _Walk:
    """Walks the MIME tree once: finds the first text/plain and text/html, counts attachments."""

    __slots__ = ("attachments", "html", "parts", "plain")

    def __init__(self) -> None:
        self.plain: tuple[bytes, bytes | None, str] | None = None  # body, CTE, charset
        self.html: tuple[bytes, bytes | None, str] | None = None
        self.attachments = 0
        self.parts = 0

    def part(self, headers: dict[bytes, bytes], body: bytes, depth: int) -> None:
        self.parts += 1
        ctype, params = _params(headers.get(b"content-type"))
        disposition, dparams = _params(headers.get(b"content-disposition"))
        # A filename (or the older Content-Type "name") marks an attachment even when inline.
        if (
            disposition == "attachment"
            or any(key.startswith("filename") for key in dparams)
            or any(key.startswith("name") for key in params)
        ):
            self.attachments += 1
            return
        if ctype.startswith("multipart/"):
            boundary = params.get("boundary")
            pieces = (
                _split_multipart(body, boundary.encode("utf-8", "replace")) if boundary else None
            )
            if pieces is None:
                ctype = "text/plain"  # no usable boundary: read the body as text, as clients do
            elif self._may_descend(depth):
                for piece in pieces:
                    self.part(*_split_message(piece), depth + 1)
                return
        elif ctype == "message/rfc822":  # a forwarded message, inline: its text counts
            inner, inner_body = _split_message(body.lstrip(b"\n"))
            if inner and self._may_descend(depth):
                self.part(inner, inner_body, depth + 1)
            return
        if ctype in ("", "text/plain"):
            if self.plain is None:
                cte = headers.get(b"content-transfer-encoding")
                self.plain = (body, cte, params.get("charset", ""))
        elif ctype == "text/html" and self.html is None:
            cte = headers.get(b"content-transfer-encoding")
            self.html = (body, cte, params.get("charset", ""))

    def _may_descend(self, depth: int) -> bool:
        return depth < _MAX_DEPTH and self.parts < _MAX_PARTS

    def body_text(self) -> str:
        text = _decode_part(*self.plain).strip() if self.plain is not None else ""
        if not text and self.html is not None:  # HTML-only, or an empty text/plain alternative
            text = html_to_text(_decode_part(*self.html))
        return text[:MAX_BODY_CHARS]


def _split_multipart(body: bytes, boundary: bytes) -> list[bytes] | None:
    """The parts between ``--boundary`` lines; None when the boundary never occurs.

    A missing closing delimiter (a truncated or broken message) ends the last part at the end
    of the data, which is what a reader would see.
    """
    text = b"\n" + body
    delimiter = b"\n--" + boundary
    pos = _find_delimiter(text, delimiter, 0)
    if pos < 0:
        return None
    parts: list[bytes] = []
    while len(parts) < _MAX_PARTS:
        start = pos + len(delimiter)
        if text.startswith(b"--", start):  # the closing delimiter
            break
        line_end = text.find(b"\n", start)
        if line_end < 0:
            break
        pos = _find_delimiter(text, delimiter, line_end)
        if pos < 0:
            parts.append(text[line_end + 1 :])
            break
        parts.append(text[line_end + 1 : pos])
    return parts


def _find_delimiter(text: bytes, delimiter: bytes, start: int) -> int:
    """Position of the next delimiter line: "--b" must not match "--bb" or "--b-1" (nested)."""
    while True:
        pos = text.find(delimiter, start)
        if pos < 0:
            return -1
        after = text[pos + len(delimiter) : pos + len(delimiter) + 2]
        if after == b"--" or after[:1] in (b"", b"\n", b" ", b"\t", b"\r"):
            return pos
        start = pos + 1


def _decode_part(body: bytes, transfer_encoding: bytes | None, charset: str) -> str:
    raw = body[:_MAX_TEXT_PART_BYTES]
    cte = transfer_encoding.strip().lower() if transfer_encoding else b""
    if cte == b"base64":
        try:
            raw = binascii.a2b_base64(raw)
        except binascii.Error:
            # Bad padding or a truncated tail: keep the alphabet, whole 4-character groups only.
            clean = _NOT_BASE64.sub(b"", raw)
            raw = binascii.a2b_base64(clean[: len(clean) // 4 * 4])
    elif cte == b"quoted-printable":
        raw = binascii.a2b_qp(raw)
    return _decode(raw, charset)


def _decode(raw: bytes, charset: str) -> str:
    label = charset.strip().strip('"').lower()
    name = _CHARSET_ALIASES.get(label, label)
    if name is None:
        return _decode_guess(raw)
    try:
        return raw.decode(name, "replace")
    except (LookupError, ValueError):  # a charset Python does not know, or a garbled name
        return _decode_guess(raw)


def _decode_guess(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start >= len(raw) - 3:  # UTF-8 cut off mid-character by a size bound
            return raw.decode("utf-8", "replace")
        return raw.decode("cp1252", "replace")
