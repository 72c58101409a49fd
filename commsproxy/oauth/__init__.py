"""OAuth2 sign-in for Microsoft 365, Gmail and any standards-following provider.

Pure parts (no I/O): ``providers`` (presets), ``pkce``, ``requests`` (what each flow sends),
``tokens`` (answers and their errors), ``sasl`` (XOAUTH2/OAUTHBEARER), ``identity`` (shared
mailboxes). Parts that touch the world, each through a parameter tests replace: ``http`` (urllib),
``loopback`` (the redirect listener), ``browser`` and ``device`` (the two sign-in flows),
``vault`` and ``password`` (keyring, encrypted file, scrypt hash), ``refresh`` (the async
single-flight token refresh) and ``signins`` (what the proxy and triage call).
"""

from .browser import sign_in_with_browser
from .device import DeviceCode, sign_in_with_device
from .errors import (
    OAuthError,
    ProviderError,
    SecretStoreError,
    SignInFailed,
    SignInNeeded,
    Throttled,
    WrongPassword,
    reason_in_one_line,
)
from .identity import MailboxIdentity, mailbox_identity
from .providers import PRESETS, OAuthProvider, Preset, preset_provider
from .refresh import AccessTokens
from .sasl import BearerMechanism, choose_mechanism, oauthbearer, parse_error_challenge, xoauth2
from .signins import SignIns, save_sign_in
from .tokens import Secret, TokenSet
from .vault import Locked

__all__ = [
    "PRESETS",
    "AccessTokens",
    "BearerMechanism",
    "DeviceCode",
    "Locked",
    "MailboxIdentity",
    "OAuthError",
    "OAuthProvider",
    "Preset",
    "ProviderError",
    "Secret",
    "SecretStoreError",
    "SignInFailed",
    "SignInNeeded",
    "SignIns",
    "Throttled",
    "TokenSet",
    "WrongPassword",
    "choose_mechanism",
    "mailbox_identity",
    "oauthbearer",
    "parse_error_challenge",
    "preset_provider",
    "reason_in_one_line",
    "save_sign_in",
    "sign_in_with_browser",
    "sign_in_with_device",
    "xoauth2",
]
