"""The Runs page: runs and sweeps with their metrics, and training curves from the logged scalars.

Only folders that say what they trained (config.yaml or metrics.json) count as runs. A run keeps one
colour in every chart (``charts.run_colours``); the page is a fragment and each chart spec is cached.
"""

from __future__ import annotations

import streamlit as st

from cifar_resnets.app.guard import guarded
from cifar_resnets.app.scan import Scan
from cifar_resnets.app.text import run_row
from cifar_resnets.reporting.runs import CSV_METRICS, EVENTS_GLOB, Run, group_sweeps, read_scalars

PREFERRED_CURVES = ("val/acc", "val/loss", "train/loss_epoch", "train/acc")
WANTED = "wanted_plot_runs"


def _events_signature(run: Run) -> tuple[tuple[str, int, int], ...]:
    files = sorted([*run.path.glob(EVENTS_GLOB), run.path / CSV_METRICS])
    return tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file())


@st.cache_data(max_entries=256, show_spinner=False)
def _cached_scalars(run_dir: str, signature: tuple) -> dict[str, list[tuple[int, float]]]:
    # The signature (logger files' names, sizes, times) is the cache key: a running job's new
    # scalars show up on the next rerun.
    return read_scalars(run_dir)


@st.cache_data(max_entries=256, show_spinner=False)
def _chart_spec(
    tag: str, runs: tuple[tuple[str, str, tuple], ...], colours: tuple[tuple[str, str], ...]
) -> dict:
    """The Vega-Lite spec of one tag's curves for these runs ((name, folder, signature) each)."""
    from cifar_resnets.app.charts import curve_chart

    rows = []
    for name, folder, signature in runs:
        scalars = _cached_scalars(folder, signature)
        epochs = dict(scalars.get("epoch", []))
        points = scalars.get(tag, [])
        rows += [
            {"run": name, "step": step, "epoch": epochs.get(step), "value": value} for step, value in points
        ]
    return curve_chart(rows, tag, dict(colours)).to_dict() if rows else {}


def _selection(options: list[str], default: list[str]) -> None:
    if st.session_state.get(WANTED) is None and default:  # kept like a user's pick: new runs stay out
        st.session_state[WANTED] = default
    wanted = st.session_state.get(WANTED)
    kept = [name for name in wanted or [] if name in options]
    st.session_state["plot_runs"] = kept if wanted == [] or kept else default


def _keep_selection() -> None:
    st.session_state[WANTED] = list(st.session_state["plot_runs"])


@st.fragment
def runs_page(scan: Scan) -> None:
    guarded("Runs", _runs_page, scan)


def _runs_page(scan: Scan) -> None:
    st.subheader("Runs")
    if scan.folder is None:
        st.info(f"{scan.problem} Runs are listed here once there is an outputs folder.")
        return
    runs = [r for r in scan.runs if r.recorded]
    others = [r for r in scan.runs if not r.recorded]
    if not runs:
        st.info(
            f"No runs found under `{scan.folder}`: train one with `cifar-train`, then press *Look again*."
        )
    if others:
        st.caption(
            "Not counted as runs (checkpoints but no config.yaml or metrics.json): "
            + ", ".join(f"`{r.name}`" for r in others)
        )
    if not runs:
        return
    single = [run_row(r) for r in runs if r.sweep is None]
    st.markdown(f"**Runs** ({len(single)})")
    if single:
        st.dataframe(single, hide_index=True)
    for sweep, jobs in group_sweeps(runs).items():
        where = sweep.relative_to(scan.folder) if sweep.is_relative_to(scan.folder) else sweep
        st.markdown(f"**Sweep** `{where}` ({len(jobs)} jobs)")
        st.dataframe([run_row(j) for j in jobs], hide_index=True)

    by_name = {r.name: r for r in runs}
    signatures = {name: _events_signature(run) for name, run in by_name.items()}
    with_curves = [name for name in by_name if signatures[name]]
    _selection(list(by_name), with_curves[:3])
    picked = st.multiselect("Runs to plot", options=list(by_name), key="plot_runs", on_change=_keep_selection)
    if not picked:
        st.info("Pick runs above to plot their training curves.")
        return
    curves = {name: _cached_scalars(str(by_name[name].path), signatures[name]) for name in picked}
    tags = sorted({tag for scalars in curves.values() for tag in scalars if tag != "epoch"})
    if not tags:
        st.caption("The picked runs logged no curves (logger=none, or still starting).")
        return
    default_tags = [t for t in PREFERRED_CURVES if t in tags] or tags[:2]
    shown = st.multiselect("Curves", options=tags, default=default_tags, key="plot_tags")
    if not shown:
        st.info("Pick curves above to plot them.")
        return

    from cifar_resnets.app.charts import run_colours

    colour_of = run_colours([r.name for r in sorted(scan.runs, key=_age)])
    colours = tuple((name, colour_of[name]) for name in picked)
    runs_key = tuple((name, str(by_name[name].path), signatures[name]) for name in picked)
    for tag in shown:
        spec = _chart_spec(tag, runs_key, colours)
        if spec:
            st.vega_lite_chart(spec, width="stretch")


def _age(run: Run) -> tuple:
    """Oldest first: a new run takes the next colour and leaves the others' alone."""
    from datetime import datetime

    return (run.date or datetime.min, str(run.path))
