"""The local page: a small aiohttp app that ``commsproxy run`` serves on 127.0.0.1.

``access.py`` keeps strangers out (the per-install secret, the cookie, CSRF, the Host check,
the security headers), ``facts_*.py`` say what each page shows as plain data read from the
state store, ``svg.py`` draws the charts, ``app.py`` ties routes to templates and to the
user's actions, and ``server.py`` starts and stops it beside the listeners. Nothing here is
imported by triage: the page sits beside ``proxy/`` at the top and reads triage's store.
"""
