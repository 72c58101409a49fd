"""Links into the local page that work without its cookie, for the digest in the mail program.

A link carries a signature over exactly what it allows: ``always-urgent`` for one sender. The
page shows a confirmation for it (a GET changes nothing); the confirmation's POST is accepted
with that signature alone, so a link forwarded or leaked can at most make that one sender
urgent, and only when someone presses the button on this machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlencode

from ..triage.decide import vip_match
from .access import sign

__all__ = ["DigestLinks", "confirm_csrf", "correction_link", "sender_sig"]


def sender_sig(secret: str, sender: str) -> str:
    """The signature that authorises "always urgent" for ``sender`` and nothing else."""
    return sign(secret, "always-urgent\0" + sender)


def confirm_csrf(secret: str, sig: str) -> str:
    """The confirmation form's CSRF token, bound to the link's signature."""
    return sign(secret, "confirm-csrf\0" + sig)


def correction_link(secret: str, port: int, sender: str) -> str:
    """``http://127.0.0.1:PORT/confirm/always-urgent?sender=ADDR&sig=SIG`` for the digest."""
    query = urlencode({"sender": sender, "sig": sender_sig(secret, sender)})
    return f"http://127.0.0.1:{port}/confirm/always-urgent?{query}"


class DigestLinks:
    """The digest's ``digest_link``: sender -> its "always urgent" link, or None when the
    sender is always urgent already (a message held before the rule was added): a link that
    changes nothing is not offered.

    ``follow`` takes the ``[triage] vip`` list of a reloaded config, so a rule added while
    ``run`` runs counts from the next digest on, without the engines starting over.
    """

    def __init__(self, secret: str, port: int, vip: Sequence[str] = ()) -> None:
        self._secret = secret
        self._port = port
        self._vip = tuple(vip)

    def follow(self, vip: Sequence[str]) -> None:
        self._vip = tuple(vip)

    def __call__(self, sender: str) -> str | None:
        if vip_match(sender, self._vip) is not None:
            return None
        return correction_link(self._secret, self._port, sender)
