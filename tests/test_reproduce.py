"""cifar-reproduce end to end: every table's smoke run, skip-and-resume, failed rows, launchers."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import REPO, run_cli

from cifar_resnets.cli.reproduce import main, parse_args
from cifar_resnets.config.checks import check_config
from cifar_resnets.config.compose import compose_train
from cifar_resnets.reproduce.runner import job_overrides
from cifar_resnets.reproduce.spec import load_table, load_table_arg, table_names

TABLES = table_names()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5_000, f"{path} is not a real PNG"


def table_rows(markdown: str) -> dict[str, list[str]]:
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] not in ("row",):
            rows[cells[0]] = cells
    return rows


def test_every_table_definition_loads() -> None:
    assert set(TABLES) >= {
        "he2016_table6",
        "plain_vs_residual",
        "optimizer_depth_grid",
        "transfer_learning",
        "attention_resnet",
    }
    he = load_table("he2016_table6")
    assert [r.published for r in he.rows[:5]] == [8.75, 7.51, 7.17, 6.97, 6.43] and he.display == "error"
    assert [r.published for r in load_table("plain_vs_residual").rows] == [90.84, 91.95, 86.71, 93.25]
    assert load_table("attention_resnet").rows[0].published == 95.30


def test_list_shows_tables_rows_and_cost(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in TABLES:
        line = next(ln for ln in out.splitlines() if ln.startswith(name))
        rows, seeds, jobs, hours = line.split()[1:5]
        assert int(rows) == len(load_table(name).rows) and int(jobs) == int(rows) * int(seeds)
        assert float(hours.rstrip("+")) > 0
    main(["--list", "he2016_table6"])
    assert "experiment=he2016/resnet110" in capsys.readouterr().out


@pytest.mark.parametrize("name", TABLES)
def test_every_row_composes_and_passes_the_config_checks(name: str) -> None:
    """Every row as cifar-reproduce runs it, in full and as a smoke run: the smoke test below trains a
    few rows of each table, tests/test_experiments.py every experiment config."""
    table = load_table(name)
    for smoke in (False, True):
        args = parse_args([name, *(["--smoke"] if smoke else [])])
        for row in table.rows:
            check_config(compose_train(job_overrides(table, row, args, None)))


def smoke_rows(name: str) -> list[str]:
    """The first and the last row of a table: both kinds of row where a table has two (ResNets and
    plain nets, CIFAR and ImageNet-subset rows)."""
    rows = [r.name for r in load_table(name).rows]
    return sorted({rows[0], rows[-1]}, key=rows.index)


@pytest.mark.slow
@pytest.mark.parametrize("name", TABLES)
def test_smoke_reproduction_writes_table_csv_and_plots(name: str, tmp_path: Path) -> None:
    out = tmp_path / name
    ran = smoke_rows(name)
    code = main([name, "--smoke", "--in-process", "--rows", ",".join(ran), "--out", str(out)])
    table = load_table(name)
    markdown = (out / f"{name}.md").read_text()
    rows = table_rows(markdown)
    assert list(rows) == [r.name for r in table.rows]
    for row in table.rows:
        cells = rows[row.name]
        if row.published is not None:
            assert f"{row.published:.2f}" in cells[3]
        if row.name not in ran:
            assert cells[-1] == "not yet run", cells
        else:
            assert cells[-1] == "ok", cells
            assert 0.0 <= float(cells[1]) <= 100.0 and cells[2] == cells[1]  # one seed: its value is the mean
            if row.published is not None:
                assert float(cells[4]) == pytest.approx(float(cells[1]) - row.published, abs=0.011)
    with open(out / "results.csv") as f:
        results = list(csv.DictReader(f))
    assert [r["row"] for r in results] == [r.name for r in table.rows]
    done = [r for r in results if r["status"] == "ok"]
    assert [r["row"] for r in done] == ran and code == 0
    for r in done:
        assert 0.0 <= float(r["mean"]) <= 100.0 and int(r["seeds_done"]) == 1
    plots = out / "plots"
    assert_png(plots / "comparison.png")
    for r in done:
        assert_png(plots / f"curves_{r['row']}.png")
    assert_png(plots / "training_error.png")
    with open(out / "curves.csv") as f:
        curves = list(csv.DictReader(f))
    assert {c["row"] for c in curves if c["tag"] == "train/acc"} == set(ran)
    if name != "transfer_learning":  # its ImageNet rows have no in-memory test split to plot
        assert_png(plots / "confusion_best.png")


CUSTOM_TABLE = """
title: two good rows and one impossible one
metric: test/acc
seeds: 1
rows:
  - {name: first, overrides: [model=resnet20], published: 90.0}
  - {name: second, overrides: [model=plain20]}
  - {name: broken, overrides: [model.depth=21]}
  - {name: third, overrides: [model=resnet20]}
