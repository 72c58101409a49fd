"""The no-flicker gate's bookkeeping: what a paused INBOX session's client gets to see."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commsproxy.proxy.imap.inbox_view import InboxView, Rewritten

OWN = frozenset({"cp1", "cp2"})


def msg(*chunks: bytes) -> list[bytes]:
    """One framed response: its first line (with CRLF) and any literal chunks after it."""
    return list(chunks)


def lines(*first_lines: bytes) -> list[list[bytes]]:
    return [[line] for line in first_lines]


def view(known: int, total: int | None = None) -> InboxView:
    return InboxView(known=known, total=known if total is None else total)


# -- wants_pause / forwarded_expunge -----------------------------------------------------------


def test_first_exists_after_select_sets_known_without_pausing() -> None:
    inbox = InboxView()
    assert inbox.wants_pause(4) is False
    assert (inbox.known, inbox.total) == (4, 4)


def test_first_exists_of_empty_mailbox() -> None:
    inbox = InboxView()
    assert inbox.wants_pause(0) is False
    assert (inbox.known, inbox.total) == (0, 0)
    assert inbox.wants_pause(1) is True


def test_exists_above_known_pauses_and_leaves_counts() -> None:
    inbox = view(4)
    assert inbox.wants_pause(5) is True
    assert (inbox.known, inbox.total) == (4, 4)


@pytest.mark.parametrize("exists", [4, 3, 0])
def test_exists_not_above_known_does_not_pause(exists: int) -> None:
    inbox = view(4)
    assert inbox.wants_pause(exists) is False
    assert (inbox.known, inbox.total) == (exists, exists)


def test_forwarded_expunge_counts_down() -> None:
    inbox = view(4)
    inbox.forwarded_expunge()
    assert (inbox.known, inbox.total) == (3, 3)
    inbox.forwarded_expunge(2)
    assert (inbox.known, inbox.total) == (1, 1)
    inbox.forwarded_expunge(5)
    assert (inbox.known, inbox.total) == (0, 0)


def test_forwarded_expunge_before_select_is_ignored() -> None:
    inbox = InboxView()
    inbox.forwarded_expunge()
    assert (inbox.known, inbox.total) == (None, None)


def test_after_forwarded_expunge_a_new_exists_pauses() -> None:
    inbox = view(4)
    inbox.forwarded_expunge()
    assert inbox.wants_pause(4) is True


# -- rewrite: new mail ---------------------------------------------------------------------------


def test_new_mail_fully_held_is_invisible() -> None:
    inbox = view(4)
    assert inbox.wants_pause(5)
    out = inbox.rewrite(lines(b"* 5 EXISTS\r\n", b"* 5 EXPUNGE\r\n"), OWN)
    assert out == Rewritten([], 1)
    assert (inbox.known, inbox.total) == (4, 4)


def test_new_mail_partly_held_gets_one_exists() -> None:
    inbox = view(4)
    assert inbox.wants_pause(7)
    out = inbox.rewrite(lines(b"* 7 EXISTS\r\n", b"* 6 EXPUNGE\r\n", b"* 5 EXPUNGE\r\n"), OWN)
    assert out == Rewritten([b"* 5 EXISTS\r\n"], 2)
    assert (inbox.known, inbox.total) == (5, 5)


def test_new_mail_none_held() -> None:
    inbox = view(4)
    out = inbox.rewrite(lines(b"* 6 EXISTS\r\n"), OWN)
    assert out == Rewritten([b"* 6 EXISTS\r\n"], 0)
    assert (inbox.known, inbox.total) == (6, 6)


def test_several_exists_lines_give_one() -> None:
    inbox = view(2)
    out = inbox.rewrite(lines(b"* 3 EXISTS\r\n", b"* 4 EXISTS\r\n", b"* 3 EXPUNGE\r\n"), OWN)
    assert out == Rewritten([b"* 3 EXISTS\r\n"], 1)
    assert inbox.known == 3


def test_rewrite_uses_total_when_exists_was_not_in_the_batch() -> None:
    inbox = view(4, total=6)
    out = inbox.rewrite(lines(b"* 5 EXPUNGE\r\n"), OWN)
    assert out == Rewritten([b"* 5 EXISTS\r\n"], 1)
    assert (inbox.known, inbox.total) == (5, 5)


# -- rewrite: expunges of known mail -------------------------------------------------------------


def test_expunge_of_known_message_passes_with_its_number() -> None:
    inbox = view(4)
    out = inbox.rewrite(
        lines(b"* 6 EXISTS\r\n", b"* 2 EXPUNGE\r\n", b"* 5 EXPUNGE\r\n"),
        OWN,
    )
    # After "2" went, upstream's 5 is the second new message (held); the first stayed.
    assert out == Rewritten([b"* 2 EXPUNGE\r\n", b"* 4 EXISTS\r\n"], 1)
    assert (inbox.known, inbox.total) == (4, 4)


def test_expunge_of_known_message_with_everything_held() -> None:
    inbox = view(4)
    out = inbox.rewrite(lines(b"* 5 EXISTS\r\n", b"* 5 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n"), OWN)
    assert out == Rewritten([b"* 1 EXPUNGE\r\n"], 1)
    assert (inbox.known, inbox.total) == (3, 3)


def test_expunge_of_last_known_message_is_not_taken_for_new_mail() -> None:
    inbox = view(4)
    out = inbox.rewrite(lines(b"* 5 EXISTS\r\n", b"* 4 EXPUNGE\r\n", b"* 4 EXPUNGE\r\n"), OWN)
    # The first "4" is the last known message; then the new one (now 4) is held.
    assert out == Rewritten([b"* 4 EXPUNGE\r\n"], 1)
    assert inbox.known == 3


# -- rewrite: FETCH, RECENT, unknown lines -----------------------------------------------------


def test_fetch_of_unknown_message_dropped_known_kept() -> None:
    inbox = view(4)
    out = inbox.rewrite(
        lines(
            b"* 5 EXISTS\r\n",
            b"* 5 FETCH (FLAGS (\\Recent))\r\n",
            b"* 3 FETCH (FLAGS (\\Seen))\r\n",
            b"* 5 EXPUNGE\r\n",
        ),
        OWN,
    )
    assert out == Rewritten([b"* 3 FETCH (FLAGS (\\Seen))\r\n"], 1)


def test_fetch_with_literal_of_unknown_message_dropped_whole() -> None:
    inbox = view(1)
    messages = [
        msg(b"* 2 EXISTS\r\n"),
        msg(b"* 2 FETCH (UID 9 BODY[HEADER] {12}\r\n", b"Subject: x\r\n", b" FLAGS ())\r\n"),
        msg(b"* 1 FETCH (UID 3 BODY[HEADER] {12}\r\n", b"Subject: y\r\n", b")\r\n"),
        msg(b"* 2 EXPUNGE\r\n"),
    ]
    out = inbox.rewrite(messages, OWN)
    assert out == Rewritten(
        [b"* 1 FETCH (UID 3 BODY[HEADER] {12}\r\n", b"Subject: y\r\n", b")\r\n"], 1
    )


def test_fetch_of_new_message_that_stayed_is_dropped_but_exists_sent() -> None:
    inbox = view(1)
    out = inbox.rewrite(lines(b"* 2 EXISTS\r\n", b"* 2 FETCH (FLAGS ())\r\n"), OWN)
    assert out == Rewritten([b"* 2 EXISTS\r\n"], 0)


def test_recent_dropped() -> None:
    inbox = view(4)
    out = inbox.rewrite(lines(b"* 6 EXISTS\r\n", b"* 2 RECENT\r\n", b"* 6 EXPUNGE\r\n"), OWN)
    assert out == Rewritten([b"* 5 EXISTS\r\n"], 1)


@pytest.mark.parametrize(
    "line",
    [
        b"garbage\r\n",
        b" * 3 EXISTS\r\n",
        b"+ go ahead\r\n",
        b"* OK [ALERT] hello\r\n",
        b"* FLAGS (\\Seen \\Answered)\r\n",
        b"* 3 XUNKNOWN\r\n",
    ],
)
def test_other_lines_kept(line: bytes) -> None:
    inbox = view(4)
    out = inbox.rewrite(lines(b"* 5 EXISTS\r\n", line, b"* 5 EXPUNGE\r\n"), OWN)
    assert out == Rewritten([line], 1)


def test_unparseable_chunks_of_a_message_kept_whole() -> None:
    inbox = view(4)
    out = inbox.rewrite([msg(b"x\r\n", b"tail")], OWN)
    assert out == Rewritten([b"x\r\n", b"tail"], 0)


# -- rewrite: tagged replies ---------------------------------------------------------------------


def test_own_tagged_replies_dropped() -> None:
    inbox = view(4)
    out = inbox.rewrite(
        lines(b"* 5 EXISTS\r\n", b"cp1 OK MOVE done\r\n", b"* 5 EXPUNGE\r\n", b"cp2 OK\r\n"), OWN
    )
    assert out == Rewritten([], 1)


def test_client_tagged_reply_kept_and_exists_goes_before_it() -> None:
    inbox = view(4)
    out = inbox.rewrite(
        lines(
            b"* 6 EXISTS\r\n",
            b"cp1 OK MOVE done\r\n",
            b"a7 OK NOOP completed\r\n",
            b"* 6 EXPUNGE\r\n",
            b"a8 OK NOOP completed\r\n",
        ),
        OWN,
    )
    assert out == Rewritten(
        [b"* 5 EXISTS\r\n", b"a7 OK NOOP completed\r\n", b"a8 OK NOOP completed\r\n"], 1
    )
    assert inbox.known == 5


def test_client_tagged_reply_without_new_mail_gets_no_exists() -> None:
    inbox = view(4)
    out = inbox.rewrite(lines(b"* 5 EXISTS\r\n", b"* 5 EXPUNGE\r\n", b"a1 OK done\r\n"), OWN)
    assert out == Rewritten([b"a1 OK done\r\n"], 1)


def test_exists_before_tagged_reply_counts_known_expunged_after_it() -> None:
    inbox = view(4)
    out = inbox.rewrite(
        lines(
            b"* 6 EXISTS\r\n",
            b"a1 OK NOOP completed\r\n",
            b"* 2 EXPUNGE\r\n",
            b"* 5 EXPUNGE\r\n",  # the second new message, after "2" went
        ),
        OWN,
    )
    # The client has 4 at the NOOP's answer, learns of one more, then loses "2".
    assert out == Rewritten([b"* 5 EXISTS\r\n", b"a1 OK NOOP completed\r\n", b"* 2 EXPUNGE\r\n"], 1)
    assert (inbox.known, inbox.total) == (4, 4)


def test_exists_before_tagged_reply_counts_known_expunged_before_it() -> None:
    inbox = view(4)
    out = inbox.rewrite(
        lines(b"* 5 EXISTS\r\n", b"* 1 EXPUNGE\r\n", b"a1 OK NOOP completed\r\n"), OWN
    )
    assert out == Rewritten([b"* 1 EXPUNGE\r\n", b"* 4 EXISTS\r\n", b"a1 OK NOOP completed\r\n"], 0)
    assert inbox.known == 4


def test_tagged_reply_with_literal_kept_whole() -> None:
    inbox = view(1)
    out = inbox.rewrite([msg(b"* 2 EXISTS\r\n"), msg(b"a1 OK {3}\r\n", b"abc", b"\r\n")], OWN)
    assert out == Rewritten([b"* 2 EXISTS\r\n", b"a1 OK {3}\r\n", b"abc", b"\r\n"], 0)


# -- rewrite: VANISHED ---------------------------------------------------------------------------


def test_vanished_of_held_uids_removed() -> None:
    inbox = view(4)
    out = inbox.rewrite(
        lines(b"* 6 EXISTS\r\n", b"* VANISHED 105:106\r\n"), OWN, frozenset({105, 106})
    )
    assert out == Rewritten([], 2)
    assert (inbox.known, inbox.total) == (4, 4)


def test_vanished_partly_held() -> None:
    inbox = view(4)
    out = inbox.rewrite(lines(b"* 6 EXISTS\r\n", b"* VANISHED 101,106\r\n"), OWN, frozenset({106}))
    # 101 was known (the client loses it), 106 was held, 105 stayed.
    assert out == Rewritten([b"* VANISHED 101\r\n", b"* 4 EXISTS\r\n"], 1)
    assert (inbox.known, inbox.total) == (4, 4)


def test_vanished_range_partly_held_is_spelled_out() -> None:
    inbox = view(4)
    out = inbox.rewrite(
        lines(b"* 7 EXISTS\r\n", b"* VANISHED 101:102,105:107\r\n"), OWN, frozenset({105, 107})
    )
    # 101, 102 known; 105 and 107 held; 106, new and not held, went elsewhere.
    assert out == Rewritten([b"* VANISHED 101,102,106\r\n", b"* 2 EXISTS\r\n"], 2)
    assert (inbox.known, inbox.total) == (2, 2)


def test_vanished_of_known_uids_only_passes_unchanged() -> None:
    inbox = view(4)
    out = inbox.rewrite(
        lines(b"* 5 EXISTS\r\n", b"* VANISHED 1:2\r\n", b"* 3 EXPUNGE\r\n"), OWN, frozenset({9})
    )
    assert out == Rewritten([b"* VANISHED 1:2\r\n"], 1)
    assert inbox.known == 2


def test_vanished_earlier_untouched() -> None:
    inbox = view(4)
    line = b"* VANISHED (EARLIER) 101:110\r\n"
    out = inbox.rewrite(lines(line), OWN, frozenset({105}))
    assert out == Rewritten([line], 0)
    assert (inbox.known, inbox.total) == (4, 4)


# -- rewrite: limit (only decided mail is shown) ------------------------------------------------


def test_limit_caps_what_the_client_is_shown() -> None:
    inbox = view(4)
    out = inbox.rewrite(lines(b"* 7 EXISTS\r\n"), OWN, limit=5)
    assert out == Rewritten([b"* 5 EXISTS\r\n"], 0)
    assert (inbox.known, inbox.total) == (5, 7)
    assert inbox.hiding


def test_after_a_limit_the_next_rewrite_shows_the_rest() -> None:
    inbox = view(4)
    inbox.rewrite(lines(b"* 7 EXISTS\r\n"), OWN, limit=5)
    out = inbox.rewrite(lines(b"* 6 EXPUNGE\r\n"), OWN)
    assert out == Rewritten([b"* 6 EXISTS\r\n"], 1)
    assert (inbox.known, inbox.total) == (6, 6)
    assert not inbox.hiding


def test_limit_not_above_known_shows_nothing_new() -> None:
    inbox = view(4)
    out = inbox.rewrite(lines(b"* 6 EXISTS\r\n", b"a1 OK done\r\n"), OWN, limit=4)
    assert out == Rewritten([b"a1 OK done\r\n"], 0)
    assert (inbox.known, inbox.total) == (4, 6)
    assert inbox.hiding


def test_hiding_before_select_and_when_caught_up() -> None:
    assert not InboxView().hiding
    inbox = view(4)
    assert not inbox.hiding
    inbox.rewrite(lines(b"* 5 EXISTS\r\n"), OWN)
    assert not inbox.hiding


# -- property: the client never sees held mail ---------------------------------------------------


@dataclass
class Upstream:
    """The server's INBOX as a list of message ids, and what it sends the paused session."""

    messages: list[int]
    held: set[int] = field(default_factory=set)
    stayed: set[int] = field(default_factory=set)
    sent: list[list[bytes]] = field(default_factory=list)
    next_id: int = 1000

    def arrive(self, held: Sequence[bool]) -> None:
        for one in held:
            self.next_id += 1
            self.messages.append(self.next_id)
            (self.held if one else self.stayed).add(self.next_id)
        self.sent.append([b"* %d EXISTS\r\n" % len(self.messages)])

    def expunge(self, ident: int) -> None:
        position = self.messages.index(ident) + 1
        self.messages.remove(ident)
        self.sent.append([b"* %d EXPUNGE\r\n" % position])


