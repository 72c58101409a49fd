"""The ``commsproxy`` command: parse options, call the library, print. No logic of its own."""

from . import proxy as _proxy  # noqa: F401  (registers run, init)
from .common import main

__all__ = ["main"]
