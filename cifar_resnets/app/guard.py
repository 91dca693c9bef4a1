"""Each page runs guarded: a failure shows in that page as one line, and the other pages still work.

A ``UserError`` says what to do; anything else is a bug, reported in one line that points to the log
of the terminal running cifar-app, where its traceback goes: a user never sees a traceback. The
Classify and Runs pages are fragments that rerun on their own, so they call this from inside.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import streamlit as st

from cifar_resnets.app.text import shortened

log = logging.getLogger("cifar_resnets.app")


def guarded(page: str, func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)``, or None after showing its failure in one line."""
    from cifar_resnets.errors import UserError

    try:
        return func(*args)
    except UserError as err:  # an expected problem: its one line says what to do
        st.error(str(err))
    except Exception as err:  # noqa: BLE001 - a bug: one line here, the trace in the server's log
        log.exception("the %s page failed", page)
        st.error(
            f"The {page} page failed ({type(err).__name__}: {shortened(str(err))}); the other pages "
            "still work. Its details are in the log of the terminal running cifar-app: please report them."
        )
    return None
