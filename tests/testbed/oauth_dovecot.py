"""Dovecot 2.3 checking OAuth2 bearer tokens itself (XOAUTH2 / OAUTHBEARER), for the test bed.

Pass ``Dovecot(oauth2=OAuth2Validation(...))``: a second passdb with ``driver = oauth2`` in
``introspection_mode = local`` validates JWT access tokens against a public key written in
the instance's own directory, next to the usual password passdb. Facts behind the settings
(checked on Debian 12's 2.3.19, see /work/shared/DOVECOT-NOTES.md and lib-oauth2's
oauth2-jwt.c):

- the key dict is looked up at ``<azp claim or "default">/<alg>/<kid or "default">``; our
  tokens carry ``client_id`` rather than ``azp``, so one key under ``default/`` serves
  every client;
- an RS/ES key is a PEM public key, an HS key the base64 of the raw secret;
- local mode checks signature, ``exp``/``nbf``/``iat``, ``iss`` against ``issuers``, and
  that the ``username_attribute`` claim equals the login name; 2.3.19 wants ``typ: JWT``.
  Both sides of that comparison go through ``username_format`` (db-oauth2.c,
  ``db_oauth2_validate_username``), and ``pass_attrs`` can export a claim as a passdb field.

Shared mailboxes, as Exchange Online has them (``full_access=True``): a user with Full Access
to a mailbox authenticates as that mailbox (SASL ``user=shared``) with their own token. Dovecot
has no such rule, so it is built from three passdbs: the token's own user as before; failing
that, the same validation with a ``username_format`` that lets any valid token through and
exports its ``sub`` as ``token_user`` (``result_success = continue-ok``); then a passwd-file
named after ``token_user`` that lists the mailboxes that user may open (``grant_full_access``),
consulted only once authenticated and final either way. A valid token for a mailbox not
granted is refused, as Exchange refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MECHANISMS = "xoauth2 oauthbearer"
FULL_ACCESS = "full-access"  # under the instance's oauth2 dir: one file per granted user


@dataclass(frozen=True)
class OAuth2Validation:
    """What Dovecot needs to validate one issuer's access tokens locally."""

    issuer: str
    kid: str
    public_key_pem: str
    alg: str = "RS256"
    username_attribute: str = "sub"
    full_access: bool = False  # also let a user open the mailboxes granted to them

    def write_files(self, directory: Path) -> Path:
        """Write the key dict and the passdb args file under ``directory``; return the latter.

        Everything is world-readable: the auth process runs as Dovecot's internal user.
        """
        keys = directory / "keys"
        key_file = keys / "default" / self.alg / self.kid
        key_file.parent.mkdir(parents=True, exist_ok=True)
        for path in (directory, keys, keys / "default", key_file.parent):
            path.chmod(0o755)
        key_file.write_text(self.public_key_pem)
        key_file.chmod(0o644)
        common = (
            "introspection_mode = local\n"
            f"local_validation_key_dict = fs:posix:prefix={keys}/\n"
            # The default, email, would not match a login name like user0001.
            f"username_attribute = {self.username_attribute}\n"
            f"issuers = {self.issuer}\n"
        )
        args_file = directory / "dovecot-oauth2.conf.ext"
        _world_readable(args_file, common)
        if self.full_access:
            grants = directory / FULL_ACCESS
            grants.mkdir(exist_ok=True)
            grants.chmod(0o755)
            _world_readable(
                directory / "dovecot-oauth2-delegated.conf.ext",
                common
                # The same text on both sides: any valid token passes; the grants decide.
                + "username_format = any-valid-token\n"
                + f"pass_attrs = token_user=%{{oauth2:{self.username_attribute}}}\n",
            )
        return args_file

    def passdb_config(self, args_file: Path) -> str:
        own = (
            f"passdb {{\n  driver = oauth2\n  mechanisms = {MECHANISMS}\n  args = {args_file}\n}}\n"
        )
        if not self.full_access:
            return own
        directory = args_file.parent
        return own + (
            "passdb {\n"
            "  driver = oauth2\n"
            f"  mechanisms = {MECHANISMS}\n"
            f"  args = {directory / 'dovecot-oauth2-delegated.conf.ext'}\n"
            "  result_success = continue-ok\n"
            "}\n"
            "passdb {\n"
            "  driver = passwd-file\n"
            f"  mechanisms = {MECHANISMS}\n"
            f"  args = username_format=%n {directory / FULL_ACCESS}/%{{passdb:token_user}}\n"
            "  skip = unauthenticated\n"
            "  result_success = return-ok\n"
            "  result_failure = return-fail\n"
            "  result_internalfail = return-fail\n"
            "}\n"
        )


def grant_full_access(oauth2_dir: Path, user: str, mailbox: str) -> None:
    """Let ``user``'s tokens open ``mailbox`` (Exchange's Full Access permission).

    Grant before the first login that needs it: Dovecot re-reads a passwd-file at most once a
    second.
    """
    grants = oauth2_dir / FULL_ACCESS / user
    lines = grants.read_text() if grants.exists() else ""
    # nopassword: the token was checked by the passdb before; this file only says who may.
    _world_readable(grants, lines + f"{mailbox}:::::::nopassword=y\n")


def _world_readable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o644)  # the auth process runs as Dovecot's internal user
