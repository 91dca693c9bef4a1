"""Streamlit app: classify images with trained checkpoints, compare and ensemble them, browse runs.

Start it with ``cifar-app --outputs outputs`` (or ``streamlit run cifar_resnets/app/streamlit_app.py --
--outputs outputs``); docs/app.md describes each page. Three pages (tabs):

- **Models** (``models_page``): the checkpoints found under the outputs folder that load, the newest
  preselected, and apart from them the ones that do not, each with its reason.
- **Classify** (``classify_page``): uploads or sampled test images through each picked checkpoint,
  side by side, plus the ensemble (mean of the probabilities) when they share their classes.
- **Runs** (``runs_page``): runs and sweeps with their metrics, and training curves.

Streamlit sends each element to the browser as the script reaches it, so this script draws the
sidebar and the tabs before it imports anything heavy: the pages come in as modules after that, and
torch only when a checkpoint is read (importing it takes seconds, the first screen needs none of it).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

import streamlit as st

from cifar_resnets.app.text import outputs_folder

OUTPUTS_ENV = "CIFAR_APP_OUTPUTS"


def default_outputs() -> str:
    """``--outputs`` after the ``--`` of ``streamlit run``, else $CIFAR_APP_OUTPUTS, else ``outputs``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--outputs")
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args.outputs if args.outputs is not None else os.environ.get(OUTPUTS_ENV, "outputs")


def guarded(page: str, func: Callable[..., Any], *args: Any) -> Any:
    """Run one page; a failure shows in that page with its traceback, and the other pages still work."""
    from cifar_resnets.errors import UserError

    try:
        return func(*args)
    except UserError as err:  # an expected problem: its one line says what to do
        st.error(str(err))
    except Exception as err:  # noqa: BLE001 - a bug: shown with its traceback, the app keeps serving
        st.error(f"The {page} page hit a bug ({type(err).__name__}); please report it with this trace.")
        st.exception(err)
    return None


def main() -> None:
    st.set_page_config(page_title="cifar_resnets", page_icon="🔎", layout="wide")
    with st.sidebar:
        st.title("cifar_resnets")
        typed = st.text_input("Outputs folder", value=default_outputs(), key="outputs")
        outputs, problem = outputs_folder(typed)
        if problem:
            st.warning(problem)
        st.caption("Runs and checkpoints written by `cifar-train` below this folder are listed.")
    models_tab, classify_tab, runs_tab = st.tabs(["Models", "Classify", "Runs"])
    with models_tab:
        from cifar_resnets.app.models_page import models_page

        picked = guarded("Models", models_page, outputs) or []
    with classify_tab:
        from cifar_resnets.app.classify_page import classify_page

        guarded("Classify", classify_page, picked)
    with runs_tab:
        from cifar_resnets.app.runs_page import runs_page

        guarded("Runs", runs_page, outputs)


main()
