"""Mail providers whose users are unrelated people: an address there says nothing of a team."""

from __future__ import annotations

__all__ = ["FREEMAIL"]

#: Domains whose users are unrelated people: matched by exact address only.
FREEMAIL = frozenset(
    {
        "aol.com", "gmail.com", "googlemail.com", "gmx.com", "gmx.de", "gmx.net", "hey.com",
        "hotmail.com", "icloud.com", "live.com", "mac.com", "mail.com", "mail.ru", "me.com",
        "msn.com", "outlook.com", "proton.me", "protonmail.com", "qq.com", "163.com",
        "t-online.de", "web.de", "yahoo.com", "yahoo.co.uk", "yandex.ru", "zoho.com",
        "fastmail.com", "fastmail.fm", "posteo.de", "laposte.net", "orange.fr", "free.fr",
        "telenet.be", "skynet.be", "hotmail.be", "outlook.be", "proximus.be", "ziggo.nl",
        "kpnmail.nl", "planet.nl", "home.nl", "hotmail.nl", "live.nl", "hotmail.fr", "wanadoo.fr",
    }
)  # fmt: skip
