"""Reading a person's mail from disk: Maildir, mbox and one-file-per-message trees.

``train`` and ``classify`` read whatever a user or a corpus has lying around, so each directory
is recognised by its shape rather than configured: a directory with ``cur/`` or ``new/`` is a
Maildir (with Maildir++ subfolders ``.Sent`` etc.), a file that opens with an mbox ``From_`` line
is an mbox, and any other directory is a tree of one message per file (the Enron layouts
``<user>/<folder>/<n>.`` and ``<user>/<folder>/<n>``, MH, a folder of ``.eml`` files).

Real mailboxes hold broken messages and files that are not mail at all. Neither stops a run: a
message that cannot be read or parsed is skipped and counted in :class:`ReadStats`, and index
files, ``.DS_Store`` and the like are recognised by name and ignored. Files are read in a fixed
(natural) order and at most ``MAX_MESSAGE_BYTES`` of each, so results are deterministic and a
100 MB attachment costs no more than a short message.
"""

from __future__ import annotations

import mailbox
import os
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from commsproxy.classifier.mail import MAX_MESSAGE_BYTES, Mail, MailParseError, parse_mail

__all__ = [
    "ReadStats",
    "extract_archive",
    "is_sent_folder",
    "iter_labelled_folders",
    "iter_mailbox",
]

# How many skip reasons ReadStats keeps as examples.
_MAX_REASONS = 5

# Sent folders by name, compared on the last path component, lower-case, without "_", "-" and
# spaces. Besides the English names of Outlook, Apple Mail, Gmail, Thunderbird and Enron's
# exports, the localised names the common clients create.
_SENT_NAMES = frozenset(
    {
        "sent",
        "sentitems",
        "sentmail",
        "sentmessages",
        "sentbox",
        "gesendet",
        "gesendeteobjekte",
        "gesendeteelemente",
        "envoyés",
        "élémentsenvoyés",
        "messagesenvoyés",
        "enviados",
        "elementosenviados",
        "postainviata",
        "inviati",
        "verzonden",
        "verzondenitems",
        "skickat",
        "skickadeobjekt",
        "sendt",
        "sendteelementer",
    }
)
_SENT_SEPARATORS = re.compile(r"[\s_\-]+")

