"""The user's sender rules, ``[triage] vip`` and ``[triage] never_urgent``, edited in place.

``commsproxy urgent always|never|forget`` and the local page's buttons change the config file
the user wrote, so the edit keeps everything else as it was: comments, blank lines, key order
and quoting (tomlkit), and only the one list changes. A missing ``[triage]`` table or key is
added (a key next to its commented-out example when the file has one, as ``commsproxy init``
writes). A sender is in at most one list: adding it to one takes it out of the other.

The edited text is checked the way ``run`` reads it (config.parse_config_text) before it
replaces the file, owner-only and by a rename (private_files.py), so a file with errors, before
or after the edit, is never written; the error names file, line and key.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import Array, Comment, Table

from .config import ConfigError, parse_config_text
from .private_files import write_private_text

__all__ = [
    "LISTS",
    "RuleChange",
    "SenderRuleError",
    "Want",
    "change_sender_rule",
    "normalize_pattern",
    "sender_lists",
]

#: The two lists, in the config's own words.
VIP = "vip"
NEVER = "never_urgent"
LISTS = (VIP, NEVER)

#: always: into ``vip``; never: into ``never_urgent``; forget: out of both.
Want = Literal["always", "never", "forget"]

_LINE = 100  # a longer one-line list is written one entry a line

# The same check as config.py's _VIP: an address, or "*@domain".
_PATTERN = re.compile(r"^(\*|[^\s@*]+)@[^\s@*.]+(\.[^\s@*.]+)*$")


class SenderRuleError(ValueError):
    """The rule cannot be changed; the message says why (a bad pattern, a config error)."""


@dataclass(frozen=True)
class RuleChange:
    pattern: str  # lower-cased
    now_in: str | None  # "vip", "never_urgent", or None (forgotten)
    added: bool  # it was not in ``now_in`` before
    removed_from: tuple[str, ...]  # the lists it was taken out of
    path: Path

    @property
    def changed(self) -> bool:
        return self.added or bool(self.removed_from)

    def words(self) -> str:
        """What happened, in words, for the CLI and the page."""
        p = self.pattern
        if self.now_in == VIP:
            head = f"{p} is always urgent now" if self.added else f"{p} was always urgent already"
        elif self.now_in == NEVER:
            head = f"{p} is never urgent now" if self.added else f"{p} was never urgent already"
        elif self.removed_from:
            head = f"{p} has no rule now: the model decides"
        else:
            head = f"{p} had no rule: nothing to forget"
        if self.removed_from and self.now_in is not None:
            head += f" (taken out of [triage] {', '.join(self.removed_from)})"
        return head + (f"; {self.path} saved" if self.changed else "")


def normalize_pattern(text: str) -> str:
    """``text`` as a rule's pattern (lower-cased), or SenderRuleError saying what is expected."""
    pattern = text.strip().lower()
    if pattern.startswith("<") and pattern.endswith(">"):
        pattern = pattern[1:-1].strip()
    if not _PATTERN.match(pattern):
        raise SenderRuleError(
            f'{text!r} is not a sender pattern: expected an address ("boss@example.com") '
            'or "*@domain" (every sender of that domain and its subdomains)'
        )
    return pattern


def sender_lists(path: Path) -> dict[str, tuple[str, ...]]:
    """The two lists as the config at ``path`` says them (checked like ``run`` reads them)."""
    config = _checked(path, _read(path))
    return {VIP: config.triage.vip, NEVER: config.triage.never_urgent}


