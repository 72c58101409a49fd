"""Response codes (the ``[...]`` after OK/NO/BAD) that commsproxy acts on, one spelling each.

RFC 5530 names most of them; ``COPYUID``/``APPENDUID`` come from UIDPLUS (RFC 4315). A refusal
carries its code so the caller can tell "this message was expunged meanwhile" from "no such
mailbox" without reading the server's prose.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ALREADYEXISTS",
    "AUTHENTICATIONFAILED",
    "EXPUNGEISSUED",
    "NONEXISTENT",
    "THROTTLED",
    "TRYCREATE",
    "UNAVAILABLE",
]

EXPUNGEISSUED: Final = "EXPUNGEISSUED"  # another session expunged some of the messages
TRYCREATE: Final = "TRYCREATE"  # the target mailbox does not exist; CREATE it first
ALREADYEXISTS: Final = "ALREADYEXISTS"  # CREATE or RENAME to a name that is taken
NONEXISTENT: Final = "NONEXISTENT"  # the mailbox does not exist
THROTTLED: Final = "THROTTLED"  # too many commands or connections: slow down (Gmail, Yahoo)
AUTHENTICATIONFAILED: Final = "AUTHENTICATIONFAILED"  # wrong user name or password
UNAVAILABLE: Final = "UNAVAILABLE"  # the server cannot do it now (e.g. backend down); try later
