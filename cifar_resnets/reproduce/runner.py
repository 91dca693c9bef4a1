"""``cifar-reproduce``: rerun a published results table and write it beside the published numbers.

Examples::

    cifar-reproduce --list                                  # tables, row counts, rough GPU cost
    cifar-reproduce he2016_table6                           # every row, 1 seed, one job after another
    cifar-reproduce plain_vs_residual --seeds 3 hydra/launcher=joblib hydra.launcher.n_jobs=3
    cifar-reproduce attention_resnet --smoke                # tiny CPU run of the whole pipeline

Every row runs as a ``cifar-train -m`` multirun over its seeds, into deterministic job folders
``<out>/runs/<row>_seed<k>/`` (``<out>`` defaults to ``outputs/tables/<table>``). A rerun skips
jobs whose ``metrics.json`` exists, resumes interrupted ones from ``checkpoints/last.ckpt`` and
redoes failed ones (their old folder is kept under ``failed_attempts/``), so a reproduction
survives crashes and preemption. Extra ``key=value`` arguments are passed to every job, so any
Hydra launcher works (``hydra/launcher=joblib``, ``submitit_local``, ``submitit_slurm``); with
a launcher the seeds of a row run through it, and ``--parallel N`` runs N rows at once.

Writes ``<out>/<table>.md``, ``results.csv`` (one line per row), ``runs.csv`` (one per job),
``jobs.json`` (state and failure reason per job) and PNG plots.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifar_resnets.config.compose import compose_train
from cifar_resnets.errors import UserError
from cifar_resnets.reproduce.tables import (
    RowResult,
    RowSpec,
    TableSpec,
    format_seconds,
    gather,
    job_name,
    job_state,
    load_table,
    read_json,
    table_names,
    to_csv,
    to_markdown,
)

CIFAR_TRAIN_IMAGES = {"cifar10": 50_000, "cifar100": 50_000}


class ReproduceError(UserError, ValueError):
    """Bad command-line input to cifar-reproduce."""


@dataclass
class Job:
    row: RowSpec
    seed: int
    dir: Path
    action: str  # fresh | resume | skip

    @property
    def name(self) -> str:
        return job_name(self.row.name, self.seed)


# ----------------------------------------------------------------------------- configs


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


# ----------------------------------------------------------------------------- planning


def plan(table: TableSpec, table_dir: Path, seeds: int) -> list[Job]:
    """Every job of the table with what to do: skip (done), resume (checkpoint, no metrics), fresh."""
    jobs = []
    for row in table.rows:
        for seed in range(seeds):
            job_dir = table_dir / "runs" / job_name(row.name, seed)
            state, _ = job_state(job_dir, table.metric)
            if state == "done":
                action = "skip"
            elif state == "missing" and (job_dir / "checkpoints" / "last.ckpt").is_file():
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


# ----------------------------------------------------------------------------- running

_ERROR_LINE = re.compile(r"^(?:[\w.]+(?:Error|Exception|Interrupt)|cifar-train: error)\b.*")


def failure_reason(job_dir: Path, output: str, returncode: int | None) -> str:
    """Why a job has no result: its own record first, then the error line of the process output."""
    metrics = read_json(job_dir / "metrics.json")
    if metrics and metrics.get("status") not in (None, "ok"):
        return str(metrics.get("error") or metrics.get("message") or metrics["status"])
    error_file = job_dir / "error.txt"
    if error_file.is_file():
        lines = [ln for ln in error_file.read_text(errors="replace").splitlines() if ln.strip()]
        if lines:
            return lines[-1].strip()
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if _ERROR_LINE.match(ln)]
    if errors:
        return errors[-1]
    if returncode not in (0, None):
        return f"cifar-train exited with code {returncode}: {lines[-1] if lines else 'no output'}"
    return "the job wrote no metrics.json"


class Progress:
    """One line per event: jobs done of total, the current jobs, time left (from finished jobs)."""

    def __init__(self, table: str, total: int, done: int) -> None:
        self.table, self.total, self.done = table, total, done
        self.start = time.perf_counter()
        self.finished_here = 0
        self.lock = threading.Lock()

    def _left(self) -> str:
        if not self.finished_here:
            return "left: estimating"
        per_job = (time.perf_counter() - self.start) / self.finished_here
        return f"left: ~{format_seconds(per_job * (self.total - self.done))}"

    def line(self, text: str) -> None:
        elapsed = format_seconds(time.perf_counter() - self.start)
        done = f"{self.done}/{self.total} jobs done"
        print(f"[{self.table}] {done} | {text} | elapsed {elapsed} | {self._left()}", flush=True)

    def finished(self, n: int) -> None:
        with self.lock:
            self.done += n
            self.finished_here += n


def job_overrides(
    table: TableSpec, row: RowSpec, args: argparse.Namespace, smoke_data: Path | None
) -> list[str]:
    overrides = [*row.overrides, *table.common]
    if args.smoke:
        cfg = compose_train([*overrides, *args.overrides])
        overrides += [*smoke_overrides(cfg), *table.smoke]
    if smoke_data is not None:
        overrides.append(f"paths.data_dir={smoke_data}")
    if args.data_root:
        overrides.append(f"paths.data_dir={Path(args.data_root).absolute()}")
    return [*overrides, *args.overrides]


def run_group_subprocess(
    jobs: list[Job], overrides: list[str], runs_dir: Path, log_file: Path
) -> tuple[int, str]:
    """One ``cifar-train -m`` over the seeds of one row; its output goes to ``log_file``."""
    seeds = ",".join(str(j.seed) for j in jobs)
    command = [
        sys.executable,
        "-m",
        "cifar_resnets.cli.train",
        "-m",
        *overrides,
        f"seed={seeds}",
        f"run_name={jobs[0].row.name}",
        f"hydra.sweep.dir={runs_dir}",
        "hydra.sweep.subdir=${run_name}_seed${seed}",
    ]
    if jobs[0].action == "resume":
        command.append("ckpt_path=${hydra:runtime.output_dir}/checkpoints/last.ckpt")
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False)
    return proc.returncode, log_file.read_text(errors="replace")


def run_job_in_process(job: Job, overrides: list[str]) -> tuple[int, str]:
    """The same job through ``train()`` in this process: no launcher, no interpreter start-up."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from cifar_resnets.training.train import train

    try:
        cfg = compose_train([*overrides, f"seed={job.seed}", f"run_name={job.row.name}"])
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(job.dir)
            if job.action == "resume":
                cfg.ckpt_path = str(job.dir / "checkpoints" / "last.ckpt")
        HydraConfig.instance().set_config(cfg)
        train(cfg)
    except Exception as err:  # recorded as the job's failure; the other jobs go on
        return 1, f"{type(err).__name__}: {err}"
    return 0, ""


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


