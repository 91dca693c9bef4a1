"""Crash-safe training: atomic checkpoints, SIGKILL mid-write and SIGTERM through the CLI, divergence,
unsafe checkpoints, failing jobs of a sweep and of a parallel sweep. (Resuming after a kill at every
moment and under every limit: test_resume_faults.py.)

Exact-resume runs pin one CPU thread (the reduction order of CPU kernels depends on the thread count)
and use ``trainer.deterministic=true`` and the stateful GPU-resident loader on CPU tensors
(``data.loader=gpu``), whose position survives a mid-epoch checkpoint. Kill points are exact, not
timed: ``fault_injection.FaultyCheckpointIO`` makes the process kill itself at a chosen checkpoint write.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import fault_injection
import pytest
import torch
from train_helpers import read_metrics, run_cli, tiny_overrides

from cifar_resnets.config.compose import compose_train
from cifar_resnets.errors import CheckpointError, RunError
from cifar_resnets.inference.checkpoint import load_model, read_checkpoint
from cifar_resnets.training.callbacks.checkpointing import EXIT_INTERRUPTED
from cifar_resnets.training.callbacks.divergence import DivergenceGuard
from cifar_resnets.training.checkpoint_io import TEMP_PREFIX, atomic_torch_save, remove_stale_partials
from cifar_resnets.training.train import train

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# 256 images / batch 64 = 4 steps per epoch, 12 in all; last.ckpt also every 3 steps (mid-epoch), EMA on.
EXACT = {
    "callbacks": "ema",  # the EMA weights and their count must resume too
    "trainer.deterministic": True,
    "data.loader": "gpu",
    "trainer.max_epochs": 3,
    "callbacks.mid_epoch_checkpoint.every_n_train_steps": 3,
}


def _faulty_io(**settings: object) -> str:
    """The override that swaps in ``fault_injection.FaultyCheckpointIO`` with these settings."""
    fields = ",".join(f"{k}:{v}" for k, v in settings.items())
    return f"+trainer.plugins=[{{_target_:fault_injection.FaultyCheckpointIO,{fields}}}]"


def _train_one_thread(overrides: list[str], output_dir: Path) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(compose_train(overrides, output_dir=output_dir))
    finally:
        torch.set_num_threads(threads)


def _step(ckpt: Path) -> int:
    return int(read_checkpoint(ckpt)["global_step"])


def _assert_same_state(a: Path, b: Path) -> None:
    sa, sb = read_checkpoint(a)["state_dict"], read_checkpoint(b)["state_dict"]
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture(scope="module")
def uninterrupted(synthetic_cifar10: Path, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    _train_one_thread(tiny_overrides(synthetic_cifar10, **EXACT), run_dir)
    return run_dir


# ----------------------------------------------------------------------------- atomic writes


def test_kill_during_a_checkpoint_write_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    atomic_torch_save({"state_dict": {"w": torch.zeros(3)}, "global_step": 1}, target)
    # A fresh interpreter, not os.fork(): a forked copy of this process can deadlock in torch's thread pool.
    child = (
        "import sys, torch\n"
        "from fault_injection import FaultyCheckpointIO\n"
        "new = {'state_dict': {'w': torch.ones(1 << 16)}, 'global_step': 2}\n"
        "FaultyCheckpointIO(file='last.ckpt', step=2, moment='during').save_checkpoint(new, sys.argv[1])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", child, str(target)],
        env={**os.environ, "PYTHONPATH": fault_injection.TESTS_PYTHONPATH},
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr  # killed halfway through writing the new version
    assert torch.load(target, weights_only=True)["global_step"] == 1  # the old file, whole
    partials = list(tmp_path.glob(f"{TEMP_PREFIX}*"))
    assert len(partials) == 1 and partials[0].stat().st_size > 0  # the half-written new version
    remove_stale_partials(tmp_path)
    assert not list(tmp_path.glob(f"{TEMP_PREFIX}*"))


# ----------------------------------------------------------------------------- SIGKILL, SIGTERM


@pytest.mark.slow
def test_killed_and_terminated_run_resumes_to_the_same_result(
    synthetic_cifar10: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    """SIGKILL mid-write, then SIGTERM mid-epoch, then the same command finishes: identical result."""
    run_dir = tmp_path / "run"
    overrides = [*tiny_overrides(synthetic_cifar10, **EXACT), "ckpt_path=auto"]
    command = [*overrides, f"hydra.run.dir={run_dir}"]
    last = run_dir / "checkpoints" / "last.ckpt"
    env = {**ONE_THREAD, "PYTHONPATH": fault_injection.TESTS_PYTHONPATH}

    # 1. Saves: last@3 (mid-epoch), epoch000@4, last@4 <- SIGKILL halfway through this write.
    kill = _faulty_io(file="last.ckpt", step=4, moment="during")
    proc = run_cli("cifar_resnets.cli.train", [*command, kill], tmp_path, check=False, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert _step(last) == 3, "the interrupted write must leave the previous last.ckpt intact"
    assert list(last.parent.glob(f"{TEMP_PREFIX}*")), "the half-written file was a temp file"

    # 2. Same command: resumes mid-epoch at step 3; SIGTERM right after last@6 (mid-epoch 1).
    term = _faulty_io(file="last.ckpt", step=6, signal="TERM")
    proc = run_cli("cifar_resnets.cli.train", [*command, term], tmp_path, check=False, env=env)
    assert proc.returncode == EXIT_INTERRUPTED, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    status = read_metrics(run_dir)
    assert status["status"] == "interrupted" and status["checkpoint"] == str(last), status
    assert _step(last) == 6
    assert not list(last.parent.glob(f"{TEMP_PREFIX}*")), "stale temp files are cleaned on the next save"

    # 3. Same command again, to the end.
    resumed = _train_one_thread(overrides, run_dir)
    reference = read_metrics(uninterrupted)
    assert resumed["status"] == "completed"
    for key in ("steps", "epochs", "test/acc", "test/loss", "val/acc", "val/loss"):
        assert resumed[key] == reference[key], key
    _assert_same_state(last, uninterrupted / "checkpoints" / "last.ckpt")


# ----------------------------------------------------------------------------- divergence


def test_absurd_learning_rate_stops_with_step_epoch_lr_and_keeps_a_good_checkpoint(
    synthetic_cifar10: Path, tmp_path: Path
) -> None:
    # Flag read every 50 steps only: the save-time check must still keep NaN weights off disk.
    overrides = tiny_overrides(
        synthetic_cifar10,
        **{
            "optim.lr": 1e6,
            "trainer.max_epochs": 3,
            "trainer.log_every_n_steps": 50,
            "callbacks.mid_epoch_checkpoint.every_n_train_steps": 2,
        },
    )
    with pytest.raises(RunError) as info:
        train(compose_train(overrides, output_dir=tmp_path))
    message = str(info.value)
    err = info.value
    step, epoch, lr = err.details["step"], err.details["epoch"], err.details["lr"]
    # The lr the diverging step used (a warmup may scale the configured one).
    assert 0 < lr <= 1e6 and f"step {step} (epoch {epoch}" in message and f"lr {lr:g}" in message
    assert err.exit_code == 1
    metrics = read_metrics(tmp_path)
    assert metrics["status"] == "diverged" and metrics["lr"] == lr and metrics["step"] == step
    assert "diverged" in (tmp_path / "error.txt").read_text()
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert metrics["last_checkpoint"] == str(last)
    assert 0 < _step(last) < step
    for ckpt in (tmp_path / "checkpoints").glob("*.ckpt"):
        state = read_checkpoint(ckpt)["state_dict"]
        assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()), ckpt
    loaded = load_model(last)
    assert all(torch.isfinite(p).all() for p in loaded.net.parameters())


class _FakeStrategy:
    @staticmethod
    def reduce_boolean_decision(decision: bool, all: bool = True) -> bool:  # noqa: A002 - Lightning's name
        return decision


class _FakeTrainer:
    def __init__(self, root: Path) -> None:
        self.global_step, self.current_epoch, self.log_every_n_steps = 0, 2, 50
        self.optimizers = [torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.25)]
        self.strategy, self.callbacks, self.default_root_dir = _FakeStrategy(), [], str(root)


def test_divergence_flag_is_read_only_every_n_steps_and_names_the_first_bad_step(tmp_path: Path) -> None:
    guard, trainer = DivergenceGuard(check_every_n_steps=4), _FakeTrainer(tmp_path)
    losses = [1.0, float("nan"), float("inf"), 2.0]
    for batch_idx, loss in enumerate(losses[:3]):
        guard.on_train_batch_start(trainer, None, None, batch_idx)
        trainer.global_step += 1
        guard.on_train_batch_end(trainer, None, {"loss": torch.tensor(loss)}, None, batch_idx)  # no raise yet
    guard.on_train_batch_start(trainer, None, None, 3)
    trainer.global_step += 1
    with pytest.raises(RunError, match=r"loss is nan at step 2 \(epoch 2, batch 1\) with lr 0.25"):
        guard.on_train_batch_end(trainer, None, {"loss": torch.tensor(losses[3])}, None, 3)


def test_diverged_error_survives_pickling() -> None:
    """joblib sends a failed job's exception back to the sweep process."""
    sent = RunError("boom", exit_code=1, step=3, epoch=1, lr=0.5, last_checkpoint="x")
    err = pickle.loads(pickle.dumps(sent))
    assert str(err) == "boom" and err.exit_code == 1
    assert err.details == {"step": 3, "epoch": 1, "lr": 0.5, "last_checkpoint": "x"}


