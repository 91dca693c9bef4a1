"""What every command line of the suite shares."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence

from cifar_resnets.errors import find_user_error


@contextlib.contextmanager
def user_errors(prog: str) -> Iterator[None]:
    """Print a user error as one line, ``prog: error: message``, and exit with its status.

    Only ``UserError`` (also when Hydra's ``instantiate`` wrapped it) is caught: any other exception
    is a bug and keeps its traceback.
    """
    try:
        yield
    except Exception as err:
        user_error = find_user_error(err)
        if user_error is None:
            raise
        print(f"{prog}: error: {user_error}", file=sys.stderr)
        sys.exit(user_error.exit_code)


# True while ``hydra_command`` (not the user) has set HYDRA_FULL_ERROR=1.
_full_error_set_here = False


def _hand_errors_back_to_hydra() -> None:
    global _full_error_set_here
    if _full_error_set_here:
        os.environ.pop("HYDRA_FULL_ERROR", None)
        _full_error_set_here = False


@contextlib.contextmanager
def hydra_command(prog: str) -> Iterator[None]:
    """Around a ``@hydra.main`` app: Hydra's errors about the command line (an unknown option or key, an
    override it cannot parse) in one line, ``prog: error: ...``, exit status 2.

    Hydra prints those over several lines and exits with 1 unless HYDRA_FULL_ERROR=1 makes it raise
    them; the variable is set only until the job starts (``hydra_job``), so what happens from then on is
    reported as Hydra documents it. A HYDRA_FULL_ERROR=1 of the user's own shows every traceback.
    """
    global _full_error_set_here
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        yield
        return
    from cifar_resnets.config.compose import hydra_errors_in_one_line

    os.environ["HYDRA_FULL_ERROR"] = "1"
    _full_error_set_here = True
    try:
        with user_errors(prog), hydra_errors_in_one_line():
            yield
    finally:
        _hand_errors_back_to_hydra()


@contextlib.contextmanager
def hydra_job(prog: str) -> Iterator[None]:
    """Inside the job of a ``hydra_command``: a user error in one line before Hydra adds its "Error
    executing job" line; in a sweep Hydra records a job's failure and goes on with the others, and a
    HYDRA_FULL_ERROR=1 of the user's own keeps every traceback. Lightning logs through Hydra's handlers."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    _hand_errors_back_to_hydra()
    route_lightning_logs()
    if os.environ.get("HYDRA_FULL_ERROR") == "1" or HydraConfig.get().mode == RunMode.MULTIRUN:
        yield
    else:
        with user_errors(prog):
            yield


def keyvalue_to_options(argv: Sequence[str], keys: Sequence[str]) -> list[str]:
    """Turn Hydra-style ``key=value`` tokens into ``--key value`` (dots become dashes) for argparse.

    Only tokens that start with one of the listed keys and ``=`` are translated; other values
    (file names containing ``=`` included) pass through unchanged.
    """
    out: list[str] = []
    for token in argv:
        key, sep, value = token.partition("=")
        if sep and not token.startswith("-") and key in keys:
            out += [f"--{key.replace('.', '-').replace('_', '-')}", value]
        else:
            out.append(token)
    return out


def route_lightning_logs() -> None:
    """Send Lightning's messages through the handlers Hydra set up (the run's log file among them).

    Lightning installs console handlers of its own at import time (on ``lightning``, ``lightning.pytorch``
    and ``lightning.fabric``), before Hydra configures logging: its messages would miss the run's log
    file, or reach the console twice.
    """
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        lightning_log = logging.getLogger(name)
        for handler in list(lightning_log.handlers):
            lightning_log.removeHandler(handler)
        lightning_log.propagate = True
