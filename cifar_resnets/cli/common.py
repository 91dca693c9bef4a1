"""What every command line of the suite shares."""

from __future__ import annotations

import contextlib
import logging
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
