"""Explicit urgency cues: what a message says about itself, in English, Dutch, French and German,
read from the writer's own text only (never from a quote, never from boilerplate)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from commsproxy.classifier import cues
from commsproxy.classifier.cues import CUE_BODY_CHARS, CUE_KINDS, high_priority, urgency_cues
from commsproxy.classifier.mail import Mail, parse_mail
from tests.mailfactory import render

try:  # the regular expression parser: private, so its module moved in 3.11
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _parser  # type: ignore[no-redef]


def message(body: str, subject: str = "Hello", **headers: str) -> Mail:
    """A message from a person, parsed from bytes; extra headers as keyword arguments."""
    fields = {"From": "Ann <ann@acme.com>", "To": "me@corp.example", "Subject": subject}
    fields |= {name.replace("_", "-"): value for name, value in headers.items()}
    return parse_mail(render(fields, body))


# -- the examples --------------------------------------------------------------------


def test_urgent_subject_with_priority_headers() -> None:
    mail = message(
        "See subject.",
        subject="URGENT: server down, customer waiting",
        X_Priority="1",
        Importance="high",
    )
    assert urgency_cues(mail) == {
        "marked high priority": "marked high priority",
        "urgent wording": 'says "urgent"',
    }


def test_customer_whose_system_is_down_asks_for_a_call() -> None:
    mail = message("Hi, our order system is down, can you call me asap?", subject="Orders")
    cues = urgency_cues(mail)
    assert set(cues) == {"urgent wording", "asks for a call"}
    assert cues["urgent wording"] == 'says "system is down"'
    assert cues["asks for a call"] == 'asks for a call ("can you call me")'


def test_boss_needs_numbers_before_a_call_at_two() -> None:
    mail = message("Need the Q3 numbers before the 2pm call.", subject="Q3")
    # "the 2pm call" is a meeting, not a request to phone back.
    assert urgency_cues(mail) == {"deadline today": 'deadline "before the 2pm"'}


@pytest.mark.parametrize(
    ("body", "deadline"),
    [
        ("Kun je me vandaag nog terugbellen?", "vandaag nog"),
        ("Merci de me rappeler avant midi", "avant midi"),
        ("Bitte rufen Sie mich heute noch zurück", "heute noch"),
    ],
)
def test_call_back_today_in_dutch_french_and_german(body: str, deadline: str) -> None:
    cues = urgency_cues(message(body))
    assert set(cues) == {"deadline today", "asks for a call"}
    assert cues["deadline today"] == f'deadline "{deadline}"'


# -- each kind in each language --------------------------------------------------------------

LANGUAGES = {
    "urgent wording": [
        ("The server is down since nine, nobody can log in.", "server is down"),
        ("This is urgent, the shipment is stuck at customs.", "urgent"),
        ("De website ligt plat sinds vanochtend.", "ligt plat"),
        ("Graag met spoed de offerte sturen.", "met spoed"),
        ("Le serveur est en panne depuis ce matin.", "en panne"),
        ("Il faut corriger la facture au plus vite.", "au plus vite"),
        ("Der Server ist ausgefallen, die Kunden warten.", "ausgefallen"),
        ("Wir brauchen die Unterlagen schnellstmöglich.", "schnellstmöglich"),
    ],
    "deadline today": [
        ("Please send the contract by end of day.", "by end of day"),
        ("Send me the slides today, please.", "today, please"),
        ("Ik heb het rapport uiterlijk vanmiddag nodig.", "uiterlijk vanmiddag"),
        ("Stuur je het vóór 15 uur?", "vóór 15 uur"),
        ("J'ai besoin du rapport avant ce soir.", "avant ce soir"),
        ("Réponse dans la journée svp.", "dans la journée"),
        ("Ich brauche den Bericht bis 14 Uhr.", "bis 14 uhr"),
        ("Können Sie das noch heute prüfen?", "noch heute"),
    ],
    "asks for a call": [
        ("Could you phone me about the renewal?", "could you phone me"),
        ("Call me back when you land.", "call me back"),
        ("Bel me even over de levering.", "bel me"),
        ("Kunt u mij morgen even terugbellen?", "kunt u mij morgen even terugbellen"),
        ("Rappelle-moi dès que tu peux.", "rappelle-moi"),
        ("Pouvez-vous m'appeler au sujet du contrat ?", "pouvez-vous m'appeler"),
        ("Bitte um Rückruf wegen der Lieferung.", "bitte um rückruf"),
        ("Kannst du mich kurz anrufen?", "kannst du mich kurz anrufen"),
    ],
}


@pytest.mark.parametrize(
    ("kind", "body", "said"),
    [(kind, body, said) for kind, cases in LANGUAGES.items() for body, said in cases],
)
def test_each_kind_of_cue(kind: str, body: str, said: str) -> None:
    cues = urgency_cues(message(body))
    assert kind in cues, cues
    assert f'"{said}"' in cues[kind]


def test_the_kinds_are_the_ones_named() -> None:
    every = message(
        "Urgent: the site is down, I need it by noon. Call me back!", X_Priority="1 (Highest)"
    )
    assert tuple(urgency_cues(every)) == CUE_KINDS


def test_subject_alone_carries_a_cue() -> None:
    assert set(urgency_cues(message("Hoi, zie onderwerp.", subject="Dringend: factuur"))) == {
        "urgent wording"
    }


# -- priority headers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "high"),
    [
        ({"x-priority": "1"}, True),
        ({"x-priority": "1 (Highest)"}, True),
        ({"x-priority": "2 (High)"}, True),
        ({"importance": "High"}, True),
        ({"x-msmail-priority": "High"}, True),
        ({"priority": "urgent"}, True),
        ({"x-priority": "3 (Normal)"}, False),
        ({"x-priority": "5 (Lowest)"}, False),
        ({"importance": "normal"}, False),
        ({"importance": "low"}, False),
        ({"x-msmail-priority": "Normal"}, False),
        ({"priority": "non-urgent"}, False),
        ({}, False),
    ],
)
def test_high_priority(headers: dict[str, str], high: bool) -> None:
    assert high_priority(headers) is high


def test_priority_header_parsed_from_bytes_is_a_cue() -> None:
    assert urgency_cues(message("Lunch menu attached.", X_MSMail_Priority="High")) == {
        "marked high priority": "marked high priority"
    }


# -- what is not a cue -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "Here is the proposal. Please call me if you have any questions.",
        "Don't hesitate to call me if anything is unclear.",
        "Bij vragen kunt u altijd contact opnemen.",
        "N'hésitez pas à me contacter pour toute question.",
        "Bei Fragen stehe ich Ihnen gerne zur Verfügung.",
    ],
)
def test_closing_boilerplate_is_no_call_request(body: str) -> None:
    assert urgency_cues(message(body)) == {}


@pytest.mark.parametrize(
    "body",
    [
        "I saw Bob today at the fair; he sends his regards. Lunch next week?",
        "Today's newsletter had a nice piece on our team.",
        "Vandaag was het mooi weer, tot volgende week.",
        "Aujourd'hui nous avons visité l'usine, c'était intéressant.",
        "Heute war ein schöner Tag im Büro.",
    ],
)
def test_today_in_passing_is_no_deadline(body: str) -> None:
    assert urgency_cues(message(body, subject="Catching up")) == {}


@pytest.mark.parametrize(
    "body",
    [
        "Sales are down 3% this quarter, as expected.",
        "I'm not working on Friday, back on Monday.",
        "Hij werkt niet meer bij ons sinds mei.",
        "Give me a call if you want to discuss the plan.",
        "Les ventes ne marchent pas mal du tout.",
    ],
)
def test_down_and_not_working_of_people_and_figures_is_no_urgency(body: str) -> None:
    assert urgency_cues(message(body, subject="Update")) == {}


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ("The website went down an hour ago.", "website went down"),
        ("Onze webshop werkt niet sinds vanmorgen.", "webshop werkt niet"),
        ("Notre site ne fonctionne plus.", "site ne fonctionne plus"),
        ("Die Kasse funktioniert nicht.", "kasse funktioniert nicht"),
    ],
)
def test_a_system_that_stopped_is_urgent_wording(body: str, said: str) -> None:
    assert urgency_cues(message(body, subject="Problem"))["urgent wording"] == f'says "{said}"'


@pytest.mark.parametrize(
    ("body", "said"),
    [
        # The first cue in the text is the one said, whichever of the wordings it is.
        ("The site is down, urgent.", "site is down"),
        ("Urgent: the site is down.", "urgent"),
        ("Storing: de printers werken niet.", "storing"),
        ("De printers werken niet, storing sinds negen uur.", "printers werken niet"),
        # A system word that begins a longer one: the longer one, with its plural.
        ("The applications stopped working overnight.", "applications stopped working"),
        ("Our apps does not work.", "apps does not work"),
        ("Onze e-mail werkt niet.", "e-mail werkt niet"),
        ("La ligne ne marche pas depuis ce matin.", "ligne ne marche pas"),
        ("Die Produktion funktioniert nicht.", "produktion funktioniert nicht"),
        # Not the end of a word: "downloads" is no outage.
        ("The server is downloading updates.", None),
    ],
)
def test_which_urgent_wording_is_said(body: str, said: str | None) -> None:
    cues = urgency_cues(message(body, subject="Problem"))
    assert cues.get("urgent wording") == (None if said is None else f'says "{said}"')


OUTLOOK_QUOTE = """Fixed it, all good now.

