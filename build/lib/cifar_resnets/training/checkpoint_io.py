"""Crash-safe checkpoint files: a kill at any moment leaves either the old or the new checkpoint.

Lightning's own ``_atomic_save`` stages the file through fsspec in ``$TMPDIR`` and moves it into
place, which across filesystems is a copy plus delete: a kill mid-copy leaves a truncated
``last.ckpt`` (PITFALLS D7). ``AtomicCheckpointIO`` writes a temporary file in the checkpoint's
own folder, flushes and fsyncs it, renames it over the target with ``os.replace`` (atomic on
POSIX within one filesystem) and fsyncs the folder so the rename itself survives a power loss.

Two environment variables exist for the crash tests only (they make the process kill itself, so
the tests can hit exact moments instead of racing a timer); they are read at save time and are
never set in normal use:

- ``CIFAR_RESNETS_KILL_DURING_SAVE=N``: SIGKILL halfway through writing the N-th checkpoint;
- ``CIFAR_RESNETS_KILL_AFTER_SAVE=N``: SIGKILL right after the N-th checkpoint is in place;
- ``CIFAR_RESNETS_TERM_AFTER_SAVE=N``: SIGTERM (handled like a scheduler's) after the N-th one.
"""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

KILL_DURING_SAVE_ENV = "CIFAR_RESNETS_KILL_DURING_SAVE"
KILL_AFTER_SAVE_ENV = "CIFAR_RESNETS_KILL_AFTER_SAVE"
TERM_AFTER_SAVE_ENV = "CIFAR_RESNETS_TERM_AFTER_SAVE"
# Temporary files start with this; no "last" or ".ckpt" in the name, so Lightning's
# ``ckpt_path="last"`` search and checkpoint globbing never pick up a half-written file.
TEMP_PREFIX = ".partial-"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _kill_hook(env: str, count: int) -> bool:
    value = os.environ.get(env)
    return value is not None and value.strip() == str(count)


def atomic_torch_save(obj: Any, path: str | Path, _count: int = 0) -> None:
    """``torch.save`` that replaces ``path`` in one step: temp file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TEMP_PREFIX}{path.name}.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            if _kill_hook(KILL_DURING_SAVE_ENV, _count):
                buffer = io.BytesIO()
                torch.save(obj, buffer)
                data = buffer.getvalue()
                f.write(data[: len(data) // 2])
                f.flush()
                os.fsync(f.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    if _kill_hook(KILL_AFTER_SAVE_ENV, _count):
        os.kill(os.getpid(), signal.SIGKILL)
    if _kill_hook(TERM_AFTER_SAVE_ENV, _count):
        os.kill(os.getpid(), signal.SIGTERM)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(folder: str | Path) -> None:
    """Delete temporary files left by processes killed while writing a checkpoint (not live writers')."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for tmp in folder.glob(f"{TEMP_PREFIX}*"):
        pid = tmp.suffix.lstrip(".")
        if not pid.isdigit() or (int(pid) != os.getpid() and not _alive(int(pid))):
            tmp.unlink(missing_ok=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning ``CheckpointIO`` whose saves are atomic on local disks (loading is unchanged).

    Remote URLs (``s3://`` and the like) keep Lightning's fsspec path, which writes objects whole.
    """

    def __init__(self) -> None:
        super().__init__()
        self.saves = 0
        self._cleaned: set[Path] = set()

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        folder = Path(path).parent
        if folder not in self._cleaned:
            remove_stale_partials(folder)
            self._cleaned.add(folder)
        self.saves += 1
        atomic_torch_save(checkpoint, path, _count=self.saves)
