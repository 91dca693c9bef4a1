"""Test-only ways to stop a training process at an exact moment, injected through the config.

A test names them in its overrides, so the run under test is the real one (``cifar-train`` or
``train(cfg)``) with one plugin or callback added:

- ``+trainer.plugins=[{_target_:fault_injection.FaultyCheckpointIO,file:last.ckpt,step:8}]``: the
  suite's atomic checkpoint writer that SIGKILLs its process right after ``last.ckpt`` of step 8 is in
  place (``moment: during`` kills it halfway through writing that file instead, ``signal: TERM`` sends
  what a scheduler sends);
- ``+callbacks.fault={_target_:fault_injection.KillDuringValidation,step:8}``: SIGKILL after the first
  validation batch at that step;
- ``+callbacks.fault={_target_:fault_injection.WaitForFile,path:...}``: hold the run at its start
  (after its folder is locked and ``config.yaml`` written) until the file exists;
- ``+trainer.plugins=[{_target_:fault_injection.DiskFullCheckpointIO,file:last.ckpt,step:8}]``: the disk
  is full when that checkpoint is written.

Subprocesses find this module with ``tests/`` on ``PYTHONPATH`` (``TESTS_PYTHONPATH``).
"""

from __future__ import annotations

import errno
import io
import os
import signal
import time
from pathlib import Path
from typing import IO, Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import setup_globals
from omegaconf import DictConfig, open_dict

from cifar_resnets.training.checkpoint_io import AtomicCheckpointIO
from cifar_resnets.training.train import train

TESTS = Path(__file__).resolve().parent
TESTS_PYTHONPATH = os.pathsep.join([str(TESTS.parent), str(TESTS)])


def _kill_self(sig: str = "KILL") -> None:
    os.kill(os.getpid(), getattr(signal, f"SIG{sig}"))


class FaultyCheckpointIO(AtomicCheckpointIO):
    """``AtomicCheckpointIO`` that kills its own process at the save of ``file`` at global step ``step``.

    Args:
        file: the checkpoint's file name (``last.ckpt``, ``epoch001.ckpt``).
        step: the ``global_step`` the checkpoint records.
        moment: ``after`` (the new file is in place) or ``during`` (half of it written to the
            temporary file, through the production write path).
        signal: ``KILL``, or ``TERM`` (Lightning stops at the next batch boundary; only with ``after``).
    """

    def __init__(self, file: str, step: int, moment: str = "after", signal: str = "KILL") -> None:
        super().__init__()
        if moment not in ("after", "during") or signal not in ("KILL", "TERM"):
            raise ValueError(f"moment={moment!r}, signal={signal!r}")
        self.file, self.step, self.moment, self.signal = file, int(step), moment, signal
        self._fired = False
        self._write_half = False

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        hit = not self._fired and Path(path).name == self.file and checkpoint.get("global_step") == self.step
        self._fired = self._fired or hit
        self._write_half = hit and self.moment == "during"
        super().save_checkpoint(checkpoint, path, storage_options)
        if hit:
            _kill_self(self.signal)

    def write(self, checkpoint: dict[str, Any], file: IO[bytes]) -> None:
        if not self._write_half:
            super().write(checkpoint, file)
            return
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        data = buffer.getvalue()
        file.write(data[: len(data) // 2])
        file.flush()
        os.fsync(file.fileno())
        _kill_self("KILL")


class KillDuringValidation(L.Callback):
    """SIGKILL after the first validation batch run at global step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = int(step)

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if trainer.global_step == self.step and not trainer.sanity_checking:
            _kill_self("KILL")


class WaitForFile(L.Callback):
    """Block at the start of training until ``path`` exists (at most ``timeout`` seconds)."""

    def __init__(self, path: str, timeout: float = 300.0) -> None:
        self.path, self.timeout = Path(path), timeout

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        (self.path.parent / f"{self.path.name}.waiting").touch()
        deadline = time.monotonic() + self.timeout
        while not self.path.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.path} did not appear within {self.timeout} s")
            time.sleep(0.05)


def train_one_thread(cfg: DictConfig, output_dir: str) -> None:
    """``train(cfg)`` into ``output_dir`` on one CPU thread: the body of a forked run (the reduction order
    of CPU kernels depends on the thread count, so runs compared bit for bit must use the same one)."""
    torch.set_num_threads(1)
    setup_globals()  # the ${hydra:...} resolver, registered by Hydra's compose in the process that composed
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = output_dir
    HydraConfig.instance().set_config(cfg)  # as compose_train(..., output_dir) does
    train(cfg)


class DiskFullCheckpointIO(AtomicCheckpointIO):
    """``AtomicCheckpointIO`` on a disk that fills up at the save of ``file`` at global step ``step``:
    part of the file is written, then the write fails with ENOSPC (what a full disk makes ``write`` do)."""

    def __init__(self, file: str, step: int) -> None:
        super().__init__()
        self.file, self.step = file, int(step)
        self._full = False

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        self._full = self._full or (
            Path(path).name == self.file and checkpoint.get("global_step") == self.step
        )
        super().save_checkpoint(checkpoint, path, storage_options)

    def write(self, checkpoint: dict[str, Any], file: IO[bytes]) -> None:
        if not self._full:
            super().write(checkpoint, file)
            return
        file.write(b"PK\x03\x04" + bytes(1000))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
