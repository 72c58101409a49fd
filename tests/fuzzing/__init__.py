"""Session fuzzing: grammars of IMAP and SMTP client sessions, a raw wire to play them, checks.

The grammars (``imap_sessions.py``, ``smtp_sessions.py``) are hypothesis strategies that build
whole client sessions from commands with valid and broken variants; ``wire.py`` plays one
against a real listener and keeps everything the listener sent back; ``checks.py`` says whether
what came back is proper protocol.
"""