# ----------------------------------------------------------------------------- unsafe checkpoints


class _Payload:
    """Unpickling this creates the marker file: what a malicious checkpoint would do with a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoint_with_a_pickled_callable_is_refused_and_runs_nothing(
    synthetic_cifar10: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "payload": _Payload(marker)}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_model(evil)
    assert not marker.exists()
    run_dir = tmp_path / "run"
    cfg = compose_train(tiny_overrides(synthetic_cifar10, ckpt_path=str(evil)), output_dir=run_dir)
    with pytest.raises(CheckpointError, match="refused"):
        train(cfg)
    assert not marker.exists()
    assert not (run_dir / "checkpoints").exists(), "nothing was trained"
    # The file really is a working exploit for an unrestricted loader.
    torch.load(evil, weights_only=False)
    assert marker.exists()


# ----------------------------------------------------------------------------- sweeps


# A sweep job of seconds: 2 steps of 32 images per epoch, one validation batch, no test, no logger.
SMALL_JOB = {
    "data.num_train": 64,
    "data.batch_size": 32,
    "data.eval_batch_size": 64,
    "trainer.limit_val_batches": 1,
    "test_after_fit": False,
    "logger": "none",
    "callbacks.lr_monitor": None,  # it needs a logger
    "trainer.enable_model_summary": False,
}


@pytest.mark.slow
def test_failing_sweep_job_is_recorded_and_the_others_finish(synthetic_cifar10: Path, tmp_path: Path) -> None:
    """Hydra's basic launcher runs the jobs one after another in one process."""
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        *tiny_overrides(synthetic_cifar10, **{**SMALL_JOB, "trainer.max_epochs": 2}),
        "optim.lr=1e6,0.05",  # the first job diverges
        f"hydra.sweep.dir={sweep}",
        "hydra.sweep.subdir=${hydra.job.num}",  # the many tiny overrides would make too long a name
    ]
    proc = run_cli("cifar_resnets.cli.train", args, tmp_path, check=False)
    assert proc.returncode != 0  # Hydra reports the failed job at the end
    assert (sweep / "1").is_dir(), proc.stderr[-3000:]
    bad = read_metrics(sweep / "0")
    assert (
        bad["status"] == "diverged"
        and bad["error"].startswith("RunError: training diverged")
        and bad["lr"] >= 1e4
    )
    assert "Traceback" in (sweep / "0" / "error.txt").read_text()
    good = read_metrics(sweep / "1")
    assert good["status"] == "completed" and good["steps"] == 4


