"""The app's Altair charts: training curves with one colour per run.

Vega-Lite picks colours per chart from the values present, so a run would change colour between charts;
here each run's colour comes from its place among all runs and is passed to every chart. Steps are
integers, and a single-value curve gets a padded axis (a zero-width domain draws ticks like 0.000000).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

# Tableau 20, the categorical palette Vega uses: colours repeat only beyond 20 runs.
PALETTE = (
    "#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6",
    "#9d755d", "#bab0ac", "#9ecae9", "#ffbf79", "#88d27a", "#ff9d98", "#b7dcd8", "#f2cf5b",
    "#d6a5c9", "#fcbfd2", "#d8b5a5", "#79706e",
)  # fmt: skip
VALUE_FORMAT = ".4~g"  # four significant digits, trailing zeros dropped: 0.9123, 2.3, 1e-4
MANY_POINTS = 60  # above this many points a curve is drawn as a line without point marks
OUTLIER = 10  # values over this many times the upper quartile are cut off the axis


def run_colours(names: list[str]) -> dict[str, str]:
    """A fixed colour for each run name, by its place in ``names`` (all the runs found)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _padded(low: float, high: float) -> list[float] | None:
    """A domain around a single value (None when the values already span a range)."""
    if high > low:
        return None
    pad = abs(low) * 0.05 or 0.05
    return [low - pad, high + pad]


def _robust_top(values: pd.Series) -> float | None:
    """Where to cut the axis when a few values (a diverged epoch) dwarf the rest, else None."""
    typical = float(values.quantile(0.75))
    if len(values) < 5 or typical <= 0 or float(values.max()) <= OUTLIER * typical:
        return None
    return float(values[values <= OUTLIER * typical].max()) * 1.1


def curve_chart(rows: list[dict], tag: str, colours: dict[str, str]) -> alt.Chart:
    """One tag's curves; ``rows`` hold ``run``, ``step``, ``epoch`` (or None) and ``value``.

    Epoch-level curves (one point per epoch) are drawn against the epoch, so runs of different
    lengths line up; step-level ones against the step. Accuracies read as percentages, as in the
    tables. A few values far above the rest (a diverged epoch) are cut off the axis rather than
    flattening every other curve; the title says so.
    """
    frame = pd.DataFrame(rows)
    by_epoch = "epoch" in frame and frame["epoch"].notna().all()
    if by_epoch:
        by_epoch = not frame.duplicated(["run", "epoch"]).any()
    if by_epoch:
        frame["epoch"] = frame["epoch"].astype(int) + 1  # epochs done, counted from 1
    x_field = "epoch" if by_epoch else "step"
    steps = (int(frame[x_field].min()), int(frame[x_field].max()))
    values = (float(frame["value"].min()), float(frame["value"].max()))
    x_scale = alt.Scale(domain=[steps[0] - 1, steps[1] + 1]) if steps[0] == steps[1] else alt.Scale()
    y_domain = _padded(*values)
    top = _robust_top(frame["value"])
    title = tag
    if top is not None:
        y_domain, title = [values[0], top], f"{tag} (values above {top:.4g} cut off)"
    y_scale = alt.Scale(zero=False, domain=y_domain) if y_domain else alt.Scale(zero=False)
    fraction = tag.rsplit("/", 1)[-1].startswith("acc") and values[1] <= 1.0
    y_format = "%" if fraction else VALUE_FORMAT
    runs = list(colours)
    return (
        alt.Chart(frame)
        .mark_line(point=len(frame) <= MANY_POINTS, clip=True)
        .encode(
            x=alt.X(f"{x_field}:Q", scale=x_scale, axis=alt.Axis(format="d", tickMinStep=1), title=x_field),
            y=alt.Y("value:Q", scale=y_scale, axis=alt.Axis(format=y_format), title=tag),
            color=alt.Color(
                "run:N",
                scale=alt.Scale(domain=runs, range=[colours[r] for r in runs]),
                legend=alt.Legend(orient="bottom", columns=1, labelLimit=0, title=None),
            ),
            tooltip=["run", x_field, alt.Tooltip("value:Q", format=".2%" if fraction else VALUE_FORMAT)],
        )
        .properties(title=title, height=260)
    )
