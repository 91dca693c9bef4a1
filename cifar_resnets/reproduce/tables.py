"""Results tables: table definitions (``experiments/*.yaml``), gathering runs, Markdown and CSV.

A table definition lists its rows (a name and the Hydra overrides of ``cifar-train``), how many
seeds each row runs, the metric read from every run's ``metrics.json`` and the published numbers
with their source. Gathering reads the job folders ``runs/<row>_seed<k>/`` that ``cifar-reproduce``
writes and reduces each row to mean ± std over its finished seeds; a row whose jobs failed keeps
its place in the table with the reason.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cifar_resnets.config.resources import experiments_dir
from cifar_resnets.errors import UserError

DISPLAYS = ("accuracy", "error")
FAILED_STATUSES = ("failed", "diverged", "error")


class TableError(UserError, ValueError):
    """A table definition that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class RowSpec:
    name: str
    overrides: tuple[str, ...]
    published: float | None = None
    published_note: str = ""
    images_per_second: float | None = None  # assumed GPU training throughput, for the cost estimate
    images_per_epoch: int | None = None  # training images per epoch where the config cannot tell


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    source: str
    metric: str
    display: str
    seeds: int
    rows: tuple[RowSpec, ...]
    common: tuple[str, ...] = ()
    smoke: tuple[str, ...] = ()
    cost_note: str = ""
    path: Path = field(default=Path("."), compare=False)

    def row(self, name: str) -> RowSpec:
        return next(r for r in self.rows if r.name == name)

    @property
    def unit(self) -> str:
        return "error %" if self.display == "error" else "accuracy %"


def table_names(directory: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (directory or experiments_dir()).glob("*.yaml"))


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise TableError(f"{where}: missing key {key!r}")
    if not isinstance(data[key], kind):
        raise TableError(f"{where}: {key!r} must be {kind}, got {data[key]!r}")
    return data[key]


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TableError(f"{where} must be a list of override strings like 'model=resnet20'")
    return tuple(value)


