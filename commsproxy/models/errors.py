"""What can go wrong with a model file; every message names the file and what to do."""

from __future__ import annotations

__all__ = [
    "IncompatibleModelError",
    "LegacyModelError",
    "ModelError",
    "ModelNotFoundError",
    "NotAModelError",
    "SidecarError",
    "TamperedModelError",
    "UntrustedTypeError",
    "WrongTaskError",
]


class ModelError(Exception):
    """A model cannot be saved, found or loaded; the message names the file and what to do."""

    #: The task the model was wanted for, when the caller says (the CLI names its option).
    task: str | None = None


class ModelNotFoundError(ModelError):
    """No model file where one was expected."""


class SidecarError(ModelError):
    """The sidecar is missing, not valid JSON, or of a layout this version does not know."""


class TamperedModelError(ModelError):
    """The model file's bytes do not match the checksum in its sidecar."""


class IncompatibleModelError(ModelError):
    """The model was trained with another scikit-learn version, or cannot be read here."""


class WrongTaskError(ModelError):
    """The model was trained for another task than the caller asked for."""


class NotAModelError(ModelError):
    """The file is not a commsproxy model of the expected shape (not .skops, wrong steps...)."""


class UntrustedTypeError(NotAModelError):
    """The file holds an object of a type commsproxy's models never contain."""

    def __init__(self, message: str, types: list[str]) -> None:
        super().__init__(message)
        self.types = types


class LegacyModelError(ModelError):
    """A ``.joblib`` model (a pickle): never loaded, except by ``commsproxy models migrate``."""
