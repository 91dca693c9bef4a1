"""A run killed at any moment and resumed with ``ckpt_path=auto`` ends exactly like the uninterrupted run.

The matrix: every way to limit a run (epochs only; steps only, ending at an epoch end; steps only,
ending inside an epoch; both, with the step limit ending the run inside its last epoch) times every
kill point (SIGKILL right after an epoch-end checkpoint, right after a mid-epoch checkpoint, during
validation). Each interrupted run and each resume is its own process, killed with a real SIGKILL at an
exact moment by the test-only checkpoint writer or callback of ``fault_injection``, added to the run's
config; the resumed run must end at the same global step and epoch as the uninterrupted one, with
bit-identical weights (raw and EMA) and optimizer state.

The 28 runs are fresh interpreters (``multiprocessing``'s spawn), two at a time: no thread pool of a torch
kernel is copied into them, and each reports its exit status itself (a forkserver sometimes could not,
and the run read 255). Each limit mode's config is composed once. Every run uses one CPU thread
(the reduction order of CPU kernels depends on the thread count), ``trainer.deterministic=true`` and the
GPU-resident loader on CPU tensors, whose position survives a mid-epoch checkpoint.
"""

from __future__ import annotations

import multiprocessing
import os
import shlex
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fault_injection
import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict
from train_helpers import read_metrics, run_cli, tiny_overrides

from cifar_resnets.config.compose import compose_train
from cifar_resnets.errors import CheckpointError
from cifar_resnets.inference.checkpoint import read_checkpoint
from cifar_resnets.training.train import train

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# 64 images / batch 16 = 4 steps per epoch; last.ckpt also every 3 steps (mid-epoch: 3, 6, 9).
LIMITS = {
    "epochs": {"trainer.max_epochs": 3, "trainer.max_steps": -1},  # 12 steps
    "steps": {"trainer.max_epochs": -1, "trainer.max_steps": 12},  # ends at the end of epoch 2
    "steps_mid_epoch": {"trainer.max_epochs": -1, "trainer.max_steps": 10},  # ends inside epoch 2
    "both": {"trainer.max_epochs": 3, "trainer.max_steps": 10},  # the step limit ends epoch 2 early
}
# What each kill adds to the config, as the override a command line would give, and the step of the
# last.ckpt it leaves behind.
KILLS = {
    "after_epoch_end_checkpoint": (
        "+trainer.plugins=[{_target_:fault_injection.FaultyCheckpointIO,file:last.ckpt,step:8}]",
        8,
    ),
    "after_mid_epoch_checkpoint": (
        "+trainer.plugins=[{_target_:fault_injection.FaultyCheckpointIO,file:last.ckpt,step:6}]",
        6,
    ),
    "during_validation": ("+callbacks.fault={_target_:fault_injection.KillDuringValidation,step:8}", 6),
}


def _overrides(root: Path, limits: str) -> list[str]:
    return tiny_overrides(
        root,
        **{
            "model.depth": 8,
            "data.num_train": 64,
            "data.val_size": 16,
            "data.batch_size": 16,
            "data.eval_batch_size": 16,
            "data.loader": "gpu",
            "trainer.deterministic": True,
            "trainer.enable_model_summary": False,
            "callbacks": "ema",  # the averaged weights and their count must resume too
            "callbacks.mid_epoch_checkpoint.every_n_train_steps": 3,
            "callbacks.lr_monitor": None,
            "logger": "none",
            "test_after_fit": False,
            "ckpt_path": "auto",
            **LIMITS[limits],
        },
    )


def _with_kill(cfg: DictConfig, kill: str) -> DictConfig:
    """``cfg`` plus the kill's plugin or callback: what its ``+key=value`` override adds, read by Hydra's
    own override parser (composing once per limit mode instead of per run saves most of a run's time)."""
    override = OverridesParser.create().parse_override(KILLS[kill][0])
    cfg = cfg.copy()
    with open_dict(cfg):
        OmegaConf.update(cfg, override.key_or_group, override.value(), force_add=True)
    return cfg


class Runs:
    """Training runs in fresh processes, at most two at a time (one per CPU core, one thread each)."""

    def __init__(self) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._pool = ThreadPoolExecutor(max_workers=2)

    def _run(self, cfg: DictConfig, run_dir: Path) -> int:
        process = self._context.Process(target=fault_injection.train_one_thread, args=(cfg, str(run_dir)))
        process.start()
        process.join(timeout=600)
        if process.is_alive():
            process.kill()
            process.join()
            raise AssertionError(f"training into {run_dir} did not end within 600 s")
        return process.exitcode

    def all(self, jobs: list[tuple[DictConfig, Path]]) -> list[int]:
        """Run every (config, folder) job; their exit codes, in order."""
        return list(self._pool.map(lambda job: self._run(*job), jobs))


@pytest.fixture(scope="module")
def runs():
    """A ``Runs`` whose processes each have one thread and find ``fault_injection``."""
    environment = {**ONE_THREAD, "PYTHONPATH": fault_injection.TESTS_PYTHONPATH}
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    try:
        yield Runs()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def configs(synthetic_cifar10: Path) -> dict[str, DictConfig]:
    return {limits: compose_train(_overrides(synthetic_cifar10, limits)) for limits in LIMITS}


