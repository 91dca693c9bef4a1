"""The Runs page: runs and sweeps with their metrics, and training curves from the TensorBoard scalars.

A run keeps one colour in every chart (``charts.run_colours``, by its place among all runs found), so
the same run can be followed from one curve to the next.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from cifar_resnets.app.text import run_row
from cifar_resnets.reporting.runs import EVENTS_GLOB, Run, find_runs, group_sweeps, read_scalars

PREFERRED_CURVES = ("val/acc", "val/loss", "train/loss_epoch", "train/acc")


def _events_signature(run: Run) -> tuple[tuple[str, int, int], ...]:
    files = sorted(run.path.glob(EVENTS_GLOB))
    return tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)


@st.cache_data(max_entries=256, show_spinner=False)
def _cached_scalars(run_dir: str, signature: tuple) -> dict[str, list[tuple[int, float]]]:
    # The signature (event files' names, sizes, times) is the cache key: a running job's new
    # scalars show up on the next rerun.
    return read_scalars(run_dir)


def runs_page(outputs: Path | None) -> None:
    if outputs is None:
        st.info("No outputs folder: type one in the sidebar.")
        return
    runs = find_runs(outputs)
    if not runs:
        st.info(f"No runs found under `{outputs}`.")
        return
    single = [run_row(r) for r in runs if r.sweep is None]
    st.markdown(f"**Runs** ({len(single)})")
    if single:
        st.dataframe(single, hide_index=True)
    for sweep, jobs in group_sweeps(runs).items():
        where = sweep.relative_to(outputs) if sweep.is_relative_to(outputs) else sweep
        st.markdown(f"**Sweep** `{where}` ({len(jobs)} jobs)")
        st.dataframe([run_row(j) for j in jobs], hide_index=True)

    by_name = {r.name: r for r in runs}
    picked = st.multiselect("Runs to plot", options=list(by_name), default=list(by_name)[:3], key="plot_runs")
    curves = {
        name: _cached_scalars(str(by_name[name].path), _events_signature(by_name[name])) for name in picked
    }
    tags = sorted({tag for scalars in curves.values() for tag in scalars})
    if not tags:
        st.caption("The picked runs logged no scalars (logger=none, or still starting).")
        return
    default_tags = [t for t in PREFERRED_CURVES if t in tags] or tags[:2]
    shown = st.multiselect("Curves", options=tags, default=default_tags, key="plot_tags")

    from cifar_resnets.app.charts import curve_chart, run_colours

    colour_of = run_colours(list(by_name))
    colours = {name: colour_of[name] for name in picked}
    for tag in shown:
        rows = [
            {"run": name, "step": step, "value": value}
            for name, scalars in curves.items()
            for step, value in scalars.get(tag, [])
        ]
        if rows:
            st.altair_chart(curve_chart(rows, tag, colours), width="stretch")
