"""What a filing keeps for the Accounts page, against the real Dovecot: the sender and subject of
a customer's message copied from INBOX, the recipients and subject of a reply sent through the
proxy and appended from the queue."""

from __future__ import annotations

import uuid
from pathlib import Path

from commsproxy.triage.state_store import StateStore
from tests.integration.test_filing import (
    TEAM_DOMAIN,
    Member,
    accounts_table,
    deliver_to,
    folder_ids,
)
from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.triage import wait_until


def _id() -> str:
    return f"<{uuid.uuid4().hex}@test.example>"


def test_filings_keep_who_and_what_in_and_out(dovecot: Dovecot, tmp_path: Path) -> None:
    name = f"Acme {uuid.uuid4().hex[:8]}"
    member = Member(dovecot, tmp_path / "alice", name, accounts_table(name))
    folder = f"Public/Accounts/{name}"
    question, reply = _id(), _id()
    customer = render(
        {
            "From": "=?utf-8?q?J=C3=BCrgen_K=C3=A4ufer?= <Buyer@Acme.example>",
            "To": member.address,
            "Subject": "=?utf-8?q?Bestellung_=C3=A4ndern?=",
            "Message-ID": question,
        },
        "Können wir die Bestellung ändern?",
    )
    answer = render(
        {
            "From": f"Alice <{member.address}>",
            "To": "Jürgen <buyer@acme.example>",
            "Cc": f"ops@acme.example, colleague@{TEAM_DOMAIN}",
            "Subject": "Re: Bestellung ändern",
            "Message-ID": reply,
            "In-Reply-To": question,
        },
        "Ja, natürlich.",
    )
    try:
        member.start()
        deliver_to(dovecot, [member.user], customer)
        assert wait_until(lambda: "$Filed" in member.flags(question), 20)
        member.send(answer, ["buyer@acme.example", "ops@acme.example"])
        assert wait_until(lambda: folder_ids(dovecot, member.user, folder)[reply] == 1, 20)
        with StateStore.open(member.directory / "state") as store:
            (came_in,) = store.filings_for_message_id(question)
            (went_out,) = store.filings_for_message_id(reply)
    finally:
        member.stop()
    assert (came_in.direction, came_in.outcome) == ("incoming", "copied")
    assert came_in.peer == "Jürgen Käufer <buyer@acme.example>"
    assert came_in.subject == "Bestellung ändern"
    assert (went_out.direction, went_out.outcome) == ("outgoing", "appended")
    assert went_out.peer == "buyer@acme.example and 2 more"  # To, then Cc, from the header
    assert went_out.subject == "Re: Bestellung ändern"
    assert went_out.login == member.user
