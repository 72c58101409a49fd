"""Reading mail trees from disk: Maildir(++), mbox, Enron-style trees, junk, broken files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from commsproxy.classifier.dataset import (
    ReadStats,
    is_sent_folder,
    iter_labelled_folders,
    iter_mailbox,
)
from commsproxy.classifier.mail import MAX_MESSAGE_BYTES


def message(subject: str, body: str = "hello") -> bytes:
    return (
        f"From: someone@example.com\nTo: me@example.com\nSubject: {subject}\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.com>\n\n{body}\n"
    ).encode()


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def mbox(*messages: bytes) -> bytes:
    return b"".join(
        b"From someone@example.com Thu Aug 22 12:36:23 2002\n" + m + b"\n" for m in messages
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """One person's mail in every layout at once, with the litter real trees have."""
    root = tmp_path / "mail"
    # A Maildir with Maildir++ subfolders, server index files and an unfinished delivery.
    write(root / "Maildir/cur/1700000001.M1.host:2,S", message("md cur"))
    write(root / "Maildir/new/1700000002.M2.host", message("md new"))
    write(root / "Maildir/tmp/1700000003.M3.host", message("md tmp, unfinished"))
    write(root / "Maildir/dovecot-uidlist", b"3 V1 N3\n")
    write(root / "Maildir/dovecot.index.log", b"\x00\x01")
    write(root / "Maildir/subscriptions", b"Sent\n")
    write(root / "Maildir/.Sent/cur/1700000004.M4.host:2,S", message("md sent"))
    write(root / "Maildir/.Sent/maildirfolder", b"")
    write(root / "Maildir/.Archive.2020/new/1700000005.M5.host", message("md archived"))
    write(root / "Maildir/.notmuch/xapian/record.glass", b"\x00not mail")
    # mbox files, one of them with the .mbox suffix and a message over the size bound.
    big = message("mbox big", body="x" * (MAX_MESSAGE_BYTES + 100_000))
    write(root / "mbox/Saved", mbox(message("mbox one"), message("mbox two")))
    write(root / "mbox/Sent.mbox", mbox(big))
    write(root / "mbox/Saved.msf", b"// thunderbird index")
    # The Enron CMU layout, with a nested folder, a broken file and a .DS_Store.
    for n in (1, 2, 10):
        write(root / f"enron/inbox/{n}.", message(f"enron inbox {n}"))
    write(root / "enron/inbox/3.", b"")  # empty: skipped
    write(root / "enron/inbox/4.", b"\x89PNG\r\n\x1a\n\x00\x00")  # not a message: skipped
    write(root / "enron/inbox/.DS_Store", b"\x00\x00\x00\x01Bud1")
    write(root / "enron/_sent_mail/1.", message("enron sent"))
    write(root / "enron/notes_inbox/sub/1.", message("enron nested"))
    write(root / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    return root


def test_reads_every_layout(tree: Path) -> None:
    stats = ReadStats()
    mails = list(iter_mailbox(tree, stats=stats))

    assert Counter(mail.folder for mail in mails) == {
        "Maildir": 2,
        "Maildir/Sent": 1,
        "Maildir/Archive/2020": 1,
        "mbox/Saved": 2,
        "mbox/Sent": 1,
        "enron/inbox": 3,
        "enron/_sent_mail": 1,
        "enron/notes_inbox/sub": 1,
    }
    assert stats.read == len(mails) == 12
    assert stats.skipped == 2
    assert any("enron/inbox/3." in reason for reason in stats.reasons)
    # .DS_Store x2, dovecot-uidlist, dovecot.index.log, subscriptions, maildirfolder, .msf
    assert stats.ignored == 7
    assert not any("tmp" in mail.subject for mail in mails)


def test_order_is_natural_and_deterministic(tree: Path) -> None:
    subjects = [m.subject for m in iter_mailbox(tree / "enron")]
    assert subjects == list(m.subject for m in iter_mailbox(tree / "enron"))
    inbox = [s for s in subjects if s.startswith("enron inbox")]
    assert inbox == ["enron inbox 1", "enron inbox 2", "enron inbox 10"]


def test_paths_and_sizes(tree: Path) -> None:
    mails = {m.subject: m for m in iter_mailbox(tree)}
    assert mails["enron sent"].path == str(tree / "enron/_sent_mail/1.")
    assert mails["mbox two"].path == f"{tree / 'mbox/Saved'}#2"
    big = mails["mbox big"]
    assert big.size > MAX_MESSAGE_BYTES + 100_000  # the whole message, though only a prefix read
    assert big.sender == "someone@example.com"


def test_maildir_at_the_root_is_the_inbox(tree: Path) -> None:
    folders = Counter(m.folder for m in iter_mailbox(tree / "Maildir"))
    assert folders == {"INBOX": 2, "Sent": 1, "Archive/2020": 1}


def test_a_single_file_as_root(tree: Path) -> None:
    (mail,) = iter_mailbox(tree / "enron/inbox/10.")
    assert (mail.subject, mail.folder) == ("enron inbox 10", "")
    assert [m.subject for m in iter_mailbox(tree / "mbox/Saved")] == ["mbox one", "mbox two"]


def test_missing_root_is_counted_not_raised(tmp_path: Path) -> None:
    stats = ReadStats()
    assert list(iter_mailbox(tmp_path / "nowhere", stats=stats)) == []
    assert stats.skipped == 1


def test_sent_folders_of_a_tree(tree: Path) -> None:
    stats = ReadStats()
    sent = {m.folder for m in iter_mailbox(tree, stats=stats) if stats.is_sent(m.folder)}
    assert sent == {"Maildir/Sent", "mbox/Sent", "enron/_sent_mail"}


def test_labelled_folders(tmp_path: Path) -> None:
    root = tmp_path / "accounts"
    write(root / "Acme/1", message("acme one"))
    write(root / "Acme/2", message("acme two"))
    write(root / "Globex/2023/inbox/1.", message("globex nested"))
    write(root / "Initech.mbox", mbox(message("initech")))
    write(root / ".hidden/1", message("hidden"))
    write(root / "README.md", b"# account folders\n")
    write(root / "Acme/.DS_Store", b"\x00")

    stats = ReadStats()
    pairs = [(label, m.subject, m.folder) for label, m in iter_labelled_folders(root, stats=stats)]
    assert pairs == [
        ("Acme", "acme one", "Acme"),
        ("Acme", "acme two", "Acme"),
        ("Globex", "globex nested", "Globex/2023/inbox"),
        ("Initech", "initech", "Initech"),
    ]
    assert (stats.read, stats.skipped, stats.ignored) == (4, 0, 1)


@pytest.mark.parametrize(
    ("name", "sent"),
    [
        ("sent", True),
        ("Sent", True),
        ("sent_items", True),
        ("_sent_mail", True),
        ("Sent Items", True),
        ("Sent Messages", True),
        ("INBOX.Sent", True),
        ("[Gmail]/Sent Mail", True),
        ("maildir/fossum-d/_sent_mail", True),
        ("Gesendete Objekte", True),
        ("inbox", False),
        ("INBOX", False),
        ("Sent/2020", False),  # a subfolder: its own name decides
        ("all_documents", False),
        ("discussion_threads", False),
        ("Consent forms", False),
        ("sentiment", False),
        ("", False),
    ],
)
def test_is_sent_folder_by_name(name: str, sent: bool) -> None:
    assert is_sent_folder(name) is sent


def test_is_sent_folder_by_special_use() -> None:
    assert is_sent_folder("Verschickt", ["\\HasNoChildren", "\\Sent"])
    assert is_sent_folder("Outgoing", ["\\sent"])
    assert not is_sent_folder("Outgoing", ["\\Archive"])
