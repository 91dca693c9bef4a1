"""One measurement of training images/s, the Markdown table that compares measurements, and the
JSON file they are written to."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifar_resnets.errors import InputError

PATHS = ("reference", "cifar-train")  # cifar-bench's two paths (package docstring)


@dataclass
class Result:
    model: str
    batch_size: int
    path: str
    images_per_second: float
    steps: int
    seconds: float
    peak_memory_mib: float | None
    precision: str
    notes: str = ""


def _ratios(results: list[Result]) -> dict[int, float | None]:
    """images/s over the reference loop's for the same model (same batch size when measured)."""
    out: dict[int, float | None] = {}
    for i, r in enumerate(results):
        refs = [s for s in results if s.path == "reference" and s.model == r.model]
        same = [s for s in refs if s.batch_size == r.batch_size]
        ref = (same or refs or [None])[0]
        out[i] = r.images_per_second / ref.images_per_second if ref else None
    return out


def format_table(results: list[Result]) -> str:
    ratios = _ratios(results)
    lines = [
        "| model | batch | path | images/s | x reference | peak device MiB | precision | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(results):
        ratio = f"{ratios[i]:.2f}" if ratios[i] is not None else "-"
        peak = f"{r.peak_memory_mib:,.0f}" if r.peak_memory_mib is not None else "n/a (CPU)"
        lines.append(
            f"| {r.model} | {r.batch_size} | {r.path} | {r.images_per_second:,.0f} | {ratio} | {peak} "
            f"| {r.precision} | {r.notes} |"
        )
    return "\n".join(lines)


def check_json_target(path: Path | None) -> None:
    """Refuse a ``--json`` file that could not be written before any measurement, not after them all.

    Its folder is made here; an existing file is left as it is until the first result replaces it.
    """
    if path is None:
        return
    if path.is_dir():
        raise InputError(f"--json {path} is a folder; name a file inside it, e.g. {path / 'bench.json'}")
    nearest = next(p for p in path.parents if p.exists())  # the root always exists
    if not nearest.is_dir():
        raise InputError(f"--json {path}: {nearest} is a file, not a folder; name another place")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(
            f"--json {path}: cannot make its folder ({err.strerror}); name a writable place"
        ) from None
    target = path if path.exists() else path.parent
    if not os.access(target, os.W_OK):
        raise InputError(f"--json {path}: {target} is not writable; name a writable place")


def write_json(path: Path | None, report: dict[str, Any]) -> None:
    """Write ``report`` to a ``--json`` file checked by ``check_json_target`` (nothing without one)."""
    if path is None:
        return
    try:
        path.write_text(json.dumps(report, indent=1) + "\n")
    except OSError as err:  # checked writable up front; a full disk can still refuse it
        raise InputError(f"--json {path}: {err.strerror} (the results are printed above)") from None
