"""The app's Altair charts: a prediction's top classes, and training curves with one colour per run.

Vega-Lite picks colours per chart from the values present in it, so a run would change colour when
another chart lacks one of the runs; here every run gets its colour from its place among all the runs
found, and each chart is given that mapping explicitly. Steps are integers (no 3.5 ticks), and a
curve with a single value gets a padded axis, since a zero-width domain is drawn with ticks such as
0.000000.

Charts stretch to their container and draw no text outside their bars, so they never spill into
the next column on a narrow screen.
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


def run_colours(names: list[str]) -> dict[str, str]:
    """A fixed colour for each run name, by its place in ``names`` (all the runs found)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def top_chart(ranked: list[tuple[str, float]]) -> alt.Chart:
    frame = pd.DataFrame(ranked, columns=["class", "probability"])
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y("class:N", sort=None, title=None),
            x=alt.X(
                "probability:Q",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%", tickCount=4),
                title=None,
            ),
            tooltip=["class", alt.Tooltip("probability:Q", format=".2%")],
        )
        .properties(height=24 * len(frame) + 10)
    )


def _padded(low: float, high: float) -> list[float] | None:
    """A domain around a single value (None when the values already span a range)."""
    if high > low:
        return None
    pad = abs(low) * 0.05 or 0.05
    return [low - pad, high + pad]


def curve_chart(rows: list[dict], tag: str, colours: dict[str, str]) -> alt.Chart:
    """One tag's curves; ``rows`` hold ``run``, ``step`` and ``value``; ``colours`` the picked runs."""
    frame = pd.DataFrame(rows)
    steps = (int(frame["step"].min()), int(frame["step"].max()))
    values = (float(frame["value"].min()), float(frame["value"].max()))
    x_scale = alt.Scale(domain=[steps[0] - 1, steps[1] + 1]) if steps[0] == steps[1] else alt.Scale()
    y_domain = _padded(*values)
    y_scale = alt.Scale(zero=False, domain=y_domain) if y_domain else alt.Scale(zero=False)
    runs = list(colours)
    return (
        alt.Chart(frame)
        .mark_line(point=len(frame) <= MANY_POINTS)
        .encode(
            x=alt.X("step:Q", scale=x_scale, axis=alt.Axis(format="d", tickMinStep=1), title="step"),
            y=alt.Y("value:Q", scale=y_scale, axis=alt.Axis(format=VALUE_FORMAT), title=tag),
            color=alt.Color("run:N", scale=alt.Scale(domain=runs, range=[colours[r] for r in runs])),
            tooltip=["run", "step", alt.Tooltip("value:Q", format=VALUE_FORMAT)],
        )
        .properties(title=tag, height=260)
    )
