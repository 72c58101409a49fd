"""Triage: deciding, holding and releasing mail on the server, and when."""
