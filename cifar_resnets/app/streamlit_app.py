"""Streamlit app: classify images with trained checkpoints, compare and ensemble them, browse runs.

Start it with ``cifar-app --outputs outputs``; docs/app.md describes the pages. Streamlit sends each
element as the script reaches it, so the sidebar and tabs are drawn before anything heavy is imported,
and torch only when a checkpoint is read (importing it takes seconds).
"""

from __future__ import annotations

import argparse
import os
import sys

import streamlit as st

from cifar_resnets.app.guard import guarded
from cifar_resnets.app.scan import current_scan, look_again

OUTPUTS_ENV = "CIFAR_APP_OUTPUTS"


def default_outputs() -> str:
    """``--outputs`` after the ``--`` of ``streamlit run``, else $CIFAR_APP_OUTPUTS, else ``outputs``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--outputs")
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args.outputs if args.outputs is not None else os.environ.get(OUTPUTS_ENV, "outputs")


STYLE = """<style>
/* the results need the width more than the page needs wide margins */
[data-testid="stMainBlockContainer"] { padding: 2.5rem 2rem 4rem; }
/* the picker's chips show whole names, wrapped, so two entries never read the same */
[data-testid="stMultiSelect"] [data-tag] { max-width: 100%; height: auto; }
[data-testid="stMultiSelect"] [data-tag] span {
  white-space: normal; overflow-wrap: anywhere; overflow: visible; }
</style>"""


def main() -> None:
    st.set_page_config(page_title="cifar_resnets", page_icon="🔎", layout="wide")
    st.html(STYLE)
    with st.sidebar:
        st.title("cifar_resnets")
        typed = st.text_input("Outputs folder", value=default_outputs(), key="outputs")
        scan = current_scan(typed)
        if scan.problem:
            st.warning(scan.problem)
        else:
            runs = len(scan.runs)
            st.caption(f"{runs} run{'s' if runs != 1 else ''} found below this folder.")
        st.button(
            "Look again",
            key="look_again",
            on_click=look_again,
            help="List runs and checkpoints written since.",
        )
    models_tab, classify_tab, runs_tab = st.tabs(["Models", "Classify", "Runs"])
    with models_tab:
        from cifar_resnets.app.models_page import models_page, pretrained_choices

        picked = guarded("Models", models_page, scan, pretrained_choices()) or []
    with classify_tab:
        from cifar_resnets.app.classify_page import classify_page

        classify_page(picked)  # a fragment, guarded inside: it also reruns on its own
    with runs_tab:
        from cifar_resnets.app.runs_page import runs_page

        runs_page(scan)


main()