def change_sender_rule(path: Path, pattern: str, want: Want) -> RuleChange:
    """Put ``pattern`` into the list ``want`` names (or out of both), saving ``path``.

    Raises SenderRuleError for a bad pattern or a config with errors (the file untouched).
    """
    pattern = normalize_pattern(pattern)
    path = path.expanduser().resolve()  # a symlinked config: edit the file it points at
    before = _read(path)
    _checked(path, before)  # never write over a file run would refuse
    try:
        document = tomlkit.parse(before)
    except TOMLKitError as err:  # parse_config_text accepted it: tomlkit should too
        raise SenderRuleError(f"{path}: cannot edit this file: {err}") from None
    target = {"always": VIP, "never": NEVER, "forget": None}[want]
    table = _triage_table(document, create=target is not None)
    removed: list[str] = []
    added = False
    for name in LISTS:
        if name == target or table is None:
            continue
        if _remove(table, name, pattern):
            removed.append(name)
    if target is not None and table is not None:
        added = _add(table, target, pattern)
    change = RuleChange(pattern, target, added, tuple(removed), path)
    if not change.changed:
        return change
    after = tomlkit.dumps(document)
    if "\r\n" in before:  # the lines tomlkit added end as the file's own do
        after = re.sub(r"(?<!\r)\n", "\r\n", after)
    _checked(path, after)
    write_private_text(path, after)
    return change


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")  # as it is: CRLF line ends stay
    except FileNotFoundError:
        raise SenderRuleError(
            f"{path}: no config file there (write one with `commsproxy init`)"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise SenderRuleError(f"{path}: cannot read: {err}") from None


def _checked(path: Path, text: str) -> Any:
    try:
        return parse_config_text(path, text)
    except ConfigError as err:
        raise SenderRuleError(f"the config has errors, so it was left as it is: {err}") from None


def _triage_table(document: tomlkit.TOMLDocument, *, create: bool) -> Any:
    """The ``[triage]`` table (a dotted ``triage.vip`` works too), added when missing."""
    if "triage" in document:
        return document["triage"]
    if not create:
        return None
    table = tomlkit.table()
    document.append("triage", table)
    return table


def _entries(array: Any) -> list[str]:
    return [str(item).strip().lower() for item in array]


def _remove(table: Any, key: str, pattern: str) -> bool:
    if key not in table:
        return False
    array = table[key]
    found = [i for i, entry in enumerate(_entries(array)) if entry == pattern]
    for index in reversed(found):
        del array[index]
    return bool(found)


def _add(table: Any, key: str, pattern: str) -> bool:
    if key in table:
        array = table[key]
        if pattern in _entries(array):
            return False
        array.append(pattern)
        _wrap(key, array)
        return True
    array = tomlkit.array()
    array.append(pattern)
    _insert_key(table, key, array)
    return True


def _wrap(key: str, array: Array) -> None:
    """A one-line list that grew past the line length goes one sender a line (as a
    multi-line list the user wrote stays)."""
    text = array.as_string()
    if "\n" not in text and len(key) + 3 + len(text) > _LINE:
        array.multiline(True)


def _insert_key(table: Any, key: str, value: Array) -> None:
    """Add ``key`` where a reader looks for it: after its commented-out example (``# vip =``),
    else after the other list, else after the table's last key; never after the comments that
    end the table (they belong to what follows)."""
    if not isinstance(table, Table):  # a dotted or inline table: tomlkit places it well
        table[key] = value
        return
    body = table.value.body
    keys = [i for i, (k, _) in enumerate(body) if k is not None]
    sibling = [i for i, (k, _) in enumerate(body) if k is not None and k.key in LISTS]
    after = (_examples(body, [key]) or sibling or _examples(body, LISTS) or keys or [-1])[-1]
    if after + 1 < len(body):
        table.value._insert_at(after + 1, key, value)
    else:
        table.append(key, value)


def _examples(body: list[tuple[Any, Any]], keys: Sequence[str]) -> list[int]:
    """Where the table's comments show one of ``keys`` commented out (``# vip = [...]``)."""
    example = re.compile(rf"^#\s*({'|'.join(map(re.escape, keys))})\s*=")
    return [
        i for i, (k, item) in enumerate(body)
        if k is None and isinstance(item, Comment) and example.match(item.as_string().strip())
    ]  # fmt: skip
