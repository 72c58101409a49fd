"""IMAP without I/O: the bottom layer every other part of commsproxy builds on.

Bytes go in and typed values come out; nothing here imports asyncio, a network library or any
other part of commsproxy. ``framer`` cuts a byte stream into whole messages (lines and literals,
bounded); ``grammar`` reads commands and responses; ``mailbox_names`` is the one modified UTF-7
codec; ``names`` holds the mailboxes and keywords commsproxy uses; ``errors`` are refusals that
render their own tagged reply; ``capability`` rewrites what the server says it can do. For
the client side (commsproxy/upstream): ``commands`` spells commands (quoting, UID sets,
literals), ``responses`` reads whole framed responses into typed values, ``codes`` names the
response codes acted on.
"""
