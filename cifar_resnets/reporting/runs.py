"""Find the runs, sweeps and checkpoints under an outputs folder and read what they recorded.

Only reads, and tolerates half-written or damaged runs (one still training has no ``metrics.json``):
missing parts come back empty rather than raising, so one bad folder cannot hide the others. The one
reader of a run's ``metrics.json`` (``read_metrics``) and the one meaning of its status (``run_status``)
live here: the app, ``cifar-reproduce``, the checkpoint loader and ``train`` itself read runs through them.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

METRICS_FILE = "metrics.json"  # written by training.run_folder: the run's numbers and how it ended
RUN_MARKERS = ("config.yaml", METRICS_FILE)
EVENTS_GLOB = "events.out.tfevents.*"
CSV_METRICS = "metrics.csv"  # the CSV logger's file (conf/logger/csv.yaml)
ATTEMPTS = "attempts"  # a run's failed or refused continuations (training.run_folder): part of the run
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^(\d{2}-\d{2}-\d{2})")

# How a run ended, as ``metrics.json`` records it under "status" (``RunFolder.record_failure`` writes all
# but "completed"; a search writes "pruned"; "refused" goes under attempts/ beside the run).
COMPLETED = "completed"
INTERRUPTED = "interrupted"  # stopped by SIGTERM with last.ckpt saved: ckpt_path=auto continues it
FAILED_STATUSES = ("failed", "diverged", "error")  # ended without a result ("error": older records)
NO_METRICS = "no metrics.json (running or stopped)"
UNREADABLE_METRICS = "metrics.json unreadable or empty (a damaged copy?)"


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file as a dict; None when missing, unreadable or not an object (a damaged copy)."""
    try:
        loaded = json.loads(Path(path).read_text())
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    return loaded if isinstance(loaded, dict) else None


def read_metrics(run_dir: str | Path) -> dict[str, Any] | None:
    """A run folder's ``metrics.json``; None when it has none (still running, or stopped before writing
    one) or it cannot be read. It is written through a rename, so a readable file is a whole one."""
    return read_json(Path(run_dir) / METRICS_FILE)


def run_status(metrics: dict[str, Any] | None) -> str | None:
    """How the run ended: the status its ``metrics.json`` records, as written (completed, failed,
    diverged, interrupted, ...); a record without one is a completed run; None without a record."""
    if not metrics:
        return None
    return str(metrics.get("status") or COMPLETED)


def recorded_failure(metrics: dict[str, Any]) -> str:
    """Why a record's run did not complete: its error line, else its status."""
    return str(metrics.get("error") or metrics.get("message") or metrics.get("reason") or run_status(metrics))


@dataclass
class Run:
    """One training run folder and what it recorded."""

    path: Path
    sweep: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    checkpoints: list[Path] = field(default_factory=list)
    date: datetime | None = None

    @property
    def name(self) -> str:
        """The folder name, prefixed by the sweep's folder for a sweep job (unique and readable)."""
        return f"{self.sweep.name}/{self.path.name}" if self.sweep else self.path.name

    @property
    def model(self) -> str:
        return str(self.metrics.get("model") or _get(self.config, "model", "name") or "?")

    @property
    def data(self) -> str:
        return str(self.metrics.get("data") or data_name(self.config.get("data")) or "?")

    @property
    def test_acc(self) -> float | None:
        value = self.metrics.get("test/acc")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def status(self) -> str:
        """How the run ended (``run_status``), or why that is not known yet, in the words tables show."""
        status = run_status(self.metrics)
        if status is not None:
            return status
        return UNREADABLE_METRICS if (self.path / METRICS_FILE).is_file() else NO_METRICS

    @property
    def recorded(self) -> bool:
        """Whether the folder says what it trained (config.yaml or metrics.json), not only files."""
        return bool(self.config or self.metrics)

    def row(self) -> dict[str, Any]:
        """A flat summary for tables (one row per run)."""
        m = self.metrics
        return {
            "run": self.name,
            "sweep": self.sweep.name if self.sweep else "",
            "date": self.date.strftime("%Y-%m-%d %H:%M") if self.date else "",
            "model": self.model,
            "data": self.data,
            "test acc": self.test_acc,
            "val acc": _number(m.get("val/acc")),
            "test loss": _number(m.get("test/loss")),
            "epochs": _number(m.get("epochs")),
            "params": _number(m.get("params")),
            "images/s": _number(m.get("train_images_per_second")),
            "train s": _number(m.get("train_seconds")),
            "status": self.status,
            "path": str(self.path),
        }