@pytest.mark.slow
def test_parallel_sweep_records_each_jobs_result_in_its_own_folder(
    synthetic_cifar10: Path, tmp_path: Path
) -> None:
    """joblib, 2 workers: a job that completes, one that diverges and two the config checks refuse each
    leave their own folder and result."""
    sweep = tmp_path / "sweep"
    small = tiny_overrides(synthetic_cifar10, **{**SMALL_JOB, "trainer.max_epochs": 2})
    small = [o for o in small if not o.startswith("data.val_size=")]
    args = [
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *small,
        "optim.lr=0.05,1e6",  # 1e6 diverges
        "data.val_size=16,600",  # 600 > the 512 images on disk: those 2 jobs are refused
        f"hydra.sweep.dir={sweep}",
        "hydra.sweep.subdir=${hydra.job.num}",
    ]
    proc = run_cli("cifar_resnets.cli.train", args, tmp_path, check=False, timeout=900)
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / ".hydra").is_dir())
    assert len(jobs) == 4, (sorted(p.name for p in sweep.iterdir()), proc.stderr[-3000:])
    seen = set()
    for job in jobs:
        metrics = read_metrics(job)
        lines = (job / ".hydra" / "overrides.yaml").read_text().splitlines()
        overrides = dict(line.removeprefix("- ").split("=", 1) for line in lines)
        if overrides["data.val_size"] == "600":
            assert metrics["status"] == "failed" and "data.val_size" in metrics["error"], metrics
        elif float(overrides["optim.lr"]) > 1:  # Hydra writes 1e6 as 1000000.0
            assert metrics["status"] == "diverged" and metrics["error"].startswith(
                "RunError: training diverged"
            ), metrics
        else:
            assert metrics["status"] == "completed" and metrics["steps"] == 4, job
        seen.add((overrides["optim.lr"], overrides["data.val_size"]))
    assert len(seen) == 4  # no two jobs wrote into the same folder
