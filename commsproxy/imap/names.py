"""The mailboxes and keywords commsproxy reads and writes on the server, in one table.

Keywords are the server-side record of every decision (DESIGN.md): they are written before a
message moves, so a restart reads what was decided from the server itself. Changing a spelling
here changes what existing mailboxes mean; treat these as a stored format.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BULK",
    "BULK_KEYWORD",
    "DIGEST",
    "FILED",
    "FOLLOW_UP",
    "HELD_AS",
    "HOLD_KEYWORD",
    "INBOX",
    "LABEL_KEYWORDS",
    "LATER",
    "NORMAL",
    "NOT_HELD",
    "RELEASED",
    "SEEN",
    "SENT",
    "TRIAGED",
    "UNSNOOZED",
    "URGENT",
    "URGENT_KEYWORD",
]

INBOX: Final = "INBOX"

# The three judgments.
URGENT: Final = "urgent"
NORMAL: Final = "normal"
BULK: Final = "bulk"

TRIAGED: Final = "$Triaged"  # decided: never classified again
RELEASED: Final = "$Released"  # back in INBOX after its batch
NOT_HELD: Final = "$NotHeld"  # decided, but delivered at once (holding paused or a rule)
LATER: Final = "$Later"
BULK_KEYWORD: Final = "$Bulk"
FILED: Final = "$Filed"  # copied into its account's shared folder
SENT: Final = "$Sent"  # a filed copy of mail the user sent
DIGEST: Final = "$Digest"  # the summary that comes with a release
FOLLOW_UP: Final = "$FollowUp"  # a sent message back in INBOX: no answer came in time
UNSNOOZED: Final = "$Unsnoozed"  # a snoozed message's copy, back in INBOX at its time
SEEN: Final = "\\Seen"

# What each judgment writes; $label1 is Thunderbird's "Important" tag, so urgent shows in colour.
URGENT_KEYWORD: Final = "$Urgent"
LABEL_KEYWORDS: Final[dict[str, tuple[str, ...]]] = {
    URGENT: (URGENT_KEYWORD, "$label1"),
    NORMAL: (LATER,),
    BULK: (BULK_KEYWORD,),
}
# The keyword that marks a held message, by judgment, and back.
HOLD_KEYWORD: Final[dict[str, str]] = {NORMAL: LATER, BULK: BULK_KEYWORD}
HELD_AS: Final[dict[str, str]] = {keyword: label for label, keyword in HOLD_KEYWORD.items()}
