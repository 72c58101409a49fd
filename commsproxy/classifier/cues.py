"""Explicit urgency: what a message says about itself, readable without any history.

On a first start nothing is known of the user's past, yet some mail announces that it cannot
wait: a priority header, urgent wording, a deadline today, a request to call, a reply in a
thread the user wrote in. These cues are read from the writer's own text (subject and the body
above any quote: a quoted "URGENT" belongs to an older message), in the languages of the first
users: English, Dutch, French and German. They count only for mail from a person; list and
machine mail, and mail the model finds likelier bulk than not, is held whatever it says
(policy.py). They are rules, not features of the model: spam says "URGENT" with X-Priority 1
so often that a model learns priority headers as a sign of bulk.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from .mail import Mail
from .quotes import QUOTE_SCAN_CHARS, names_match, own_text, person_tokens, quoted_original

__all__ = ["CUE_KINDS", "answers_you", "high_priority", "urgency_cues"]

# The kinds of cue.
CUE_KINDS = ("marked high priority", "urgent wording", "deadline today", "asks for a call")

# The start of the writer's own text: where a request that cannot wait is made.
CUE_BODY_CHARS = 1500


def _starting_with(first: str, pattern: str) -> re.Pattern[str]:
    """``pattern``, searched with a look-ahead for ``first``: every lowercase character one
    of its alternatives can start with (test_cues checks they are all there).

    Most places in a text then fail on one character class instead of on each alternative
    in turn: the same matches, found in 55-75% of the time.
    """
    return re.compile(f"(?=[{first}]){pattern}")


# What goes down at a customer, in the four languages.
_SYSTEM = (
    r"(?:server|system|systeem|syst[èe]me|site|website|webshop|shop|network|netwerk|r[ée]seau"
    r"|netzwerk|internet|e-?mail|mail|app|application|applicatie|anwendung|portal|portaal"
    r"|database|platform|plateforme|plattform|line|lijn|ligne|leitung|machine|maschine"
    r"|kassa|caisse|kasse|printer|imprimante|drucker|production|productie|produktion)s?"
)
_URGENT_WORDS = _starting_with(
    "acdeiklmnoprstuwz",
    r"\b(?:urgent(?:ly|e|es)?|asap|a\.s\.a\.p|emergency|as soon as possible|right away"
    r"|immediately|time[- ]sensitive|outage"
    # Dutch
    r"|dringend|spoed(?:eisend)?|met spoed|zo snel mogelijk|z\.s\.m|zsm|onmiddellijk"
    r"|(?:ligt|liggen) plat|storing"
    # French
    r"|urgence|d[èe]s que possible|au plus vite|imm[ée]diatement|en panne"
    # German
    r"|eilig|sofort|so schnell wie m[öo]glich|schnellstm[öo]glich|ausgefallen|st[öo]rung"
    r"|notfall"
    # Something of the customer's that stopped: a system, not "sales are down 3%" or "I'm
    # not working on Friday". One alternative for the four languages: the system's words
    # are tried once at each word, not once per language (2.5 times faster on real mail;
    # no other alternative starts as a system's word does, so the same match is found).
    rf"|{_SYSTEM} (?:(?:is |are |went |has gone )?(?:down|offline|not working)"
    r"|stopped working|does(?:n't| not) work"
    r"|(?:werkt|werken) niet"
    r"|ne (?:fonctionne|marche) (?:plus|pas)"
    r"|funktioniert nicht))\b",
)
_TIME = r"\d{1,2}(?:[:.h]\d\d)?\s*(?:am|pm|a\.m\.|p\.m\.|h|u|uur|uhr)\b"
_DEADLINE = _starting_with(
    "abdehntuv",
    r"\b(?:(?:by|before|until|no later than)\s+(?:the\s+)?(?:today|tonight|noon|midday|eod"
    r"|cob|end of (?:the )?(?:business )?day|close of business|this (?:morning|afternoon|evening)"
    rf"|{_TIME})"
    r"|(?:due|deadline|needed|need (?:it|this|them|these|that|an answer|a reply))\s+"
    r"(?:by\s+)?(?:today|tonight|this (?:morning|afternoon))"
    r"|(?:today|this afternoon|this morning),?\s+please|end of (?:the )?day today"
    # Dutch
    r"|vandaag nog|nog vandaag|uiterlijk (?:vandaag|vanmiddag|vanavond|om)"
    rf"|(?:v[oó][oó]r|tegen)\s+(?:vanmiddag|vanavond|het einde van de dag|{_TIME})"
    # French
    r"|aujourd'hui m[êe]me|dans la journ[ée]e|avant ce soir|d'ici ce soir"
    rf"|(?:avant|d'ici)\s+(?:midi|ce soir|cet apr[èe]s-midi|la fin de (?:la )?journ[ée]e|{_TIME})"
    # German
    r"|noch heute|heute noch|bis heute (?:abend|nachmittag|mittag)|bis (?:heute|mittag)"
    rf"|(?:bis|vor)\s+{_TIME})",
)
_FEW_WORDS = r"(?:\w+ ){0,3}"
_CALL_REQUEST = _starting_with(
    "abcgkmprtw",
    # "Please call me if you have questions" closes half of all business mail: a call
    # request counts when it is asked for, or made pressing.
    r"\b(?:(?:call|phone|ring) me (?:back )?(?:asap|now|today|right away|urgently|immediately"
    r"|as soon as)|give me a (?:call|ring) (?:asap|now|today|right away|urgently|as soon as)"
    r"|call me back"
    r"|(?:can|could|would) you (?:please )?(?:call|phone|ring) me"
    # Dutch
    r"|bel (?:me|mij)|belt u (?:me|mij)"
    # (a few words may come between: "kun je me vandaag nog terugbellen")
    rf"|(?:kun|kan|wil|kunt|wilt) (?:je|u) (?:me|mij) {_FEW_WORDS}(?:terug)?bellen"
    r"|graag (?:even )?(?:terug)?bellen|(?:terug)?bellen a\.?u\.?b"
    # French
    r"|(?:r?appelez|r?appelle)[- ]moi|merci de me (?:r?appeler|contacter par t[ée]l[ée]phone)"
    r"|(?:pouvez-vous|peux-tu|pourriez-vous|pourrais-tu) m(?:e |')(?:r?appeler)"
    # German
    rf"|(?:ruf|rufen sie) mich {_FEW_WORDS}(?:zur[üu]ck|an)\b"
    r"|bitte (?:um )?r[üu]ckruf|bitte anrufen"
    rf"|(?:k[öo]nnen sie|kannst du) mich {_FEW_WORDS}(?:zur[üu]ck)?(?:rufen|anrufen))",
)


# Words one of each pattern's alternatives must contain as a whole word (a run of ASCII
# word characters with a non-word character or the text's end on each side): most mail has
# none of them, and a pattern is searched only in text that has one, or that is not ASCII
# (the accented spellings are left to the pattern). Three searches cost about 30 us on a
# short note, the words about 3 us. A word is taken only where the pattern itself bounds it
# on both sides; test_cue_words checks a phrase for each alternative, and real mail.
def _triggers(words: str) -> frozenset[bytes]:
    return frozenset(word.encode("ascii") for word in words.split())


_URGENT_TRIGGERS = _triggers(
    "urgent urgently urgente urgentes asap p emergency possible away immediately "
    "sensitive outage dringend spoed spoedeisend mogelijk z zsm onmiddellijk plat storing "
    "urgence vite immediatement panne eilig sofort schnell schnellstmoglich ausgefallen "
    "storung notfall down offline working work niet fonctionne marche funktioniert"
)
_DEADLINE_TRIGGERS = _triggers(
    "by before until than due deadline needed need today afternoon morning end vandaag "
    "nog uiterlijk voor tegen aujourd dans avant ici noch heute bis vor"
)
_CALL_TRIGGERS = _triggers(
    "call phone ring bel belt kun kan wil kunt wilt graag bellen terugbellen appelez "
    "rappelez appelle rappelle merci pouvez peux pourriez pourrais ruf rufen bitte konnen "
    "kannst"
)
# Every ASCII character that is not a word character (\w) becomes a space.
_NON_WORD = bytes(
    c if chr(c).isascii() and (chr(c).isalnum() or chr(c) == "_") else 32 for c in range(256)
)


def cue_words(text: str) -> list[bytes] | None:
    """The words of an ASCII ``text`` as the patterns' ``\\b`` divides it; None otherwise."""
    if not text.isascii():
        return None
    return text.encode("ascii").translate(_NON_WORD).split()


