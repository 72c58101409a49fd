"""The IMAP proxy: sans-IO framing and parsing, the per-session relay, and the listener."""
