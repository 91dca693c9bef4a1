"""The outputs folder, scanned once per session and folder: every page reads the same ``Scan``.

Walking a large outputs folder and reading each run's config.yaml takes a noticeable part of a second,
so it is done when the typed folder changes or *Look again* is pressed, never on a click elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from cifar_resnets.app.text import outputs_folder, shortened
from cifar_resnets.reporting.runs import Run, find_runs

RESCANS = "rescans"  # how often *Look again* was pressed in this session


@dataclass(frozen=True, eq=False)
class Scan:
    """What was found under the typed folder (``folder`` None, with ``problem``, when it is unusable)."""

    typed: str
    folder: Path | None
    problem: str | None
    runs: list[Run] = field(default_factory=list)


def look_again() -> None:
    st.session_state[RESCANS] = st.session_state.get(RESCANS, 0) + 1


def current_scan(typed: str) -> Scan:
    """The scan of ``typed`` for this session, made again only when the text or *Look again* changes."""
    key = (typed, st.session_state.get(RESCANS, 0))
    memo = st.session_state.get("scan")
    if memo is not None and memo[0] == key:
        return memo[1]
    folder, problem = outputs_folder(typed)
    runs: list[Run] = []
    if folder is not None:
        try:
            runs = find_runs(folder)
        except OSError as err:  # a folder that cannot be walked (permissions...): say so, list nothing
            folder, problem = None, f"`{shortened(typed)}` cannot be read ({err.strerror or err})."
    scan = Scan(typed, folder, problem, runs)
    st.session_state["scan"] = (key, scan)
    return scan