"""


@pytest.mark.slow
def test_rerun_skips_finished_jobs_resumes_interrupted_and_records_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In process: which jobs run again is decided before they start, however they run (the
    subprocess path: test_submitit_local_launcher_runs_a_job and the README's commands)."""
    table, out = tmp_path / "mine.yaml", tmp_path / "mine"
    table.write_text(CUSTOM_TABLE)
    runs = out / "runs"
    args = [str(table), "--smoke", "--in-process", "--out", str(out)]
    # The impossible row fails with its reason; the others finish.
    assert main(args) == 1
    record = json.loads((out / "jobs.json").read_text())
    assert record["first_seed0"]["status"] == record["second_seed0"]["status"] == "done"
    assert record["broken_seed0"]["status"] == "failed" and "6n+2" in record["broken_seed0"]["reason"]
    rows = table_rows((out / "mine.md").read_text())
    assert (
        rows["first"][-1] == "ok"
        and rows["broken"][-1].startswith("failed: ")
        and "6n+2" in rows["broken"][-1]
    )
    stamps = {p.name: (p / "metrics.json").stat().st_mtime_ns for p in runs.iterdir() if p.is_dir()}

    # Stopped after one finished job: `second` recorded an interruption (what SIGTERM leaves) and kept
    # its checkpoint.
    second_metrics = runs / "second_seed0" / "metrics.json"
    second_metrics.write_text(json.dumps({"status": "interrupted", "error": "stopped by SIGTERM"}))
    # `third` failed after it had its folder (a crash of the machine's driver, say).
    (runs / "third_seed0" / "metrics.json").write_text(json.dumps({"status": "failed", "error": "boom"}))
    capsys.readouterr()
    assert main(args) == 1
    second = capsys.readouterr().out
    assert "resuming second" in second and "running first" not in second
    assert "running broken" in second  # failed jobs are redone
    after = {p.name: (p / "metrics.json").stat().st_mtime_ns for p in runs.iterdir() if p.is_dir()}
    assert after["first_seed0"] == stamps["first_seed0"] and "second_seed0" in after
    assert json.loads((out / "jobs.json").read_text())["second_seed0"]["status"] == "done"
    assert json.loads(second_metrics.read_text())["status"] == "completed"
    kept = json.loads((out / "failed_attempts" / "third_seed0-1" / "metrics.json").read_text())
    assert kept == {"status": "failed", "error": "boom"}  # the failed attempt is kept, then redone
    assert json.loads((runs / "third_seed0" / "metrics.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_job(tmp_path: Path) -> None:
    proc = run_cli(
        "cifar_resnets.cli.reproduce",
        [
            "attention_resnet",
            "--smoke",
            "--out",
            str(tmp_path / "t"),
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            "hydra.launcher.gpus_per_node=0",
        ],  # fmt: skip
        cwd=tmp_path,
    )
    assert "1/1 jobs done" in proc.stdout
    metrics = json.loads((tmp_path / "t" / "runs" / "attention_resnet_seed0" / "metrics.json").read_text())
    assert 0.0 <= metrics["test/acc"] <= 1.0
    assert any((tmp_path / "t" / "sweeps" / "attention_resnet_fresh" / ".submitit").iterdir())


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("cifar_resnets.cli.reproduce", ["no_such_table"], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "unknown table 'no_such_table'" in proc.stderr


@pytest.mark.parametrize("claim", ["first > nowhere", "first >> second", "first>second"])
def test_a_claim_that_does_not_read_row_op_row_is_refused_naming_it(
    tmp_path: Path, claim: str, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "claims.yaml"
    table.write_text(CUSTOM_TABLE + f"claims: ['{claim}']\n")
    with pytest.raises(SystemExit) as exit_info:
        main([str(table), "--list"])
    error = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and error.count("\n") == 0
    assert f"claim {claim!r} must read 'ROW OP ROW'" in error and "first, second, broken, third" in error


def test_parallel_rows_start_longest_first(tmp_path: Path, monkeypatch) -> None:
    """With --parallel N the longest rows start first, so none runs alone at the end; one at a time keeps
    the table's order."""
    from cifar_resnets.cli import reproduce as cli
    from cifar_resnets.reproduce import runner
    from cifar_resnets.reproduce.plan import longest_first, plan

    started: list[str] = []

    threads: set[int | None] = set()

    def fake_run(jobs, overrides, runs_dir, log_file, job_threads):
        started.append(jobs[0].row.name)
        threads.add(job_threads)
        return 0, ""

    monkeypatch.setattr(runner, "run_group_subprocess", fake_run)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    table = load_table_arg("he2016_table6")
    jobs = plan(table, tmp_path, 1)
    order = [g[0].row.name for g in longest_first(table, [[j] for j in jobs])]
    assert order[:2] == ["resnet1202", "resnet110"] and order[2:4] == ["resnet56", "plain56"]
    assert order[-2:] == ["resnet20", "plain20"] and sorted(order) == sorted(r.name for r in table.rows)

    args = cli.parse_args(["he2016_table6", "--parallel", "2", "--out", str(tmp_path)])
    runner.run_jobs(table, jobs, tmp_path, args)  # the fake trains nothing: every job is recorded failed
    assert "resnet1202" in started[:2] and sorted(started) == sorted(order)
    assert threads == {max(1, len(os.sched_getaffinity(0)) // 2)}  # two rows share the cores
    started.clear()
    threads.clear()
    one_at_a_time = cli.parse_args(["he2016_table6", "--out", str(tmp_path)])
    runner.run_jobs(table, plan(table, tmp_path, 1), tmp_path, one_at_a_time)
    assert started == [r.name for r in table.rows] and threads == {None}


def test_rows_runs_only_the_named_rows_and_the_report_keeps_the_others(tmp_path: Path, capsys) -> None:
    out = tmp_path / "grid"
    args = ["plain_vs_residual", "--rows", "resnet20", "--smoke", "--in-process", "--out", str(out)]
    assert main(args) == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["resnet20_seed0"]
    rows = table_rows((out / "plain_vs_residual.md").read_text())
    assert rows["resnet20"][-1] == "ok" and rows["plain56"][-1] == "not yet run"
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["plain_vs_residual", "--rows", "resnet21", "--out", str(tmp_path / "x")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no row resnet21; its rows are plain20, resnet20" in err


ENDINGS_TABLE = """
title: one row per way a job can end
metric: test/acc
seeds: 1
rows:
  - {name: completed, overrides: [model=resnet20]}
  - {name: failed, overrides: [model=resnet20]}
  - {name: diverged, overrides: [model=resnet20]}
  - {name: error, overrides: [model=resnet20]}
  - {name: interrupted, overrides: [model=resnet20]}
  - {name: untested, overrides: [model=resnet20]}
  - {name: unrun, overrides: [model=resnet20]}
"""


def test_the_report_says_how_each_job_ended(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each status a job's metrics.json can record, in the words of the table's status column."""
    table, out = tmp_path / "endings.yaml", tmp_path / "endings"
    table.write_text(ENDINGS_TABLE)
    records = {
        "completed": {"status": "completed", "test/acc": 0.5, "epochs": 1},
        "failed": {"status": "failed", "error": "RuntimeError: boom"},
        "diverged": {"status": "diverged", "error": "RunError: training diverged at step 3"},
        "error": {"status": "error", "message": "CUDA error"},  # the status of older records
        "interrupted": {"status": "interrupted", "error": "stopped by SIGTERM"},
        "untested": {"status": "completed", "epochs": 1},
    }
    for row, record in records.items():
        job = out / "runs" / f"{row}_seed0"
        job.mkdir(parents=True)
        (job / "metrics.json").write_text(json.dumps(record))
    assert main([str(table), "--report-only", "--out", str(out)]) == 0
    rows = table_rows((out / "endings.md").read_text())
    assert {row: cells[-1] for row, cells in rows.items()} == {
        "completed": "ok",
        "failed": "failed: RuntimeError: boom",  # said once, not "failed: failed: ..."
        "diverged": "failed: RunError: training diverged at step 3",
        "error": "failed: CUDA error",
        "interrupted": "interrupted (the next run continues it)",
        "untested": "failed: metrics.json has no 'test/acc'",
        "unrun": "not yet run",
    }


# A process that holds a table folder (as a running cifar-reproduce does) until a line on stdin.
TABLE_HOLDER = (
    "import sys\n"
    "from pathlib import Path\n"
    "from cifar_resnets.reproduce.table_lock import table_folder_lock\n"
    "with table_folder_lock(Path(sys.argv[1])):\n"
    "    print('locked', flush=True)\n"
    "    sys.stdin.readline()\n"
)


def test_a_second_reproduce_into_a_busy_table_folder_is_refused_naming_the_holder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hash_folder
) -> None:
    out = tmp_path / "table"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", TABLE_HOLDER, str(out), "cifar-reproduce plain_vs_residual"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = hash_folder(out)
        with pytest.raises(SystemExit) as exit_:
            main(["plain_vs_residual", "--smoke", "--in-process", "--out", str(out)])
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith(
            f"cifar-reproduce: error: table folder {out} is in use"
        )
        assert f"pid {holder.pid} on " in err and "started 20" in err and "--out" in err
        assert hash_folder(out) == before
    finally:
        holder.communicate("\n", timeout=60)
    assert sorted(p.name for p in out.iterdir()) == [".reproduce.lock"]  # the holder's record went with it


def test_a_job_folder_held_by_a_live_run_is_never_moved_aside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failed job whose folder a run still holds (a job of an earlier launch, still running on a
    cluster): the plan stops before moving anything."""
    out = tmp_path / "table"
    job = out / "runs" / "resnet20_seed0"
    job.mkdir(parents=True)
    (job / "metrics.json").write_text(json.dumps({"status": "failed", "error": "earlier"}))
    holder = subprocess.Popen(
        [sys.executable, "-c", RUN_HOLDER, str(job)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SystemExit) as exit_:
            main(["plain_vs_residual", "--rows", "resnet20", "--smoke", "--in-process", "--out", str(out)])
        assert exit_.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"job folder {job} is in use by a run (pid {holder.pid} on " in err
        assert (job / "metrics.json").is_file() and not (out / "failed_attempts").exists()
    finally:
        holder.communicate("\n", timeout=60)


RUN_HOLDER = (
    "import sys\n"
    "from cifar_resnets.training.run_lock import acquire\n"
    "acquire(sys.argv[1])\n"
    "print('locked', flush=True)\n"
    "sys.stdin.readline()\n"
)


@pytest.mark.slow
def test_a_job_stopped_by_sigterm_resumes_from_its_last_checkpoint_on_the_rerun(tmp_path: Path) -> None:
    """The commands as a user types them: the job is stopped by SIGTERM right after its last.ckpt
    (status interrupted, exit 143); the same command again resumes it instead of training it afresh."""
    import fault_injection

    table, out = tmp_path / "mine.yaml", tmp_path / "mine"
    table.write_text(CUSTOM_TABLE)
    args = [str(table), "--smoke", "--rows", "first", "--out", str(out)]
    term = (
        "+trainer.plugins=[{_target_:fault_injection.FaultyCheckpointIO,file:last.ckpt,step:2,signal:TERM}]"
    )
    env = {"PYTHONPATH": fault_injection.TESTS_PYTHONPATH}
    proc = run_cli("cifar_resnets.cli.reproduce", [*args, term], tmp_path, check=False, env=env)
    job = out / "runs" / "first_seed0"
    assert proc.returncode == 1 and json.loads((job / "metrics.json").read_text())["status"] == "interrupted"
    checkpoint = (job / "checkpoints" / "last.ckpt").read_bytes()

    proc = run_cli("cifar_resnets.cli.reproduce", args, tmp_path, env=env)
    assert "resuming first" in proc.stdout and not (out / "failed_attempts").exists()
    metrics = json.loads((job / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["steps"] == 2
    assert (job / "checkpoints" / "last.ckpt").read_bytes() == checkpoint  # nothing left to train
    rows = table_rows((out / "mine.md").read_text())
    assert rows["first"][-1] == "ok" and f"torch {metrics['provenance']['torch']}" in rows["first"][-2]

    # A finished job is never trained again.
    proc = run_cli("cifar_resnets.cli.reproduce", args, tmp_path, env=env)
    assert "nothing to run" in proc.stdout and json.loads((job / "metrics.json").read_text()) == metrics