-----Original Message-----
From: Ops [mailto:ops@acme.com]
Sent: Monday, March 04, 2024 1:00 PM
To: Me
Subject: URGENT: server down

URGENT: the server is down, call me back asap!
"""

ANGLE_QUOTE = """Fixed it, all good now.

> URGENT: the server is down
> call me back asap, we need it by noon
"""


@pytest.mark.parametrize("body", [OUTLOOK_QUOTE, ANGLE_QUOTE])
def test_urgency_in_a_quote_belongs_to_the_older_message(body: str) -> None:
    assert urgency_cues(message(body, subject="Re: server")) == {}


def test_only_the_start_of_the_own_text_is_read() -> None:
    filler = "Notes from the meeting follow. " * (CUE_BODY_CHARS // 31 + 1)
    assert urgency_cues(message(filler + "This is urgent.")) == {}
    assert "urgent wording" in urgency_cues(message("This is urgent. " + filler))


def _first_characters(items: Any) -> set[str] | None:
    """The characters a parsed pattern's match can start with; "" in it if it can be empty;
    None where this reading cannot tell (a category such as \\w, a look-around)."""
    out: set[str] = set()
    for op, arg in items:
        if op is _c.AT:  # \b and the like: zero width
            continue
        if op is _c.LITERAL:
            return out | {chr(arg)}
        if op is _c.IN:
            for kind, value in arg:
                if kind is _c.LITERAL:
                    out.add(chr(value))
                elif kind is _c.RANGE:
                    out.update(chr(c) for c in range(value[0], value[1] + 1))
                else:
                    return None
            return out
        if op is _c.SUBPATTERN:
            alternatives = [arg[-1]]
        elif op is _c.BRANCH:
            alternatives = arg[1]
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT) and arg[0] <= 1:
            alternatives = [arg[2]]
        else:
            return None
        may_be_empty = op in (_c.MAX_REPEAT, _c.MIN_REPEAT) and arg[0] == 0
        for alternative in alternatives:
            first = _first_characters(alternative)
            if first is None:
                return None
            may_be_empty |= "" in first
            out |= first - {""}
        if not may_be_empty:
            return out
    return out | {""}


@pytest.mark.parametrize("name", ["_URGENT_WORDS", "_DEADLINE", "_CALL_REQUEST"])
def test_the_look_ahead_lets_every_alternative_through(name: str) -> None:
    pattern = getattr(cues, name)
    match = re.fullmatch(r"\(\?=\[(\w+)\]\)(.*)", pattern.pattern, re.DOTALL)
    assert match, "the pattern starts with its look-ahead"
    declared, rest = set(match[1]), match[2]
    first = _first_characters(_parser.parse(rest))
    assert first is not None
    assert "" not in first
    assert first <= declared, f"missing from the look-ahead: {sorted(first - declared)}"
    assert declared <= first, f"never a first character: {sorted(declared - first)}"
