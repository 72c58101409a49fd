"""The digest's "always deliver mail from X at once" link is offered only when it would change
something: not for a sender already in ``[triage] vip`` (a message held before the rule was
added), also after the rule was added while ``run`` runs (``DigestLinks.follow``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from commsproxy.triage.state_store import StateStore
from commsproxy.web.links import DigestLinks, correction_link
from tests.unit.test_release_digest import BATCH, NOW, Worker, parsed, raw, releaser

SECRET = "s" * 43


@pytest.fixture
def store(tmp_path: Path) -> Iterable[StateStore]:
    with StateStore.open(tmp_path) as opened:
        yield opened


def test_no_link_for_a_sender_in_vip() -> None:
    links = DigestLinks(SECRET, 1180, ("*@acme.example", "boss@corp.example"))
    assert links("ann@sales.acme.example") is None  # the domain's subdomains too
    assert links("Boss@Corp.example") is None
    assert links("bert@partner.example") == correction_link(SECRET, 1180, "bert@partner.example")
    links.follow(("bert@partner.example",))  # a reloaded config: the list now in force
    assert links("bert@partner.example") is None
    assert links("ann@acme.example") is not None


def _links_in(data: bytes) -> list[str]:
    text = parsed(data).get_body(preferencelist=("plain",))
    assert text is not None
    return [line for line in str(text.get_content()).splitlines() if "Always deliver" in line]


async def test_the_digest_leaves_out_the_link_for_vip_senders(store: StateStore) -> None:
    messages = {
        1: raw(1, "ann@acme.example", "notes", "See you."),
        2: raw(2, "bert@partner.example", "budget", "Draft attached."),
    }
    links = DigestLinks(SECRET, 1180, ("*@acme.example",))
    worker = Worker(messages)
    await releaser(worker, store, digest_link=links)._append_digest(
        BATCH, [1, 2], "<digest-1@commsproxy.localhost>", NOW
    )
    [(_, data, _, _)] = worker.appended
    lines = _links_in(data)
    assert len(lines) == 1, lines
    assert "bert@partner.example" in lines[0]
    html = parsed(data).get_body(preferencelist=("html",))
    assert html is not None
    assert "ann%40acme.example" not in str(html.get_content())
    # bert made always urgent while run runs: the next digest offers no link at all.
    links.follow(("*@acme.example", "bert@partner.example"))
    worker = Worker(messages)
    await releaser(worker, store, digest_link=links)._append_digest(
        BATCH, [1, 2], "<digest-2@commsproxy.localhost>", NOW
    )
    [(_, data, _, _)] = worker.appended
    assert _links_in(data) == []
