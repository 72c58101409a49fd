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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MECHANISMS = "xoauth2 oauthbearer"


@dataclass(frozen=True)
class OAuth2Validation:
    """What Dovecot needs to validate one issuer's access tokens locally."""

    issuer: str
    kid: str
    public_key_pem: str
    alg: str = "RS256"
    username_attribute: str = "sub"

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
        args_file = directory / "dovecot-oauth2.conf.ext"
        args_file.write_text(
            "introspection_mode = local\n"
            f"local_validation_key_dict = fs:posix:prefix={keys}/\n"
            # The default, email, would not match a login name like user0001.
            f"username_attribute = {self.username_attribute}\n"
            f"issuers = {self.issuer}\n"
        )
        args_file.chmod(0o644)
        return args_file

    @staticmethod
    def passdb_config(args_file: Path) -> str:
        return (
            f"passdb {{\n  driver = oauth2\n  mechanisms = {MECHANISMS}\n  args = {args_file}\n}}\n"
        )
