"""How the app writes values: one wording for each kind of fact, so every table and caption agrees.

A run's date is the time it started (from Hydra's folder names, ``reporting.runs``), in every table: a
checkpoint's file time would give the same run a second, different date. A value a run did not record
reads as a word ("not tested", "—"), never as Python's ``None``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cifar_resnets.reporting.runs import Run

MISSING = "—"
NOT_TESTED = "not tested"
DATE_FORMAT = "%Y-%m-%d %H:%M"


def percent(value: Any, missing: str = MISSING) -> str:
    return f"{value:.2%}" if isinstance(value, (int, float)) and not isinstance(value, bool) else missing


def number(value: Any) -> str:
    """Counts with thousands separators, other numbers with four significant digits."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return MISSING
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.4g}"


def started(run: Run) -> str:
    return run.date.strftime(DATE_FORMAT) if run.date else MISSING


def run_row(run: Run) -> dict[str, str]:
    """``Run.row()`` as the tables show it."""
    row = run.row()
    return {
        "run": row["run"],
        "status": row["status"],
        "started": started(run),
        "model": row["model"],
        "data": row["data"],
        "test acc": percent(row["test acc"], NOT_TESTED),
        "val acc": percent(row["val acc"]),
        "test loss": number(row["test loss"]),
        "epochs": number(row["epochs"]),
        "params": number(row["params"]),
        "images/s": number(row["images/s"]),
        "train s": number(row["train s"]),
        "path": row["path"],
    }


def clean_path_text(text: str) -> str:
    """A typed or pasted path without the blanks and quotes that copying from a shell leaves."""
    return text.strip().strip("'\"").strip()


def shortened(text: str, keep: int = 60) -> str:
    """A path as a line can show it: a pasted log line is cut in the middle, not spread over the page."""
    return text if len(text) <= keep else f"{text[: keep // 2]}…{text[-keep // 2 :]}"


def outputs_folder(text: str) -> tuple[Path | None, str | None]:
    """(folder, None) for a usable outputs folder, else (None, why not and what to do) in one line.

    An empty field is refused rather than read as the working folder: listing whatever happens to lie
    where the server started would show runs the user never asked for. A folder that does not exist
    yet is what a newcomer has before training: the line says how to make one.
    """
    text = clean_path_text(text)
    if not text:
        return None, "Type the folder cifar-train writes to (e.g. `outputs`); nothing is listed until then."
    path = Path(text).expanduser()
    where = f"`{shortened(str(path))}`"
    if not path.is_absolute():
        where += f" (relative to `{Path.cwd()}`)"
    try:
        exists, is_dir = path.exists(), path.is_dir()
    except OSError as err:  # e.g. a folder name over 255 bytes: the system refuses the name itself
        return (
            None,
            f"{where} cannot be a folder ({err.strerror or err}); type the folder cifar-train writes to.",
        )
    if not exists:
        return None, (
            f"{where} does not exist yet: train a net with `cifar-train` (it writes there), "
            "or type the folder it writes to."
        )
    if not is_dir:
        return None, f"{where} is a file, not a folder; type the folder that holds runs/ and sweeps/."
    return path, None
