"""Reading a model's scoring form (``NAME.npz``) as ``run`` does: checked, never unpickled.

The form is the model as plain arrays (classifier/scoring_form.py), so ``run`` can score mail
without importing scikit-learn or skops. It is read only with its sidecar, with the same
checks as the model (the sidecar's fields, then its checksum, then the scikit-learn series and
the task), against the ``scoring_sha256`` the sidecar holds: a changed form is refused like
a changed model. A model saved without a form (by an older commsproxy, or of a shape the form
does not cover), or copied without it, has none, which is not an error: the caller then loads
the model itself.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .errors import ModelError, TamperedModelError
from .store import ModelInfo, check_use, checked_sidecar

__all__ = ["NoScoringForm", "read_scoring"]

_RETRAIN = "retrain it with `commsproxy train`"


class NoScoringForm(Exception):
    """The model has no scoring form; the message says why (not a refusal)."""


def read_scoring(path: Path, task: str, *, bundled: bool = False) -> tuple[bytes, ModelInfo]:
    """The scoring form's bytes and the model's sidecar, both checked.

    Raises NoScoringForm when the sidecar names no form or the form is not there, a
    ModelError (as loading the model would) when the sidecar fails its checks, and
    TamperedModelError when the form's bytes do not match their checksum.
    """
    _, info, what = checked_sidecar(path, bundled=bundled)
    if info.scoring_sha256 is None:
        raise NoScoringForm(f"{what} was saved without a scoring form")
    try:
        data = info.scoring_path.read_bytes()
    except FileNotFoundError:
        # The model alone was copied: it is still checked when it is loaded itself.
        raise NoScoringForm(f"the scoring form {info.scoring_path} of {what} is missing") from None
    except OSError as exc:
        raise ModelError(f"cannot read the scoring form of {what}: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != info.scoring_sha256:
        fix = "reinstall commsproxy" if bundled else _RETRAIN
        raise TamperedModelError(
            f"the scoring form {info.scoring_path} of {what} does not match the checksum "
            f"written when it was saved; refusing to load it. If you did not replace it "
            f"yourself, find out who did; then {fix}"
        )
    check_use(info, what, task)
    return data, info