def _search(
    pattern: re.Pattern[str], triggers: frozenset[bytes], words: list[bytes] | None, text: str
) -> re.Match[str] | None:
    """``pattern.search(text)``, skipped where none of its trigger words is in ``text``."""
    if words is not None and triggers.isdisjoint(words):
        return None
    return pattern.search(text)


def high_priority(headers: Mapping[str, str]) -> bool:
    """Importance, X-Priority, X-MSMail-Priority or Priority saying high or urgent."""
    importance = headers.get("importance", "").strip().lower()
    priority = headers.get("x-priority", "").strip()
    ms = headers.get("x-msmail-priority", "").strip().lower()
    plain = headers.get("priority", "").strip().lower()
    return importance == "high" or priority[:1] in ("1", "2") or ms == "high" or plain == "urgent"


def urgency_cues(mail: Mail) -> dict[str, str]:
    """The cues this message carries: kind (CUE_KINDS) -> what it says, in words."""
    cues = {}
    if high_priority(mail.headers):
        cues["marked high priority"] = "marked high priority"
    # Lowercased once, matched without IGNORECASE (the patterns are lowercase): the same
    # matches at a sixth of the cost, which counts on every message triage decides.
    text = f"{mail.subject}\n{own_text(mail.body)[:CUE_BODY_CHARS]}".lower()
    words = cue_words(text)
    if match := _search(_URGENT_WORDS, _URGENT_TRIGGERS, words, text):
        cues["urgent wording"] = f'says "{match.group(0).lower()}"'
    if match := _search(_DEADLINE, _DEADLINE_TRIGGERS, words, text):
        cues["deadline today"] = f'deadline "{match.group(0).lower()}"'
    if match := _search(_CALL_REQUEST, _CALL_TRIGGERS, words, text):
        cues["asks for a call"] = f'asks for a call ("{match.group(0).lower()}")'
    return cues


