"""The exceptions for problems a user can fix: ``UserError`` and its five kinds.

A ``UserError`` is an expected problem, of one kind a user can act on: a config value or option that
cannot work (``ConfigError``), a dataset or weights file missing, damaged or not downloadable
(``DataError``), a file that is no usable checkpoint (``CheckpointError``), a file to read or a place
to write that cannot be used (``InputError``), a run that cannot start or go on in its folder
(``RunError``). Its message is one line that says what is wrong and what to do. The command lines print
it as ``<prog>: error: <message>`` and exit with ``exit_code`` (2; 1 for a run whose loss diverged).
Every other exception is a bug: it keeps its traceback, and a sweep records it in the job's
``error.txt``.
"""

from __future__ import annotations

from typing import Any, TypeVar

E = TypeVar("E", bound=BaseException)


class UserError(Exception):
    """An expected problem with the user's input; the message says what to change."""

    exit_code = 2


class ConfigError(UserError, ValueError):
    """A config value or command-line option that cannot work (a missing optional extra too); the message
    names the key or option and what to change."""


class DataError(UserError, FileNotFoundError, ValueError):
    """A dataset or weights file that is missing, damaged, unsafe to unpickle or cannot be downloaded;
    the message names the file and how to get a good copy. A ``FileNotFoundError`` too, as the missing
    files it mostly reports."""


class CheckpointError(UserError, ValueError):
    """A file that is not a usable checkpoint or weights file of this suite (missing, damaged, another
    program's, another model's); ``kind`` says which (``cifar_resnets.inference.checkpoint.KINDS``)."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind

    def __reduce__(self):  # picklable with its kind (joblib sends a sweep job's failure between processes)
        return (type(self), (str(self), self.kind))


class InputError(UserError, ValueError):
    """A file the user gave to read (an image, an array, labels) or a place asked for an output that
    cannot be used; the message names it and what to do. ``reason``: what is wrong with the file alone,
    where a list names the file beside it (the entries of a folder left out)."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = message if reason is None else reason


class RunError(UserError, RuntimeError):
    """A run that cannot start or go on: its folder holds another run, another process works in it (or
    in a table's folder), a file of it cannot be written, or its loss diverged. ``details``: what the
    run's record keeps beside the message (where the loss diverged). A diverged run failed rather than
    its input being refused: it exits with status 1."""

    def __init__(self, message: str, exit_code: int = 2, **details: Any):
        super().__init__(message)
        self.exit_code, self.details = exit_code, details


def find_cause(err: BaseException | None, kind: type[E]) -> E | None:
    """``err`` or the ``kind`` exception it was raised from or during (libraries wrap errors in their
    own: Hydra's ``instantiate`` a constructor's, exporters and plotting an ``OSError``)."""
    seen: set[int] = set()
    current = err
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def find_user_error(err: BaseException) -> UserError | None:
    """``err`` or the ``UserError`` it was raised from."""
    return find_cause(err, UserError)
