"""commsproxy: a local IMAP/SMTP proxy that triages, holds and files mail."""

__version__ = "0.1.0"
