"""PNG plots of runs and tables: training curves, comparison bars, confusion matrices.

Figures are drawn with matplotlib's object API on an Agg canvas, so importing this module never
changes the process-wide backend (a GUI, a notebook or a headless job alike). Curves are read
from what the run's loggers wrote into its folder (TensorBoard event files or the CSV logger's
``metrics.csv``, ``runs.read_scalars``), so no run needs to write a second copy of its history.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cifar_resnets.reporting.runs import read_scalars as read_run_scalars

# (panel title, [(TensorBoard tag, legend label), ...]); the first tag found per label is used.
CURVE_PANELS = (
    ("loss", [("train/loss_epoch", "train"), ("val/loss", "validation")]),
    ("accuracy", [("train/acc", "train"), ("val/acc", "validation")]),
)


def read_scalars(run_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every scalar in the run folder: ``tag -> (steps, values)`` (empty if none)."""
    return {
        tag: (np.array([s for s, _ in points]), np.array([v for _, v in points]))
        for tag, points in read_run_scalars(run_dir).items()
    }


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def plot_training_history(
    run_dirs: str | Path | Sequence[str | Path], out: str | Path, title: str = ""
) -> Path:
    """Loss and accuracy, train and validation, against the optimizer step (the figure of the CBAM
    attention-ResNet recipe).

    Several run folders (the seeds of one table row) are drawn in the same panels, one line
    style per seed. Raises ``FileNotFoundError`` when none of them has curves to draw.
    """
    dirs = [Path(run_dirs)] if isinstance(run_dirs, (str, Path)) else [Path(d) for d in run_dirs]
    runs = [(d, read_scalars(d)) for d in dirs]
    runs = [(d, s) for d, s in runs if s]
    if not runs:
        raise FileNotFoundError(
            f"no logged scalars (event files or metrics.csv) in {', '.join(map(str, dirs))}"
        )
    fig = Figure(figsize=(11, 4))
    for col, (panel, series) in enumerate(CURVE_PANELS):
        ax = fig.add_subplot(1, len(CURVE_PANELS), col + 1)
        for k, (run_dir, scalars) in enumerate(runs):
            for i, (tag, label) in enumerate(series):
                if tag not in scalars:
                    continue
                steps, values = scalars[tag]
                name = label if len(runs) == 1 else f"{label} ({run_dir.name})"
                ax.plot(steps, values, color=f"C{i}", alpha=1.0 if k == 0 else 0.5, marker=".", label=name)
        ax.set_title(panel)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, out)


def plot_rows_training_error(rows: dict[str, Sequence[str | Path]], out: str | Path, title: str = "") -> Path:
    """Training error (%) against the step, one colour per row, one line per seed: the shape of He et
    al. 2016's Fig. 6 (a deeper plain net above a shallower one; a deeper ResNet below). Raises
    ``FileNotFoundError`` when no run logged a training accuracy."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    for i, (name, dirs) in enumerate(rows.items()):
        for k, run_dir in enumerate(dirs):
            scalars = read_scalars(run_dir)
            if "train/acc" not in scalars:
                continue
            steps, acc = scalars["train/acc"]
            ax.plot(
                steps, 100 * (1 - acc), color=f"C{i}", alpha=1.0 if k == 0 else 0.4, label=None if k else name
            )
    if not ax.lines:
        raise FileNotFoundError("no run of the table logged train/acc")
    ax.set_xlabel("step")
    ax.set_ylabel("training error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    return _save(fig, out)


def plot_comparison(
    names: Sequence[str],
    ours: Sequence[float | None],
    ours_std: Sequence[float | None],
    published: Sequence[float | None],
    out: str | Path,
    ylabel: str,
    title: str = "",
) -> Path:
    """Grouped bars per row: ours (mean with a ±std error bar) next to the published value."""
    x = np.arange(len(names))
    width = 0.4

    def values(seq: Sequence[float | None]) -> np.ndarray:
        return np.array([math.nan if v is None else float(v) for v in seq])

    fig = Figure(figsize=(max(6.0, 0.9 * len(names) + 2), 4.5))
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(x - width / 2, values(ours), width, yerr=np.nan_to_num(values(ours_std)), capsize=3, label="ours")
    ax.bar(x + width / 2, values(published), width, label="published", color="C1")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    return _save(fig, out)


def plot_confusion_matrix(
    matrix: np.ndarray | Sequence[Sequence[int]], classes: Sequence[str], out: str | Path, title: str = ""
) -> Path:
    """Row-normalised confusion matrix (rows: true class, columns: predicted class), the one plot of it
    that cifar-eval and cifar-reproduce write. Class names are shown up to 40 classes, cell values up to
    20, so CIFAR-100 stays legible."""
    matrix = np.asarray(matrix, dtype=np.float64)
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    size = min(max(5.0, 0.5 * n), 16.0)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if n <= 40:
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.set_xticklabels([str(c) for c in classes], rotation=45, ha="right")
        ax.set_yticklabels([str(c) for c in classes])
    if n <= 20:
        for i in range(n):
            for j in range(n):
                color = "white" if normalised[i, j] > 0.5 else "black"
                ax.text(j, i, f"{normalised[i, j]:.2f}", ha="center", va="center", fontsize=7, color=color)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, out)


def write_training_history(run_dir: str | Path) -> Path | None:
    """``<run>/training_history.png`` from the run's logged scalars; None when the run logged none."""
    try:
        return plot_training_history(
            run_dir, Path(run_dir) / "training_history.png", title=Path(run_dir).name
        )
    except FileNotFoundError:
        return None