Op = tuple[str, int]
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("held"), st.integers(1, 3)),
        st.tuples(st.just("stays"), st.integers(1, 3)),
        st.tuples(st.just("expunge-held"), st.integers(0, 50)),
        st.tuples(st.just("expunge-known"), st.integers(0, 50)),
        st.tuples(st.just("fetch"), st.integers(1, 20)),
        st.tuples(st.just("recent"), st.integers(0, 5)),
        st.tuples(st.just("client-tag"), st.integers(0, 0)),
        st.tuples(st.just("own-tag"), st.integers(0, 0)),
    ),
    max_size=30,
)


@settings(max_examples=400, deadline=None)
@given(
    known=st.integers(0, 6),
    first=st.lists(st.booleans(), min_size=1, max_size=3),
    ops=OPS,
    flush_order=st.randoms(use_true_random=False),
)
def test_client_never_learns_of_held_mail(
    known: int, first: list[bool], ops: list[Op], flush_order: random.Random
) -> None:
    originals = list(range(1, known + 1))
    upstream = Upstream(list(originals))
    inbox = InboxView()
    assert inbox.wants_pause(known) is False
    upstream.arrive(first)
    assert inbox.wants_pause(len(upstream.messages)) is True
    for op, value in ops:
        if op in ("held", "stays"):
            upstream.arrive([op == "held"] * value)
        elif op == "expunge-held":
            pending = [m for m in upstream.messages if m in upstream.held]
            if pending:
                upstream.expunge(pending[value % len(pending)])
        elif op == "expunge-known":
            present = [m for m in upstream.messages if m in originals]
            if present:
                upstream.expunge(present[value % len(present)])
        elif op == "fetch":
            if value <= len(upstream.messages):
                upstream.sent.append([b"* %d FETCH (FLAGS ())\r\n" % value])
        elif op == "recent":
            upstream.sent.append([b"* %d RECENT\r\n" % value])
        elif op == "client-tag":
            upstream.sent.append([b"a%d OK NOOP completed\r\n" % len(upstream.sent)])
        else:
            upstream.sent.append([b"cp1 OK done\r\n"])
    # Triage catches up before the pause ends: every held message has gone by then.
    remaining = [m for m in upstream.messages if m in upstream.held]
    flush_order.shuffle(remaining)
    for ident in remaining:
        upstream.expunge(ident)

    result = inbox.rewrite(upstream.sent, OWN)

    # The client's mailbox: the ids it knew, then placeholders (None) for what EXISTS adds.
    client: list[int | None] = list(originals)
    first_tag_news: int | None = None
    for line in result.data:
        parts = line.split()
        if parts[:1] == [b"*"] and parts[2:3] == [b"EXISTS"]:
            count = int(parts[1])
            assert count >= len(client)
            client.extend([None] * (count - len(client)))
        elif parts[:1] == [b"*"] and parts[2:3] == [b"EXPUNGE"]:
            number = int(parts[1])
            assert 1 <= number <= len(client)
            assert client[number - 1] is not None  # only known messages ever go
            del client[number - 1]
        elif parts[:1] == [b"*"] and parts[2:3] == [b"FETCH"]:
            number = int(parts[1])
            assert 1 <= number <= len(client)
            assert client[number - 1] is not None
        else:
            assert parts[:1] != [b"cp1"]
            assert parts[2:3] != [b"RECENT"]
            if first_tag_news is None and parts[0].startswith(b"a"):
                first_tag_news = client.count(None)
        # Never more new messages than stayed: a held one was never announced.
        assert client.count(None) <= len(upstream.stayed)

    final_known = [m for m in upstream.messages if m in originals]
    assert [m for m in client if m is not None] == final_known
    assert client.count(None) == len(upstream.stayed)
    assert len(client) == len(upstream.messages)
    assert inbox.known == inbox.total == len(upstream.messages)
    assert result.hidden == len(upstream.held)
    if first_tag_news is not None:
        assert first_tag_news == len(upstream.stayed)


