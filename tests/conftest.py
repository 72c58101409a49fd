"""Shared fixtures: the private Dovecot test bed and commsproxy instances in front of it."""

pytest_plugins = [
    "tests.testbed.fixtures",
    "tests.testbed.proxy_fixtures",
    "tests.testbed.oauth_fixtures",
]
