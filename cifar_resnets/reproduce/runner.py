"""Running a table's jobs: each row's seeds as one ``cifar-train -m`` multirun (or in this process).

Jobs go into deterministic folders ``<out>/runs/<row>_seed<k>/``, so a rerun skips finished jobs,
resumes interrupted ones and redoes failed ones (keeping the old folder): a reproduction survives crashes
and preemption. Extra ``key=value`` arguments reach every job, so any Hydra launcher works.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cifar_resnets.config.compose import compose_train
from cifar_resnets.reporting.runs import read_json
from cifar_resnets.reproduce.plan import Job, longest_first, plan, smoke_overrides, write_smoke_data
from cifar_resnets.reproduce.report import format_seconds, report
from cifar_resnets.reproduce.results import job_state
from cifar_resnets.reproduce.spec import RowSpec, TableSpec, job_name, load_table_arg
from cifar_resnets.reproduce.table_lock import table_folder_lock

# ----------------------------------------------------------------------------- running

_ERROR_LINE = re.compile(r"^(?:[\w.]+(?:Error|Exception|Interrupt)|cifar-train: error)\b.*")


def failure_reason(job_dir: Path, output: str, returncode: int | None) -> str:
    """Why a job left no ``metrics.json`` (a record's own reason is ``job_state``'s): its ``error.txt``,
    then the error line of the process output."""
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
    jobs: list[Job], overrides: list[str], runs_dir: Path, log_file: Path, threads: int | None
) -> tuple[int, str]:
    """One ``cifar-train -m`` over the seeds of one row; its output goes to ``log_file``.

    Each sweep has a folder of its own (``sweeps/<row>_<action>``: its ``multirun.yaml``, sweep lock and
    launcher files), so ``--parallel`` rows are not taken for a second sweep into a busy folder; its jobs
    still go to ``runs/<row>_seed<k>``. ``threads``: the job's share of the cores (``OMP_NUM_THREADS``),
    or None to leave its pool as the job sizes it.
    """
    seeds = ",".join(str(j.seed) for j in jobs)
    sweep_dir = runs_dir.parent / "sweeps" / f"{jobs[0].row.name}_{jobs[0].action}"
    command = [
        sys.executable,
        "-m",
        "cifar_resnets.cli.train",
        "-m",
        *overrides,
        f"seed={seeds}",
        f"run_name={jobs[0].row.name}",
        f"hydra.sweep.dir={sweep_dir}",
        f"hydra.sweep.subdir=../../{runs_dir.name}/${{run_name}}_seed${{seed}}",
    ]
    if jobs[0].action == "resume":
        command.append("ckpt_path=${hydra:runtime.output_dir}/checkpoints/last.ckpt")
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
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
    threads = None  # --parallel rows share the cores, unless the user sized the pools (OMP_NUM_THREADS)
    if args.parallel > 1 and not os.environ.get("OMP_NUM_THREADS"):
        from cifar_resnets.hardware import usable_cores

        threads = max(1, usable_cores() // args.parallel)

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
                    group, overrides, runs_dir, table_dir / "logs" / f"{row.name}.log", threads
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


# ----------------------------------------------------------------------------- CLI


def reproduce(args: argparse.Namespace) -> int:
    table = load_table_arg(args.table)
    seeds = args.seeds or table.seeds
    table_dir = (args.out or Path("outputs") / "tables" / table.name).absolute()
    table_dir.mkdir(parents=True, exist_ok=True)
    with table_folder_lock(table_dir):  # one cifar-reproduce per table folder
        return _reproduce(table, seeds, table_dir, args)


def _reproduce(table: TableSpec, seeds: int, table_dir: Path, args: argparse.Namespace) -> int:
    if args.report_only:
        jobs = [
            Job(row, s, table_dir / "runs" / job_name(row.name, s), "skip")
            for row in table.select(args.rows)
            for s in range(seeds)
        ]
        record = read_json(table_dir / "jobs.json") or {}
    else:
        jobs = plan(table, table_dir, seeds, args.rows)
        record = run_jobs(table, jobs, table_dir, args)
    markdown = report(table, table_dir, seeds, jobs, record)
    print(markdown.read_text())
    failed = [name for name, r in record.items() if r.get("status") == "failed"]
    print(f"[{table.name}] wrote {markdown}, results.csv and plots/ in {table_dir}")
    if failed:
        print(f"[{table.name}] {len(failed)} job(s) failed: {', '.join(sorted(failed))}", file=sys.stderr)
        return 1
    return 0