# "FW: ..." passes a message on, even where no "Forwarded by" line says so (Outlook).
_FORWARD_SUBJECT = re.compile(r"\s*(?:fw|fwd|wg|tr)\s*:", re.IGNORECASE)


def answers_you(mail: Mail, user_addresses: frozenset[str]) -> bool:
    """Whether the message answers one of the user's own: the quote under its text is theirs.

    Threading headers say so where they exist (Context.replies_to_user); mail without them
    (Outlook and Lotus Notes exports, clients that drop References) still shows what it
    answers in the quoted block under its text, read as reply matching reads it (quotes.py).
    A forward of the user's message ("FW:", "Forwarded by") is not an answer to it; a quoted
    first name alone ("Drew") could be anyone's, so the block must show the user's address or
    two words of their name.
    """
    if not user_addresses or _FORWARD_SUBJECT.match(mail.subject):
        return False
    # A quote of the user names them; most mail never does, and is spared the quote parser.
    text = mail.body[:QUOTE_SCAN_CHARS].lower()
    if not any(word in text for word in _name_words(user_addresses)):
        return False
    quoted = quoted_original(mail.body)
    if quoted is None or quoted.forwarded:
        return False
    address = quoted.sender.strip().lower()
    if address in user_addresses:
        return True
    name = quoted.name or address
    if len(person_tokens(name)) < 2:
        return False
    return any(names_match(name, address, user) for user in user_addresses)


@lru_cache(maxsize=64)
def _name_words(user_addresses: frozenset[str]) -> frozenset[str]:
    """The words of the user's addresses a quote naming them must contain (names_match)."""
    return frozenset(word for address in user_addresses for word in person_tokens(address))