# Files that sit beside mail and are not mail: mail-server indexes, client state, OS litter.
_JUNK_NAMES = frozenset(
    {
        "maildirfolder",
        "maildirsize",
        "subscriptions",
        "thumbs.db",
        "desktop.ini",
        "readme",
        "readme.md",
        "readme.txt",
    }
)
_JUNK_PREFIXES = ("dovecot", "courierimap", ".")
_JUNK_SUFFIXES = (
    *(".msf", ".lock", ".idx", ".index", ".db", ".sqlite", ".json", ".log", ".toc"),
    *(".md", ".tsv", ".csv"),
)
_MBOX_SUFFIXES = (".mbox", ".mbx")
# Names of one-message files even when they open with a "From_" line (SpamAssassin corpus).
_MESSAGE_NAME = re.compile(r"\d+\.?(?:[\w,:=.-]*)|.*\.eml", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")


@dataclass
class ReadStats:
    """What a read found: filled in while the iterator runs, complete when it is exhausted.

    ``special_use`` maps a folder name to its IMAP special-use attributes (``\\Sent``,
    ``\\Archive``...), filled in by :func:`~commsproxy.classifier.imap_source.read_imap` before
    the first message; it stays empty for files, where folder names are all there is.
    """

    read: int = 0  # messages parsed and yielded
    skipped: int = 0  # messages (or files) that could not be read or parsed
    ignored: int = 0  # files that are not mail by their name (indexes, .DS_Store, ...)
    reasons: list[str] = field(default_factory=list)  # the first few skip reasons
    special_use: dict[str, frozenset[str]] = field(default_factory=dict)

    def skip(self, where: str, reason: str) -> None:
        self.skipped += 1
        if len(self.reasons) < _MAX_REASONS:
            self.reasons.append(f"{where}: {reason}")

    def is_sent(self, folder: str) -> bool:
        """Whether ``folder`` holds the user's sent mail, by special-use or by name."""
        return is_sent_folder(folder, self.special_use.get(folder, ()))


def is_sent_folder(name: str, special_use: Iterable[str] = ()) -> bool:
    """Whether a folder holds sent mail: IMAP ``\\Sent``, else its name.

    The name test looks at the last component (``[Gmail]/Sent Mail``, ``INBOX.Sent``,
    ``maildir/fossum-d/_sent_mail``), ignoring case, spaces, ``_`` and ``-``.
    """
    if any(flag.lower() == "\\sent" for flag in special_use):
        return True
    last = re.split(r"[/\\.]", name.rstrip("/"))[-1]
    return _SENT_SEPARATORS.sub("", last.lower()) in _SENT_NAMES


def iter_mailbox(root: Path, *, stats: ReadStats | None = None) -> Iterator[Mail]:
    """Every message under ``root`` (a directory tree, an mbox file or one message file).

    ``Mail.folder`` is the folder relative to ``root`` with "/" between levels ("inbox",
    "sent_items", "Sent/2020"); the messages of a Maildir at ``root`` itself are in "INBOX"
    (the Maildir++ convention), of loose files directly in ``root`` in "". Pass ``stats`` to
    learn how many messages were read, skipped and ignored.
    """
    stats = ReadStats() if stats is None else stats
    root = Path(root)
    if root.is_dir():
        yield from _walk(root, "", stats)
    else:
        yield from _file(root, "", stats)


def iter_labelled_folders(
    root: Path, *, stats: ReadStats | None = None
) -> Iterator[tuple[str, Mail]]:
    """``(label, mail)`` for training the accounts model: each folder in ``root`` is a label.

    Each immediate subdirectory of ``root`` (or mbox file, as Thunderbird keeps folders) is one
    label, named as it is; every message inside it, at any depth, is an example of that label.
    ``Mail.folder`` is relative to ``root``, so it starts with the label.
    """
    stats = ReadStats() if stats is None else stats
    for entry in _entries(Path(root)):
        if _is_hidden(entry.name):
            continue
        if entry.is_dir(follow_symlinks=False):
            label = entry.name
            mails = _walk(Path(entry.path), label, stats)
        elif entry.is_file() and not _is_junk(entry.name) and _is_mbox(Path(entry.path)):
            label = _mbox_folder(entry.name)
            mails = _mbox(Path(entry.path), label, stats)
        else:
            continue
        for mail in mails:
            yield label, mail


# -- walking ---------------------------------------------------------------------------------


def _walk(directory: Path, folder: str, stats: ReadStats) -> Iterator[Mail]:
    # Symlinked directories are not followed: a link back up the tree would never end.
    entries = _entries(directory, stats)
    dirs = {entry.name: entry for entry in entries if entry.is_dir(follow_symlinks=False)}
    if "cur" in dirs or "new" in dirs:
        # Files beside cur/ and new/ are the server's (dovecot-uidlist, maildirfolder, ...).
        stats.ignored += sum(1 for entry in entries if entry.name not in dirs)
        yield from _maildir(directory, folder, dirs, stats)
        return
    for entry in entries:
        if entry.name in dirs:
            if not _is_hidden(entry.name):
                yield from _walk(Path(entry.path), _join(folder, entry.name), stats)
        elif entry.is_file():
            yield from _file(Path(entry.path), folder, stats)


def _maildir(
    directory: Path, folder: str, dirs: dict[str, os.DirEntry[str]], stats: ReadStats
) -> Iterator[Mail]:
    """A Maildir: cur/ and new/ (tmp/ holds unfinished deliveries), then its subfolders."""
    own = folder or "INBOX"
    for sub in ("cur", "new"):
        if sub in dirs:
            for entry in _entries(Path(dirs[sub].path), stats):
                if entry.is_file():
                    yield from _message_file(Path(entry.path), own, stats)
    for name, entry in dirs.items():
        if name in ("cur", "new", "tmp"):
            continue
        if _is_hidden(name):
            # Maildir++: ".Sent", ".Archive.2020" are the folders Sent and Archive/2020; other
            # hidden directories (.notmuch, .git) are not mail.
            if not any((Path(entry.path) / sub).is_dir() for sub in ("cur", "new")):
                continue
            sub_folder = _join(folder, name[1:].replace(".", "/"))
        else:  # Dovecot LAYOUT=fs and mbsync SubFolders Verbatim nest plain directories
            sub_folder = _join(folder, name)
        yield from _walk(Path(entry.path), sub_folder, stats)


def _file(path: Path, folder: str, stats: ReadStats) -> Iterator[Mail]:
    """A loose file: an mbox, a message, or something that is not mail."""
    if _is_junk(path.name):
        stats.ignored += 1
    elif not _MESSAGE_NAME.fullmatch(path.name) and _is_mbox(path):
        yield from _mbox(path, _join(folder, _mbox_folder(path.name)), stats)
    else:
        yield from _message_file(path, folder, stats)


def _message_file(path: Path, folder: str, stats: ReadStats) -> Iterator[Mail]:
    if _is_junk(path.name):
        stats.ignored += 1
        return
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            # read(n) allocates n bytes first: ask for no more than the file holds.
            data = handle.read(min(size, MAX_MESSAGE_BYTES) or MAX_MESSAGE_BYTES)
        mail = parse_mail(data, folder=folder, path=str(path), size=size)
    except (OSError, MailParseError) as err:
        stats.skip(str(path), str(err))
        return
    stats.read += 1
    yield mail


def _mbox(path: Path, folder: str, stats: ReadStats) -> Iterator[Mail]:
    try:
        box = mailbox.mbox(path, create=False)
        keys = box.keys()  # indexes the file: one pass, line by line, bounded memory
    except (OSError, mailbox.Error) as err:
        stats.skip(str(path), f"unreadable mbox: {err}")
        return
    try:
        for number, key in enumerate(keys, 1):
            where = f"{path}#{number}"
            try:
                # get_file reads a window of the mbox: a huge message is never loaded whole.
                with box.get_file(key) as handle:
                    data = handle.read(MAX_MESSAGE_BYTES)
                    handle.seek(0, os.SEEK_END)
                    size = handle.tell()
                mail = parse_mail(data, folder=folder, path=where, size=size)
            except (OSError, MailParseError) as err:
                stats.skip(where, str(err))
                continue
            stats.read += 1
            yield mail
    finally:
        box.close()


# -- names -----------------------------------------------------------------------------------


def _entries(directory: Path, stats: ReadStats | None = None) -> list[os.DirEntry[str]]:
    """Directory entries in natural order ("2." before "10."), so every run reads alike."""
    try:
        with os.scandir(directory) as scan:
            entries = list(scan)
    except OSError as err:
        if stats is not None:
            stats.skip(str(directory), f"unreadable directory: {err}")
        return []
    return sorted(entries, key=lambda entry: _DIGITS.sub(_pad, entry.name))


def _pad(match: re.Match[str]) -> str:
    return match.group().zfill(20)


def _is_mbox(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(5) == b"From "
    except OSError:
        return False


def _mbox_folder(name: str) -> str:
    for suffix in _MBOX_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def _is_junk(name: str) -> bool:
    lower = name.lower()
    return (
        lower in _JUNK_NAMES or lower.startswith(_JUNK_PREFIXES) or lower.endswith(_JUNK_SUFFIXES)
    )


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _join(folder: str, name: str) -> str:
    # Thunderbird keeps the subfolders of "Inbox" in a directory "Inbox.sbd".
    name = name.removesuffix(".sbd")
    return f"{folder}/{name}" if folder else name


def extract_archive(archive: tarfile.TarFile, into: Path) -> None:
    """Unpack a corpus archive, refusing members that would land outside ``into`` or link out.

    Python 3.11.4 and later do this with ``filter="data"``; earlier 3.11 releases (Debian 12's)
    get the same checks here.
    """
    if hasattr(tarfile, "data_filter"):
        archive.extractall(into, filter="data")
        return
    root = into.resolve()
    for member in archive.getmembers():
        inside = (into / member.name).resolve().is_relative_to(root)
        if not inside or member.issym() or member.islnk() or member.isdev():
            raise ValueError(f"unsafe member in {archive.name!r}: {member.name}")
    archive.extractall(into)  # noqa: S202  (every member checked above)