def run_jobs(table: TableSpec, jobs: list[Job], table_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run every pending job (grouped per row and action); returns the per-job record."""
    record: dict[str, Any] = read_json(table_dir / "jobs.json") or {}
    pending = [j for j in jobs if j.action != "skip"]
    progress = Progress(table.name, len(jobs), len(jobs) - len(pending))
    for job in jobs:
        if job.action == "skip":
            record[job.name] = {**record.get(job.name, {}), "status": "done", "reason": ""}
    smoke_data = write_smoke_data(table_dir / "smoke_data") if args.smoke and not args.data_root else None
    groups: dict[tuple[str, str], list[Job]] = {}
    for job in pending:
        groups.setdefault((job.row.name, job.action), []).append(job)
    runs_dir = table_dir / "runs"
    lock = threading.Lock()

    def run_group(group: list[Job]) -> None:
        row = group[0].row
        label = f"{'resuming' if group[0].action == 'resume' else 'running'} {row.name} (seeds "
        progress.line(label + ",".join(str(j.seed) for j in group) + ")")
        start = time.perf_counter()
        outputs: dict[str, tuple[int, str]] = {}
        try:
            overrides = job_overrides(table, row, args, smoke_data)
        except Exception as err:  # the row's overrides do not compose: every seed fails the same way
            outputs = {j.name: (2, f"{type(err).__name__}: {err}") for j in group}
        else:
            if args.in_process:
                for job in group:
                    outputs[job.name] = run_job_in_process(job, overrides)
            else:
                result = run_group_subprocess(
                    group, overrides, runs_dir, table_dir / "logs" / f"{row.name}.log"
                )
                outputs = {j.name: result for j in group}
        seconds = (time.perf_counter() - start) / len(group)
        with lock:
            for job in group:
                state, reason = job_state(job.dir, table.metric)
                if state != "done":
                    code, text = outputs[job.name]
                    reason = reason or failure_reason(job.dir, text, code)
                    state = "failed"
                record[job.name] = {"status": state, "reason": reason, "seconds": round(seconds, 1)}
                if state == "failed":
                    print(f"[{table.name}] {job.name} failed: {reason}", file=sys.stderr, flush=True)
            (table_dir / "jobs.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        progress.finished(len(group))
        progress.line(f"finished {row.name}")

    if groups:
        workers = 1 if args.in_process else args.parallel
        ordered = list(groups.values()) if workers == 1 else longest_first(table, list(groups.values()))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run_group, ordered))
    else:
        progress.line("nothing to run: every job has its metrics.json")
    return record


# ----------------------------------------------------------------------------- reporting


def write_plots(table: TableSpec, results: list[RowResult], table_dir: Path) -> list[Path]:
    """Curves per row, the comparison bars, and confusion matrices of the best and worst rows."""
    from cifar_resnets.inference.evaluate import checkpoint_confusion_matrix
    from cifar_resnets.reporting.plots import plot_comparison, plot_confusion_matrix, plot_training_history

    written = []
    plots_dir = table_dir / "plots"
    for r in results:
        if r.run_dirs:
            try:
                written.append(
                    plot_training_history(
                        r.run_dirs, plots_dir / f"curves_{r.row.name}.png", title=r.row.name
                    )
                )
            except FileNotFoundError as err:
                print(f"[{table.name}] no curves for {r.row.name}: {err}", file=sys.stderr)
    written.append(
        plot_comparison(
            [r.row.name for r in results],
            [r.mean for r in results],
            [r.std for r in results],
            [r.row.published for r in results],
            plots_dir / "comparison.png",
            ylabel=table.unit,
            title=table.name,
        )
    )
    finished = [r for r in results if r.mean is not None]
    # Best and worst by the underlying metric (highest accuracy is best whatever the display).
    ranked = sorted(finished, key=lambda r: r.mean if table.display == "accuracy" else -r.mean)
    picks = {"best": ranked[-1], "worst": ranked[0]} if ranked else {}
    if len(ranked) == 1:
        picks = {"best": ranked[0]}
    for label, r in picks.items():
        checkpoint = r.run_dirs[0] / "checkpoints" / "last.ckpt"
        try:
            matrix, classes = checkpoint_confusion_matrix(checkpoint)
        except UserError as err:  # data moved since, a damaged checkpoint: the table still stands
            print(f"[{table.name}] no confusion matrix for {r.row.name}: {err}", file=sys.stderr)
            continue
        written.append(
            plot_confusion_matrix(
                matrix, classes, plots_dir / f"confusion_{label}.png", title=f"{label}: {r.row.name} (test)"
            )
        )
    return written


def write_runs_csv(table: TableSpec, jobs: list[Job], record: dict[str, Any], path: Path) -> None:
    import csv

    fields = ["job", "row", "seed", "status", "reason", table.metric, "epochs", "steps", "fit_seconds",
              "train_images_per_second", "dir"]  # fmt: skip
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for job in jobs:
            metrics = read_json(job.dir / "metrics.json") or {}
            state = record.get(job.name, {})
            writer.writerow(
                {
                    "job": job.name,
                    "row": job.row.name,
                    "seed": job.seed,
                    "status": state.get("status", "missing"),
                    "reason": state.get("reason", ""),
                    **{k: metrics.get(k, "") for k in fields[5:10]},
                    "dir": str(job.dir),
                }
            )


def report(table: TableSpec, table_dir: Path, seeds: int, jobs: list[Job], record: dict[str, Any]) -> Path:
    results = gather(table, table_dir, seeds)
    markdown = table_dir / f"{table.name}.md"
    markdown.write_text(to_markdown(table, results))
    (table_dir / "results.csv").write_text(to_csv(table, results))
    write_runs_csv(table, jobs, record, table_dir / "runs.csv")
    write_plots(table, results, table_dir)
    return markdown


# ----------------------------------------------------------------------------- CLI


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


def load_table_arg(arg: str) -> TableSpec:
    """A table by name (``experiments/<name>.yaml``) or by the path of a table file of one's own."""
    path = Path(arg)
    if path.suffix == ".yaml":
        if not path.is_file():
            raise ReproduceError(f"table file {arg} does not exist")
        return load_table(path.stem, path.parent)
    return load_table(arg)


def reproduce(args: argparse.Namespace) -> int:
    table = load_table_arg(args.table)
    seeds = args.seeds or table.seeds
    table_dir = (args.out or Path("outputs") / "tables" / table.name).absolute()
    table_dir.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        jobs = [
            Job(row, s, table_dir / "runs" / job_name(row.name, s), "skip")
            for row in table.rows
            for s in range(seeds)
        ]
        record = read_json(table_dir / "jobs.json") or {}
    else:
        jobs = plan(table, table_dir, seeds)
        record = run_jobs(table, jobs, table_dir, args)
    markdown = report(table, table_dir, seeds, jobs, record)
    print(markdown.read_text())
    failed = [name for name, r in record.items() if r.get("status") == "failed"]
    print(f"[{table.name}] wrote {markdown}, results.csv and plots/ in {table_dir}")
    if failed:
        print(f"[{table.name}] {len(failed)} job(s) failed: {', '.join(sorted(failed))}", file=sys.stderr)
        return 1
    return 0
