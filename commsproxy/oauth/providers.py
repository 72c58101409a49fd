"""Who signs a login in: endpoints, scopes and the app (client) registered with the provider.

A ``[[login]]`` with ``auth = "oauth2"`` names a ``provider``. The presets below fill in the
servers, endpoints and scopes from each provider's own documentation; ``custom`` takes them from
the config, so the same flows run against any standards-following authorization server (a test
bed on 127.0.0.1 too).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["GMAIL", "MICROSOFT365", "PRESETS", "OAuthProvider", "Preset", "preset_provider"]


@dataclass(frozen=True)
class OAuthProvider:
    """A resolved provider: everything the flows and the token refresh need."""

    name: str  # "microsoft365", "gmail" or "custom"
    client_id: str
    authorization_endpoint: str
    token_endpoint: str
    scopes: tuple[str, ...]
    client_secret: str | None = field(default=None, repr=False)
    device_endpoint: str | None = None
    revocation_endpoint: str | None = None
    tenant: str | None = None

    @property
    def scope(self) -> str:
        """The scopes as one space-separated ``scope`` parameter (RFC 6749 §3.3)."""
        return " ".join(self.scopes)

    @property
    def title(self) -> str:
        return {"microsoft365": "Microsoft 365", "gmail": "Google"}.get(self.name, self.name)


@dataclass(frozen=True)
class Preset:
    """A provider's fixed facts: mail servers, endpoint templates, scopes, where to get a client."""

    name: str
    upstream_imap: str
    upstream_smtp: str
    authorization_endpoint: str
    token_endpoint: str
    device_endpoint: str | None
    revocation_endpoint: str | None
    scopes: tuple[str, ...]
    where_client_id: str  # said when client_id is missing
    needs_secret: bool = False  # Google's token endpoint wants the (non-confidential) secret
    default_tenant: str | None = None


# Microsoft identity platform v2 endpoints, from learn.microsoft.com "Microsoft identity platform
# and OAuth 2.0 authorization code flow" (v2-oauth2-auth-code-flow) and "... device authorization
# grant flow" (v2-oauth2-device-code): https://login.microsoftonline.com/{tenant}/oauth2/v2.0/
# authorize | token | devicecode, tenant "common", "organizations", "consumers" or the tenant's
# ID or domain. Scopes from "Authenticate an IMAP, POP or SMTP connection using OAuth"
# (exchange/client-developer/legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-
# by-using-oauth): the full Outlook resource URLs, plus offline_access for a refresh token.
# Servers from the same page (outlook.office365.com:993, smtp.office365.com:587 STARTTLS).
# Microsoft documents no token revocation endpoint.
MICROSOFT365 = Preset(
    name="microsoft365",
    upstream_imap="imaps://outlook.office365.com:993",
    upstream_smtp="smtp+starttls://smtp.office365.com:587",
    authorization_endpoint="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
    token_endpoint="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",  # noqa: S106
    device_endpoint="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode",
    revocation_endpoint=None,
    scopes=(
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    ),
    where_client_id="the Application (client) ID of an app registration: Azure portal → "
    "Microsoft Entra ID → App registrations → New registration (see the README, Microsoft 365)",
    default_tenant="organizations",
)

# Google endpoints from developers.google.com "OAuth 2.0 for Mobile & Desktop Apps"
# (identity/protocols/oauth2/native-app: accounts.google.com/o/oauth2/v2/auth,
# oauth2.googleapis.com/token and /revoke; loopback redirect http://127.0.0.1:PORT; PKCE S256;
# client_secret sent to the token endpoint) and "OAuth 2.0 for TV and Limited-Input Device
# Applications" (identity/protocols/oauth2/limited-input-device: oauth2.googleapis.com/device/code,
# which answers verification_url and wants client_secret when polling). Scope and servers from
# "IMAP, POP, and SMTP" / "OAuth 2.0 Mechanism" (workspace/gmail/imap/xoauth2-protocol):
# https://mail.google.com/, imap.gmail.com:993, smtp.gmail.com:587.
GMAIL = Preset(
    name="gmail",
    upstream_imap="imaps://imap.gmail.com:993",
    upstream_smtp="smtp+starttls://smtp.gmail.com:587",
    authorization_endpoint="https://accounts.google.com/o/oauth2/v2/auth",
    token_endpoint="https://oauth2.googleapis.com/token",  # noqa: S106
    device_endpoint="https://oauth2.googleapis.com/device/code",
    revocation_endpoint="https://oauth2.googleapis.com/revoke",
    scopes=("https://mail.google.com/",),
    where_client_id="the Client ID of an OAuth client of type Desktop app: Google Cloud console → "
    "APIs & Services → Credentials → Create credentials → OAuth client ID (see the README, Gmail)",
    needs_secret=True,
)

PRESETS: dict[str, Preset] = {p.name: p for p in (MICROSOFT365, GMAIL)}


def preset_provider(
    preset: Preset,
    client_id: str,
    *,
    client_secret: str | None = None,
    tenant: str | None = None,
    scopes: tuple[str, ...] | None = None,
) -> OAuthProvider:
    """The provider a preset gives for this app registration (and tenant, for Microsoft)."""
    tenant = tenant or preset.default_tenant

    def fill(template: str | None) -> str | None:
        return template.format(tenant=tenant) if template else None

    return OAuthProvider(
        name=preset.name,
        client_id=client_id,
        client_secret=client_secret,
        authorization_endpoint=preset.authorization_endpoint.format(tenant=tenant),
        token_endpoint=preset.token_endpoint.format(tenant=tenant),
        device_endpoint=fill(preset.device_endpoint),
        revocation_endpoint=preset.revocation_endpoint,
        scopes=scopes or preset.scopes,
        tenant=tenant if preset.default_tenant else None,
    )
