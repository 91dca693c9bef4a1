"""Crash-safe checkpoint files: a kill at any moment leaves either the old or the new checkpoint.

Lightning's ``_atomic_save`` stages through ``$TMPDIR``, a copy across filesystems that a kill can leave
truncated (https://github.com/Lightning-AI/pytorch-lightning/issues/19970). Here the file is written and
fsynced in its own folder, renamed with ``os.replace``, and the folder fsynced.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from cifar_resnets.errors import find_cause

# Temporary files start with this; no "last" or ".ckpt" in the name, so Lightning's
# ``ckpt_path="last"`` search and checkpoint globbing never pick up a half-written file.
TEMP_PREFIX = ".partial-"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_torch_save(
    obj: Any, path: str | Path, write: Callable[[Any, IO[bytes]], None] = torch.save
) -> None:
    """``write(obj, file)`` (``torch.save``) that replaces ``path`` in one step: a temporary file in the
    same folder, fsync, rename, fsync of the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TEMP_PREFIX}{path.name}.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            write(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        cause = find_cause(err, OSError)
        if cause is not None and cause.filename is None:
            # torch's zip writer reports a full disk as "unexpected pos" (a RuntimeError); the OSError it
            # met is its context. Raised again with the checkpoint's path, so the error can name it.
            raise OSError(cause.errno, cause.strerror, str(path)) from err
        raise
    _fsync_dir(path.parent)


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
        self._cleaned: set[Path] = set()

    def write(self, checkpoint: dict[str, Any], file: IO[bytes]) -> None:
        """Serialise ``checkpoint`` into the open temporary file."""
        torch.save(checkpoint, file)

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
        atomic_torch_save(checkpoint, path, write=self.write)