def load_table(name: str, directory: Path | None = None) -> TableSpec:
    """Read and validate ``<name>.yaml`` of ``directory`` (the suite's ``experiments/`` by default)."""
    directory = directory or experiments_dir()
    path = directory / f"{name}.yaml"
    if not path.is_file():
        raise TableError(f"unknown table {name!r}; choose one of {', '.join(table_names(directory))}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise TableError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise TableError(f"{path} must hold a mapping")
    where = str(path)
    display = data.get("display", "accuracy")
    if display not in DISPLAYS:
        raise TableError(f"{where}: display must be one of {DISPLAYS}, got {display!r}")
    seeds = _require(data, "seeds", int, where)
    if seeds < 1:
        raise TableError(f"{where}: seeds must be >= 1")
    rows = []
    for i, row in enumerate(_require(data, "rows", list, where)):
        rwhere = f"{where}: rows[{i}]"
        if not isinstance(row, dict):
            raise TableError(f"{rwhere} must be a mapping with name and overrides")
        name = _require(row, "name", str, rwhere)
        if not name.replace("_", "").replace("-", "").isalnum():
            raise TableError(f"{rwhere}: name {name!r} may hold only letters, digits, '_' and '-'")
        published = row.get("published")
        if published is not None and not isinstance(published, (int, float)):
            raise TableError(f"{rwhere}: published must be a number (percent) or null")
        rows.append(
            RowSpec(
                name=name,
                overrides=_strings(row.get("overrides"), f"{rwhere}.overrides"),
                published=None if published is None else float(published),
                published_note=str(row.get("published_note", "")),
                images_per_second=row.get("images_per_second"),
                images_per_epoch=row.get("images_per_epoch"),
            )
        )
    names = [r.name for r in rows]
    if len(set(names)) != len(names):
        raise TableError(f"{where}: row names must be unique, got {names}")
    if not rows:
        raise TableError(f"{where}: a table needs at least one row")
    return TableSpec(
        name=name_of(path),
        title=str(data.get("title", path.stem)),
        source=str(data.get("source", "")),
        metric=str(data.get("metric", "test/acc")),
        display=display,
        seeds=seeds,
        rows=tuple(rows),
        common=_strings(data.get("common"), f"{where}: common"),
        smoke=_strings(data.get("smoke"), f"{where}: smoke"),
        cost_note=str(data.get("cost_note", "")),
        path=path,
    )


def name_of(path: Path) -> str:
    return path.stem


def job_name(row: str, seed: int) -> str:
    """The job's folder under ``runs/``: deterministic, so a rerun finds its earlier work."""
    return f"{row}_seed{seed}"


# ----------------------------------------------------------------------------- job state


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def job_state(job_dir: Path, metric: str) -> tuple[str, str]:
    """``(status, reason)`` of one job folder: ``done``, ``failed`` or ``missing``.

    A job is done only when its ``metrics.json`` holds the table's metric and no failure status;
    a ``metrics.json`` that records a failure (divergence, an error) counts as failed.
    """
    metrics = read_json(job_dir / "metrics.json")
    if metrics is None:
        return "missing", ""
    status = str(metrics.get("status", "ok"))
    if status in FAILED_STATUSES:
        reason = metrics.get("error") or metrics.get("message") or metrics.get("reason") or status
        return "failed", f"{status}: {reason}" if status not in str(reason) else str(reason)
    if metric not in metrics:
        return "failed", f"metrics.json has no {metric!r}"
    return "done", ""


# ----------------------------------------------------------------------------- gathering


@dataclass
class RowResult:
    row: RowSpec
    values: list[float]  # the metric per finished seed, in display units (percent)
    seeds_total: int
    epochs: float | None
    steps: float | None
    wall_seconds: float | None
    images_per_second: float | None
    failures: list[str]
    run_dirs: list[Path]

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        if not self.values:
            return None
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    @property
    def difference(self) -> float | None:
        if self.mean is None or self.row.published is None:
            return None
        return self.mean - self.row.published

    @property
    def status(self) -> str:
        done = len(self.values)
        if self.failures:
            reason = self.failures[0]
            return (
                f"failed: {reason}"
                if not done
                else f"{self.seeds_total - done}/{self.seeds_total} failed: {reason}"
            )
        if done < self.seeds_total:
            return f"missing ({done}/{self.seeds_total} seeds done)"
        return "ok"


def display_value(value: float, display: str) -> float:
    """A metric in [0, 1] as the table shows it (percent accuracy or percent error)."""
    return 100.0 * (1.0 - value) if display == "error" else 100.0 * value


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.fmean(values) if values else None


def gather(table: TableSpec, table_dir: Path, seeds: int | None = None) -> list[RowResult]:
    """One ``RowResult`` per row from ``table_dir/runs`` (and failure reasons from ``jobs.json``)."""
    seeds = seeds or table.seeds
    recorded = read_json(table_dir / "jobs.json") or {}
    results = []
    for row in table.rows:
        values, failures, dirs = [], [], []
        epochs, steps, wall, ips = [], [], [], []
        for seed in range(seeds):
            name = job_name(row.name, seed)
            job_dir = table_dir / "runs" / name
            state, reason = job_state(job_dir, table.metric)
            if state == "done":
                metrics = read_json(job_dir / "metrics.json") or {}
                values.append(display_value(float(metrics[table.metric]), table.display))
                epochs.append(metrics.get("epochs"))
                steps.append(metrics.get("steps"))
                wall.append(metrics.get("fit_seconds"))
                ips.append(metrics.get("train_images_per_second"))
                dirs.append(job_dir)
                continue
            record = recorded.get(name, {})
            if state == "failed" or record.get("status") == "failed":
                failures.append(reason or record.get("reason") or "unknown error")
        results.append(
            RowResult(
                row=row,
                values=values,
                seeds_total=seeds,
                epochs=_mean(epochs),
                steps=_mean(steps),
                wall_seconds=_mean(wall),
                images_per_second=_mean(ips),
                failures=failures,
                run_dirs=dirs,
            )
        )
    return results


# ----------------------------------------------------------------------------- formatting


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _num(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _ours(result: RowResult) -> str:
    if result.mean is None:
        return "—"
    if len(result.values) == 1:
        return _num(result.mean)
    return f"{result.mean:.2f} ± {result.std:.2f}"


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def to_markdown(table: TableSpec, results: list[RowResult]) -> str:
    """The table as Markdown: ours (mean ± std over seeds) next to the published value."""
    lines = [
        f"# {table.name}: {table.title}",
        "",
        f"Published numbers: {table.source}" if table.source else "",
        f"Metric: `{table.metric}` as {table.unit} of the final weights; ours = mean ± std over the "
        "finished seeds; difference = ours − published.",
        "",
        f"| row | ours ({table.unit}) | published | difference | seeds | epochs | steps | wall time "
        "| images/s | status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        published = _num(r.row.published)
        if r.row.published_note:
            published += f" ({r.row.published_note})"
        cells = [
            r.row.name,
            _ours(r),
            published,
            _num(r.difference, signed=True),
            f"{len(r.values)}/{r.seeds_total}",
            _num(r.epochs, 0),
            _num(r.steps, 0),
            format_seconds(r.wall_seconds),
            "—" if r.images_per_second is None else f"{r.images_per_second:,.0f}",
            r.status,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(line for line in lines if line is not None) + "\n"


CSV_FIELDS = (
    "row",
    "overrides",
    "metric",
    "unit",
    "mean",
    "std",
    "seeds_done",
    "seeds_total",
    "published",
    "difference",
    "epochs",
    "steps",
    "wall_seconds",
    "images_per_second",
    "status",
    "values",
)


def to_csv(table: TableSpec, results: list[RowResult]) -> str:
    """One line per row; empty cells where a value does not exist (failed rows, unpublished ones)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()

    def blank(v: float | None, digits: int = 4) -> str:
        return "" if v is None else f"{v:.{digits}f}"

    for r in results:
        writer.writerow(
            {
                "row": r.row.name,
                "overrides": " ".join(r.row.overrides),
                "metric": table.metric,
                "unit": table.unit,
                "mean": blank(r.mean),
                "std": blank(r.std),
                "seeds_done": len(r.values),
                "seeds_total": r.seeds_total,
                "published": blank(r.row.published),
                "difference": blank(r.difference),
                "epochs": blank(r.epochs, 1),
                "steps": blank(r.steps, 0),
                "wall_seconds": blank(r.wall_seconds, 1),
                "images_per_second": blank(r.images_per_second, 1),
                "status": r.status,
                "values": ";".join(f"{v:.4f}" for v in r.values),
            }
        )
    return out.getvalue()
