"""The client-facing proxies: IMAP (relay, codec, gate) and SMTP (submission relay)."""
