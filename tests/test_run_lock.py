"""One run per folder: a second run into a busy folder stops in one line before touching it; a lock left
by a killed run is taken over; sweep jobs, two at a time, each keep their own folder."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fault_injection
import pytest
from train_helpers import REPO, read_metrics, run_cli, tiny_overrides

from cifar_resnets.errors import RunError
from cifar_resnets.training.run_lock import LOCK_NAME, acquire, release, run_folder_lock

# A process that locks the folder in argv[1] and then waits for a line on stdin (or kills itself).
HOLDER = (
    "import os, signal, sys\n"
    "from cifar_resnets.training.run_lock import acquire\n"
    "acquire(sys.argv[1])\n"
    "print('locked', flush=True)\n"
    "if sys.argv[2] == 'die':\n"
    "    os.kill(os.getpid(), signal.SIGKILL)\n"
    "sys.stdin.readline()\n"
)


def _holder(folder: Path, then: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), then],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_held_by_a_live_process_is_refused_with_its_pid(tmp_path: Path) -> None:
    holder = _holder(tmp_path, "wait")
    try:
        with pytest.raises(RunError) as info:
            acquire(tmp_path)
        message = str(info.value)
        assert f"pid {holder.pid} on " in message and "hydra.run.dir" in message
        assert len(message.splitlines()) == 1
    finally:
        holder.communicate("\n", timeout=60)
    with run_folder_lock(tmp_path):  # free once its holder has ended
        pass


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_warning(tmp_path: Path, caplog) -> None:
    holder = _holder(tmp_path, "die")
    assert holder.wait(timeout=60) == -signal.SIGKILL
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == holder.pid  # the dead run's record
    with caplog.at_level(logging.WARNING), run_folder_lock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"taking over the lock of pid {holder.pid}" in caplog.text
    assert (tmp_path / LOCK_NAME).read_text() == ""  # a clean end leaves no record to take over


def test_the_process_holding_a_folder_may_enter_it_again(tmp_path: Path) -> None:
    """cifar-train's Hydra callback locks the folder, then train() locks it again in the same process."""
    acquire(tmp_path)
    with run_folder_lock(tmp_path):
        pass
    other = subprocess.run(
        [sys.executable, "-c", HOLDER, str(tmp_path), "die"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode == 1 and "RunError" in other.stderr  # still held by the outer acquire
    release(tmp_path)
    assert (tmp_path / LOCK_NAME).read_text() == ""


@pytest.mark.slow
def test_a_second_cifar_train_into_a_busy_folder_stops_before_writing(
    synthetic_cifar10: Path, tmp_path: Path
) -> None:
    run_dir, go = tmp_path / "run", tmp_path / "go"
    common = [
        *tiny_overrides(synthetic_cifar10, **{"logger": "none", "callbacks.lr_monitor": None}),
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "PYTHONPATH": fault_injection.TESTS_PYTHONPATH, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cifar_resnets.cli.train",
            *common,
            f"+callbacks.hold={{_target_:fault_injection.WaitForFile,path:{go}}}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        waiting = tmp_path / "go.waiting"  # the first run has locked the folder and is training
        deadline = time.monotonic() + 300
        while not waiting.exists():
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first run never started training"
            time.sleep(0.1)
        before = _files(run_dir)
        assert "config.yaml" in before and ".hydra/overrides.yaml" in before

        second = run_cli("cifar_resnets.cli.train", [*common, "seed=1"], tmp_path, check=False, env=env)
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert lines == [lines[-1]] and lines[0].startswith("cifar-train: error: run folder"), lines
        assert f"in use by another run (pid {first.pid} on " in lines[0]
        assert _files(run_dir) == before  # nothing of the first run was touched, .hydra/ included
    finally:
        go.touch()
        first.wait(timeout=600)
    assert first.returncode == 0, first.stderr.read()[-3000:]
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["seed"] == 0


@pytest.mark.slow
def test_two_sweep_jobs_at_once_keep_their_own_folders(synthetic_cifar10: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    overrides = tiny_overrides(
        synthetic_cifar10,
        **{"data.num_train": 64, "data.batch_size": 32, "logger": "none", "callbacks.lr_monitor": None},
    )
    args = [
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *overrides,
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
        "hydra.sweep.subdir=${hydra.job.num}",
    ]
    proc = run_cli("cifar_resnets.cli.train", args, tmp_path, check=False, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job in (0, 1):
        metrics = read_metrics(sweep / str(job))
        assert metrics["status"] == "completed" and metrics["seed"] == job
        assert (sweep / str(job) / LOCK_NAME).read_text() == ""  # each job locked and released its own


@pytest.mark.slow
def test_a_second_sweep_into_a_busy_sweep_folder_stops_before_writing(
    synthetic_cifar10: Path, tmp_path: Path, hash_folder
) -> None:
    sweep, go = tmp_path / "sweep", tmp_path / "go"
    common = [
        "-m",
        *tiny_overrides(synthetic_cifar10, **{"logger": "none", "callbacks.lr_monitor": None}),
        f"hydra.sweep.dir={sweep}",
        "hydra.sweep.subdir=${hydra.job.num}",
    ]
    env = {**os.environ, "PYTHONPATH": fault_injection.TESTS_PYTHONPATH, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cifar_resnets.cli.train",
            *common,
            "seed=0",
            f"+callbacks.hold={{_target_:fault_injection.WaitForFile,path:{go}}}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        waiting = tmp_path / "go.waiting"  # the first sweep's job has locked its folder and is training
        deadline = time.monotonic() + 300
        while not waiting.exists():
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first sweep never started training"
            time.sleep(0.1)
        before = hash_folder(sweep)
        assert "multirun.yaml" in before and any(p.endswith(".hydra/config.yaml") for p in before)

        second = run_cli("cifar_resnets.cli.train", [*common, "seed=0,1"], tmp_path, check=False, env=env)
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"cifar-train: error: sweep folder {sweep} is in use by another sweep")
        assert f"(pid {first.pid} on " in lines[0] and "hydra.sweep.dir=" in lines[0]
        assert hash_folder(sweep) == before  # multirun.yaml and the running job's .hydra/ untouched
    finally:
        go.touch()
        first.wait(timeout=600)
    assert first.returncode == 0, first.stderr.read()[-3000:]

    # The same sweep again into the finished sweep: its job is refused (a run is there) and writes nothing
    # into the job's folder, .hydra/ included.
    finished = hash_folder(sweep)
    again = run_cli("cifar_resnets.cli.train", [*common, "seed=0"], tmp_path, check=False, env=env)
    assert again.returncode == 1 and "already holds a completed run" in again.stderr
    assert {k: v for k, v in hash_folder(sweep).items() if k != "multirun.yaml"} == {
        k: v for k, v in finished.items() if k != "multirun.yaml"
    }
