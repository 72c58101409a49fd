"""The ``commsproxy`` command: parse options, call the library, print. No logic of its own."""

from . import accounts as _accounts  # noqa: F401  (registers accounts list, add)
from . import actions as _actions  # noqa: F401  (registers deliver, urgent)
from . import check as _check  # noqa: F401  (registers check)
from . import classifier as _classifier  # noqa: F401  (registers train, classify)
from . import followups as _followups  # noqa: F401  (registers followups)
from . import holding as _holding  # noqa: F401  (registers stop-holding, start-holding)
from . import login as _login  # noqa: F401  (registers login)
from . import proxy as _proxy  # noqa: F401  (registers run, init)
from . import service as _service  # noqa: F401  (registers service install, uninstall, status)
from . import triage as _triage  # noqa: F401  (registers status, release, explain)
from . import web as _web  # noqa: F401  (registers open)
from .common import main

__all__ = ["main"]