def _get(tree: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def data_name(data_cfg: Any) -> str | None:
    """A dataset's short name: ``data.name`` (cifar10, cifar100) or the datamodule's module name."""
    if not isinstance(data_cfg, dict):
        return None
    if data_cfg.get("name"):
        return str(data_cfg["name"])
    target = str(data_cfg.get("_target_", ""))
    return target.rsplit(".", 2)[-2] if target.count(".") >= 2 else (target or None)


def read_yaml(path: Path) -> dict[str, Any]:
    """A run's ``config.yaml`` as a dict; {} when missing or unreadable (yaml.safe_load: data only)."""
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _run_date(run_dir: Path, outputs: Path) -> datetime | None:
    """Start time from Hydra's folder names (``<date>/<time>_<name>`` or ``<date>/<time>/<job>``),
    else the modification time of the run's first file."""
    parts = run_dir.relative_to(outputs).parts if run_dir.is_relative_to(outputs) else run_dir.parts
    for i in range(len(parts) - 1):
        found = _TIME.match(parts[i + 1])
        if _DATE.match(parts[i]) and found:
            try:
                return datetime.strptime(f"{parts[i]} {found.group(1)}", "%Y-%m-%d %H-%M-%S")
            except ValueError:
                break
    times = [p.stat().st_mtime for p in run_dir.iterdir() if p.is_file()]
    return datetime.fromtimestamp(min(times)) if times else None


def _sweep_of(run_dir: Path) -> Path | None:
    parent = run_dir.parent
    return parent if (parent / "multirun.yaml").is_file() else None


def _is_run_dir(path: Path) -> bool:
    if path.name.startswith("."):  # Hydra's .hydra/ also holds a config.yaml
        return False
    return (
        any((path / marker).is_file() for marker in RUN_MARKERS)
        or any(path.glob(EVENTS_GLOB))
        or (path / CSV_METRICS).is_file()
        or any((path / "checkpoints").glob("*.ckpt"))
    )


def find_runs(outputs: str | Path) -> list[Run]:
    """Every run folder below ``outputs`` (runs and sweep jobs), newest first."""
    outputs = Path(outputs).expanduser()
    if not outputs.is_dir():
        return []
    candidates: set[Path] = set()
    for pattern in (*RUN_MARKERS, EVENTS_GLOB, CSV_METRICS, "checkpoints/*.ckpt"):
        for hit in outputs.rglob(pattern):
            folder = hit.parent.parent if hit.parent.name == "checkpoints" else hit.parent
            if not any(part.startswith(".") for part in folder.relative_to(outputs).parts):
                candidates.add(folder)
    runs = []
    for folder in sorted(candidates):
        if not _is_run_dir(folder) or (folder.parent.name == ATTEMPTS and _is_run_dir(folder.parent.parent)):
            continue
        runs.append(
            Run(
                path=folder,
                sweep=_sweep_of(folder),
                config=read_yaml(folder / "config.yaml"),
                metrics=read_metrics(folder) or {},
                checkpoints=sorted((folder / "checkpoints").glob("*.ckpt")),
                date=_run_date(folder, outputs),
            )
        )
    runs.sort(key=lambda r: (r.date or datetime.min, str(r.path)), reverse=True)
    return runs


def group_sweeps(runs: list[Run]) -> dict[Path, list[Run]]:
    """Sweep folder -> its jobs (in job order), for the sweeps present in ``runs``."""
    sweeps: dict[Path, list[Run]] = {}
    for run in runs:
        if run.sweep is not None:
            sweeps.setdefault(run.sweep, []).append(run)
    for jobs in sweeps.values():
        jobs.sort(key=lambda r: _job_number(r.path.name))
    return dict(sorted(sweeps.items(), key=lambda kv: str(kv[0]), reverse=True))


def _job_number(name: str) -> tuple[int, str]:
    head = name.split("_", 1)[0]
    return (int(head), name) if head.isdigit() else (1 << 30, name)


def read_scalars(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar the run folder's loggers wrote: tag -> [(step, value), ...] sorted by step.

    Reads TensorBoard's event files and the CSV logger's ``metrics.csv``, whichever the run has (both
    hold the same tags and steps), so plots and tables work for any logger that writes into the run
    folder. When a step was logged twice (a resume), the later value wins.
    """
    run_dir = Path(run_dir)
    series: dict[str, dict[int, float]] = {}
    _read_csv_scalars(run_dir / CSV_METRICS, series)
    _read_event_scalars(sorted(run_dir.glob(EVENTS_GLOB)), series)
    return {tag: sorted(points.items()) for tag, points in sorted(series.items())}


def _read_csv_scalars(path: Path, series: dict[str, dict[int, float]]) -> None:
    """``metrics.csv``: one row per logging step, a column per tag, empty where not logged then."""
    try:
        with open(path, newline="") as file:
            rows = list(csv.DictReader(file))
    except (OSError, UnicodeDecodeError, csv.Error):
        return
    for row in rows:
        try:
            step = int(float(row.get("step") or ""))
        except ValueError:  # a row cut off by a crash
            continue
        for tag, text in row.items():
            if tag in ("step", None) or not text:
                continue
            try:
                value = float(text)
            except (TypeError, ValueError):
                continue
            series.setdefault(tag, {})[step] = value


def _read_event_scalars(files: list[Path], series: dict[str, dict[int, float]]) -> None:
    """TensorBoard's own event reader (robust to several event files and to a file being written)."""
    if not files:
        return
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for file in files:  # file names start with the creation time: later files override
        try:
            acc = EventAccumulator(str(file), size_guidance={"scalars": 0})
            acc.Reload()
            tags = acc.Tags().get("scalars", [])
        except Exception:  # noqa: BLE001 - a damaged event file must not hide the run's other files
            continue
        for tag in tags:
            points = series.setdefault(tag, {})
            for event in acc.Scalars(tag):
                points[int(event.step)] = float(event.value)
