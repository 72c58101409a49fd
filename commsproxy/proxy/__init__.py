"""The client-facing proxies: IMAP (relay, gate) and SMTP (submission relay)."""