# -- a SELECT's held answer --------------------------------------------------------------------


def test_a_select_answer_shows_only_what_triage_decided() -> None:
    """Three of the five messages the SELECT named are surely old (UIDNEXT said at most two
    are new); the pass held the fifth and decided the fourth urgent."""
    inbox = InboxView(known=3, total=5, announce=True)
    held = lines(
        b"* FLAGS (\\Seen)\r\n",
        b"* 5 EXISTS\r\n",
        b"* 2 RECENT\r\n",
        b"* OK [UNSEEN 4] First unseen.\r\n",
        b"* OK [UIDNEXT 12] Predicted next UID\r\n",
        b"d OK [READ-WRITE] Select completed\r\n",
        b"* 5 EXPUNGE\r\n",
        b"cp1 OK NOOP completed\r\n",
    )
    out = inbox.rewrite(held, OWN, limit=4)
    assert out.data == [
        b"* FLAGS (\\Seen)\r\n",
        b"* OK [UIDNEXT 12] Predicted next UID\r\n",
        b"* 4 EXISTS\r\n",
        b"d OK [READ-WRITE] Select completed\r\n",
    ]
    assert (inbox.known, inbox.total, inbox.hiding, inbox.announce) == (4, 4, False, False)


def test_a_select_answer_keeps_its_count_when_nothing_new_stays() -> None:
    inbox = InboxView(known=2, total=3, announce=True)
    held = lines(
        b"* 3 EXISTS\r\n",
        b"* OK [UNSEEN 2] First unseen.\r\n",
        b"d OK [READ-WRITE] Select completed\r\n",
        b"* 3 EXPUNGE\r\n",
        b"cp1 OK NOOP completed\r\n",
    )
    out = inbox.rewrite(held, OWN, limit=2)
    assert out.data == [
        b"* OK [UNSEEN 2] First unseen.\r\n",
        b"* 2 EXISTS\r\n",
        b"d OK [READ-WRITE] Select completed\r\n",
    ]
    assert out.hidden == 1
    assert (inbox.known, inbox.total) == (2, 2)