@pytest.fixture(scope="module")
def matrix(configs, runs, tmp_path_factory) -> dict[tuple[str, str], dict]:
    """Every uninterrupted run, every interrupted one, then every resume: folders and exit codes."""
    root = tmp_path_factory.mktemp("matrix")
    references = {limits: root / limits / "uninterrupted" for limits in LIMITS}
    combos = [(limits, kill) for limits in LIMITS for kill in KILLS]
    folders = {combo: root / combo[0] / combo[1] for combo in combos}
    first = [(configs[limits], references[limits]) for limits in LIMITS]
    first += [(_with_kill(configs[limits], kill), folders[limits, kill]) for limits, kill in combos]
    codes = runs.all(first)
    reference_codes, killed_codes = codes[: len(LIMITS)], codes[len(LIMITS) :]
    assert reference_codes == [0] * len(LIMITS), reference_codes
    saved_steps = {combo: _last_step(folders[combo]) for combo in combos}
    resumed_codes = runs.all([(configs[limits], folders[limits, kill]) for limits, kill in combos])
    return {
        combo: {
            "folder": folders[combo],
            "reference": references[combo[0]],
            "killed": killed,
            "saved_step": saved_steps[combo],
            "resumed": resumed,
        }
        for combo, killed, resumed in zip(combos, killed_codes, resumed_codes)
    }


def _last_step(run_dir: Path) -> int | None:
    last = run_dir / "checkpoints" / "last.ckpt"
    return int(read_checkpoint(last)["global_step"]) if last.is_file() else None


def _assert_same_end(resumed: Path, reference: Path) -> None:
    a, b = read_metrics(resumed), read_metrics(reference)
    assert a["status"] == b["status"] == "completed", a
    assert (a["steps"], a["epochs"]) == (b["steps"], b["epochs"])
    ca, cb = (read_checkpoint(run / "checkpoints" / "last.ckpt") for run in (resumed, reference))
    assert (ca["global_step"], ca["epoch"]) == (cb["global_step"], cb["epoch"])
    # state_dict: the EMA weights; current_model_state: the raw ones; then the optimizer's momenta.
    for part in ("state_dict", "current_model_state"):
        assert ca[part].keys() == cb[part].keys()
        for key in ca[part]:
            assert torch.equal(ca[part][key], cb[part][key]), (part, key)
    for sa, sb in zip(
        ca["optimizer_states"][0]["state"].values(), cb["optimizer_states"][0]["state"].values()
    ):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow
@pytest.mark.parametrize("kill", KILLS)
@pytest.mark.parametrize("limits", LIMITS)
def test_killed_run_resumes_to_the_uninterrupted_result(matrix, limits: str, kill: str) -> None:
    run = matrix[limits, kill]
    assert run["killed"] == -signal.SIGKILL
    assert run["saved_step"] == KILLS[kill][1]
    assert run["resumed"] == 0  # the same config again, without the kill
    _assert_same_end(run["folder"], run["reference"])


@pytest.mark.slow
def test_truncated_last_checkpoint_names_the_newest_readable_one_and_the_command(
    synthetic_cifar10: Path, configs, runs, matrix, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    assert runs.all([(_with_kill(configs["both"], "after_mid_epoch_checkpoint"), run_dir)]) == [
        -signal.SIGKILL
    ]
    last = run_dir / "checkpoints" / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 3])  # what a full disk or a bad copy leaves
    with pytest.raises(CheckpointError) as info:
        train(compose_train(_overrides(synthetic_cifar10, "both"), output_dir=run_dir))
    message = str(info.value)
    assert len(message.splitlines()) == 1 and str(last) in message and "truncated" in message
    newest = run_dir.absolute() / "checkpoints" / "epoch000.ckpt"
    assert f"the newest readable checkpoint beside it is {newest} (step 4, epoch 0)" in message
    command = shlex.split(message.split("resume from it with: ", 1)[1])
    assert command[0] == "cifar-train" and f"ckpt_path={newest}" in command
    assert f"hydra.run.dir={run_dir.absolute()}" in command
    # The command as printed resumes the run to the uninterrupted result.
    cfg = compose_train([a for a in command[1:] if not a.startswith("hydra.run.dir=")])
    assert runs.all([(cfg, run_dir)]) == [0]
    _assert_same_end(run_dir, matrix["both", "after_mid_epoch_checkpoint"]["reference"])


@pytest.mark.slow
def test_cli_rerun_after_a_kill_at_an_epoch_end_keeps_both_limits(synthetic_cifar10: Path, tmp_path: Path):
    """The reported case: 8 epochs of 8 steps limited to 60 steps, killed right after the checkpoint of
    epoch 2 (step 24); the same cifar-train command with ckpt_path=auto used to stop at 56 steps."""
    run_dir = tmp_path / "run"
    args = [
        "trainer=cpu",
        f"data.root={synthetic_cifar10}",
        "data.num_train=256",
        "data.val_size=0",
        "data.batch_size=32",
        "model.depth=8",
        "trainer.max_epochs=8",
        "trainer.max_steps=60",
        "test_after_fit=false",
        "logger=none",
        "callbacks.lr_monitor=null",
        "callbacks.progress_bar=null",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**ONE_THREAD, "PYTHONPATH": fault_injection.TESTS_PYTHONPATH}
    kill = "+trainer.plugins=[{_target_:fault_injection.FaultyCheckpointIO,file:last.ckpt,step:24}]"
    proc = run_cli("cifar_resnets.cli.train", [*args, kill], tmp_path, check=False, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert (run_dir / "checkpoints" / "epoch002.ckpt").is_file()
    proc = run_cli("cifar_resnets.cli.train", [*args, "ckpt_path=auto"], tmp_path, env=env)
    metrics = read_metrics(run_dir)
    assert (metrics["steps"], metrics["epochs"], metrics["status"]) == (60, 8, "completed")
    assert "max_steps=60` reached" in proc.stdout + proc.stderr  # Lightning logs through Hydra
    # The killed run's lock was free (the kernel drops it with the process) and was taken over.
    assert "taking over the lock" in proc.stdout + proc.stderr
