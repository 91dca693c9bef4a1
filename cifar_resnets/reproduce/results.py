"""Gathering a table's finished jobs: the state of each job and each row's mean and spread over seeds."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifar_resnets.reporting.runs import (
    FAILED_STATUSES,
    INTERRUPTED,
    read_json,
    read_metrics,
    recorded_failure,
    run_status,
)
from cifar_resnets.reproduce.spec import Claim, RowSpec, TableSpec, job_name


def job_state(job_dir: Path, metric: str) -> tuple[str, str]:
    """``(status, reason)`` of one job folder: ``done``, ``failed``, ``interrupted`` or ``missing``.

    A job is done only when its ``metrics.json`` holds the table's metric and no failure status;
    a ``metrics.json`` that records a failure (divergence, an error) counts as failed; one that records
    a SIGTERM (``interrupted``, with ``last.ckpt`` saved) is continued by the next run.
    """
    metrics = read_metrics(job_dir)
    if metrics is None:
        return "missing", ""
    status = run_status(metrics)
    if status == INTERRUPTED:
        return "interrupted", str(metrics.get("error") or status)
    if status in FAILED_STATUSES:
        reason = recorded_failure(metrics)  # "failed" is the state itself: said once, not twice
        return "failed", reason if status == "failed" or status in reason else f"{status}: {reason}"
    if metric not in metrics:
        return "failed", f"metrics.json has no {metric!r}"
    return "done", ""


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
    devices: list[str] = field(default_factory=list)  # the distinct devices of the finished seeds
    versions: list[str] = field(default_factory=list)  # their distinct software versions
    seeds: list[int] = field(default_factory=list)  # the seed of each value
    interrupted: int = 0  # seeds stopped by SIGTERM with last.ckpt saved: the next run continues them

    @property
    def by_seed(self) -> dict[int, float]:
        return dict(zip(self.seeds, self.values))

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
        if done == 0:
            return "interrupted (the next run continues it)" if self.interrupted else "not yet run"
        if done < self.seeds_total:
            return f"missing ({done}/{self.seeds_total} seeds done)"
        return "ok"


def device_and_versions(metrics: dict[str, Any]) -> tuple[str, str]:
    """What ran a job, from its ``metrics.json``'s provenance: the device's name, and the versions of
    python, torch, torchvision, Lightning, CUDA and cuDNN (what a differing number is explained by)."""
    record = metrics.get("provenance") or {}
    device = str(record.get("device_name") or metrics.get("device") or "unknown")
    names = {
        "python": "python",
        "torch": "torch",
        "torchvision": "torchvision",
        "lightning": "Lightning",
        "cuda": "CUDA",
        "cudnn": "cuDNN",
    }
    parts = [f"{label} {record[key]}" for key, label in names.items() if record.get(key)]
    return device, ", ".join(parts) or "unknown"


def _distinct(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


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
        values, failures, dirs, done_seeds, interrupted = [], [], [], [], 0
        epochs, steps, wall, ips, devices, versions = [], [], [], [], [], []
        for seed in range(seeds):
            name = job_name(row.name, seed)
            job_dir = table_dir / "runs" / name
            state, reason = job_state(job_dir, table.metric)
            if state == "done":
                metrics = read_metrics(job_dir) or {}
                values.append(display_value(float(metrics[table.metric]), table.display))
                epochs.append(metrics.get("epochs"))
                steps.append(metrics.get("steps"))
                wall.append(metrics.get("fit_seconds"))
                ips.append(metrics.get("train_images_per_second"))
                device, version = device_and_versions(metrics)
                devices.append(device)
                versions.append(version)
                dirs.append(job_dir)
                done_seeds.append(seed)
                continue
            interrupted += state == "interrupted"
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
                devices=_distinct(devices),
                versions=_distinct(versions),
                seeds=done_seeds,
                interrupted=interrupted,
            )
        )
    return results


@dataclass
class ClaimResult:
    claim: Claim
    holds_in: list[int]  # the seeds both rows finished in which the claim holds
    seeds: list[int]  # the seeds both rows finished
    means: tuple[float, float] | None

    @property
    def verdict(self) -> str:
        if not self.seeds:
            return "not yet run"
        return (
            "holds in every seed" if len(self.holds_in) == len(self.seeds) else "does not hold in every seed"
        )


def check_claims(table: TableSpec, results: list[RowResult]) -> list[ClaimResult]:
    """Each of the table's claims, seed by seed (the same seed of both rows) and on the means."""
    rows = {r.row.name: r for r in results}
    checked = []
    for claim in table.claims:
        left, right = rows[claim.left].by_seed, rows[claim.right].by_seed
        seeds = sorted(left.keys() & right.keys())
        holds_in = [s for s in seeds if claim.holds(left[s], right[s])]
        means = (rows[claim.left].mean, rows[claim.right].mean)
        checked.append(ClaimResult(claim, holds_in, seeds, means if None not in means else None))
    return checked
