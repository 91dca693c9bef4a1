"""Planning a table: its jobs, what each needs (skip, resume, run afresh), smoke sizes and cost estimates."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifar_resnets.config.compose import compose_train
from cifar_resnets.errors import RunError
from cifar_resnets.reproduce.results import job_state
from cifar_resnets.reproduce.spec import RowSpec, TableSpec, job_name, load_table_arg, table_names
from cifar_resnets.training.run_lock import busy_holder

CIFAR_TRAIN_IMAGES = {"cifar10": 50_000, "cifar100": 50_000}


@dataclass
class Job:
    row: RowSpec
    seed: int
    dir: Path
    action: str  # fresh | resume | skip

    @property
    def name(self) -> str:
        return job_name(self.row.name, self.seed)


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.select(cfg, key, default=default, throw_on_missing=False)


def smoke_overrides(cfg: Any) -> list[str]:
    """Overrides that shrink a composed row to a few seconds of CPU work, whatever its recipe."""
    out = [
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.strategy=auto",
        "trainer.precision=32-true",
        "trainer.max_epochs=1",
        "trainer.max_steps=-1",
        "trainer.log_every_n_steps=1",
        "callbacks.progress_bar=null",
        "data.num_workers=0",
    ]
    data = _get(cfg, "data") or {}
    if data.get("name") in CIFAR_TRAIN_IMAGES:
        out += ["data.val_size=64", "data.num_train=64", "data.batch_size=32", "data.eval_batch_size=32"]
    else:  # the ImageNet-style subset written by smoke_data: 3 classes of a few images
        out += ["data.batch_size=4", "data.eval_batch_size=3"]
        if "classes" in data:
            out.append("data.classes=3")
        if "per_class" in data:
            out.append("data.per_class=null")
    if "image_size" in data:
        out.append("data.image_size=32")
    if "resize_size" in data:
        out.append("data.resize_size=36")
    if _get(cfg, "schedule.milestones") is not None and _get(cfg, "schedule.unit") != "fraction":
        out += ["schedule.unit=fraction", "schedule.milestones=[0.5,0.75]"]
    if (_get(cfg, "schedule.warmup_steps") or 0) > 0:
        out.append("schedule.warmup_steps=0")
    if _get(cfg, "model.weights") is not None:  # ImageNet weights need internet: smoke uses random ones
        out.append("model.weights=null")
    if _get(cfg, "model.weights_path") is not None:
        out.append("model.weights_path=null")
    if _get(cfg, "model.compile"):
        out.append("model.compile=false")
    return out


def write_smoke_data(root: Path) -> Path:
    """Synthetic CIFAR-10, CIFAR-100 and ImageNet-subset files, once per output folder."""
    from cifar_resnets.data.synthetic import write_synthetic_cifar, write_synthetic_imagenet

    marker = root / ".complete"
    if not marker.is_file():
        write_synthetic_cifar(root, "cifar10", num_train=128, num_test=64, seed=0)
        write_synthetic_cifar(root, "cifar100", num_train=128, num_test=64, seed=0)
        write_synthetic_imagenet(
            root / "imagenet", classes=3, per_class=6, val_per_class=2, seed=0, corrupt=0
        )
        marker.write_text("synthetic data for --smoke runs\n")
    return root


def row_images(cfg: Any, row: RowSpec) -> int | None:
    """Training images one run of the row processes (for the cost estimate)."""
    max_steps = _get(cfg, "trainer.max_steps", -1) or -1
    batch = _get(cfg, "data.batch_size") or 0
    if max_steps > 0:
        return max_steps * batch
    per_epoch = row.images_per_epoch
    if per_epoch is None and _get(cfg, "data.name") in CIFAR_TRAIN_IMAGES:
        per_epoch = CIFAR_TRAIN_IMAGES[_get(cfg, "data.name")] - (_get(cfg, "data.val_size") or 0)
        if _get(cfg, "data.num_train") is not None:
            per_epoch = min(per_epoch, _get(cfg, "data.num_train"))
    epochs = _get(cfg, "trainer.max_epochs", -1) or -1
    if per_epoch is None or epochs <= 0:
        return None
    return per_epoch * epochs


def row_gpu_hours(table: TableSpec, row: RowSpec, seeds: int) -> float | None:
    try:
        cfg = compose_train([*row.overrides, *table.common])
    except Exception:  # a row whose experiment is not there yet has no estimate
        return None
    images = row_images(cfg, row)
    if images is None or not row.images_per_second:
        return None
    return images / row.images_per_second * seeds / 3600


def plan(table: TableSpec, table_dir: Path, seeds: int, rows: Sequence[str] | None = None) -> list[Job]:
    """Every job of the table (or of ``rows``) with what to do: skip (done), resume (interrupted, or
    killed with a checkpoint), fresh (a failed attempt is kept under ``failed_attempts/``). A job folder
    that a live run still holds is never moved: the plan stops with one line naming its holder."""
    jobs = []
    for row in table.select(rows):
        for seed in range(seeds):
            job_dir = table_dir / "runs" / job_name(row.name, seed)
            state, _ = job_state(job_dir, table.metric)
            if state != "done" and job_dir.exists():
                busy = busy_holder(job_dir)
                if busy is not None:  # a job of an earlier launch still running (on a cluster, say)
                    raise RunError(
                        f"job folder {job_dir} is in use by a run ({busy}); wait for it to end before "
                        "running the table again"
                    )
            if state == "done":
                action = "skip"
            elif state in ("missing", "interrupted") and (job_dir / "checkpoints" / "last.ckpt").is_file():
                action = "resume"
            else:
                action = "fresh"
                if job_dir.exists():  # a failed or empty attempt: keep it aside, start clean
                    attempts = table_dir / "failed_attempts"
                    attempts.mkdir(parents=True, exist_ok=True)
                    k = sum(1 for _ in attempts.glob(f"{job_dir.name}-*")) + 1
                    shutil.move(str(job_dir), attempts / f"{job_dir.name}-{k}")
            jobs.append(Job(row, seed, job_dir, action))
    return jobs


def longest_first(table: TableSpec, groups: list[list[Job]]) -> list[list[Job]]:
    """Row groups by estimated cost, longest first (rows without an estimate last, in table order).

    With ``--parallel N`` the table ends when its last row does: started last in table order, the longest
    row (ResNet-110 in He et al.'s Table 6, 1.8 times any other) would run alone at the end.
    Longest-first is the classic greedy schedule for this; with the table's own estimates it shortens
    Table 6 at N=4 from 13.2 to 11.5 minutes of the rows' single-job times (the bound is 10.7).
    """

    def cost(group: list[Job]) -> float:
        return -(row_gpu_hours(table, group[0].row, len(group)) or 0.0)

    return sorted(groups, key=cost)  # stable: ties keep table order


def list_tables(names: list[str] | None = None) -> str:
    """The tables with their rows, seeds and rough GPU cost (per row when one table is named)."""
    lines = [f"{'table':<22} {'rows':>4} {'seeds':>5} {'jobs':>5} {'GPU h (est.)':>12}  title"]
    detail = names is not None and len(names) == 1
    for name in names or table_names():
        table = load_table_arg(name)
        name = table.name
        hours = [row_gpu_hours(table, row, table.seeds) for row in table.rows]
        known = [h for h in hours if h is not None]
        total = f"{sum(known):.1f}" + ("+" if len(known) < len(hours) else "") if known else "?"
        jobs = len(table.rows) * table.seeds
        lines.append(f"{name:<22} {len(table.rows):>4} {table.seeds:>5} {jobs:>5} {total:>12}  {table.title}")
        if detail:
            for row, h in zip(table.rows, hours):
                cost = "?" if h is None else f"{h:.2f}"
                lines.append(f"  {row.name:<24} {cost:>7} h  {' '.join(row.overrides)}")
            if table.cost_note:
                lines.append(f"  cost: {table.cost_note}")
    lines.append(
        "GPU h: training images of all seeds / the assumed images/s of each row on one H100 "
        "(see each table's cost_note); '+' = some rows have no estimate"
    )
    return "\n".join(lines)
