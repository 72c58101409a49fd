"""Which identity signs in, and which mailbox the IMAP/SMTP SASL exchange names.

For Microsoft 365 a shared or delegated mailbox is written ``user@tenant/shared@tenant``: the
user signs in (their token, their consent, their local password), and IMAP authenticates with
that token as the shared mailbox (``user=shared@tenant`` in XOAUTH2), which Exchange Online
allows when the user has Full Access to it. Other providers take the user name as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MailboxIdentity", "mailbox_identity"]


@dataclass(frozen=True)
class MailboxIdentity:
    sign_in: str  # who signs in: login_hint, the owner of the refresh token and local password
    mailbox: str  # who IMAP and SMTP authenticate as: the SASL user

    @property
    def shared(self) -> bool:
        return self.sign_in != self.mailbox

    @property
    def account(self) -> str:
        """The key the refresh token and local password are kept under (one per sign-in)."""
        return self.sign_in.strip().lower()


def mailbox_identity(username: str, provider: str) -> MailboxIdentity:
    """Split ``user@tenant/shared@tenant`` for Microsoft 365; any other name is one identity."""
    name = username.strip()
    if provider == "microsoft365" and "/" in name:
        user, _, shared = name.partition("/")
        if user.strip() and shared.strip():
            return MailboxIdentity(user.strip(), shared.strip())
    return MailboxIdentity(name, name)
