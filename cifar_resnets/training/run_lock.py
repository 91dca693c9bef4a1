"""One run per folder: an exclusive lock on the run folder while a run writes into it.

Two runs in one folder would overwrite each other's checkpoints. A ``fcntl.flock`` is released by the
kernel however its process dies, so a crashed run's lock is free; a pid file could not tell a dead
holder from a recycled pid. cifar-train takes it in a Hydra callback, before Hydra writes anything;
sweeps lock their sweep folder the same way. On NFS without shared locks it protects one host only.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from cifar_resnets.config.checks import command_name
from cifar_resnets.errors import RunError, UserError

log = logging.getLogger(__name__)

LOCK_NAME = ".run.lock"
SWEEP_LOCK_NAME = ".sweep.lock"
# Environment variables through which launchers (Lightning, torchrun, SLURM, jsrun) give a process its
# rank; a process with a non-zero one is not the run's first.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


# Lock files this process holds: path -> [lock file descriptor, nesting depth].
_held: dict[Path, list[int]] = {}


def holds_run(folder: str | Path) -> bool:
    """Whether ``folder`` holds a run's own files (``metrics.json``, ``config.yaml``, a checkpoint).

    Hydra's ``.hydra/``, the log file and the lock are not a run's: Hydra writes them into every folder.
    """
    folder = Path(folder)
    return (
        (folder / "metrics.json").exists()
        or (folder / "config.yaml").exists()
        or any((folder / "checkpoints").glob("*.ckpt"))
    )


def hydra_record_subdir(output_dir: str) -> str | None:
    """``hydra.output_subdir``: ``.hydra`` for a new run; None (Hydra writes no record) for a folder that
    holds a run already, whose ``.hydra/`` keeps the command that made it (a sweep job that would be
    refused, or a continuation, must not rewrite it)."""
    return None if holds_run(output_dir) else ".hydra"


# conf/hydra/default.yaml's hydra.output_subdir; registered here, the module Hydra loads for the callback
# below before any job starts (in cifar-train and cifar-search alike).
OmegaConf.register_new_resolver("cifar_hydra_record", hydra_record_subdir, replace=True)


def first_process() -> bool:
    """True unless a launcher gave this process a non-zero rank (only the first one locks and decides)."""
    return all(os.environ.get(key, "0") == "0" for key in RANK_VARIABLES)


def _read_holder(fd: int) -> dict[str, Any] | None:
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    if not text:
        return None
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {"text": text}
    return holder if isinstance(holder, dict) else {"text": text}


def _describe(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "a process that left no record"
    if "pid" not in holder:
        return repr(holder.get("text"))
    return f"pid {holder['pid']} on {holder.get('host', '?')}, started {holder.get('started', '?')}"


def acquire(folder: str | Path, name: str = LOCK_NAME) -> None:
    """Lock ``folder`` (created if missing) for this process, or raise ``RunError``."""
    if not first_process():
        return
    lock = Path(folder).absolute() / name
    if lock in _held:
        _held[lock][1] += 1
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        if name == SWEEP_LOCK_NAME:
            raise RunError(
                f"sweep folder {lock.parent} is in use by another sweep ({_describe(holder)}); wait for it "
                "to end, or give this sweep its own folder (hydra.sweep.dir=...)"
            ) from None
        raise RunError(
            f"run folder {lock.parent} is in use by another run ({_describe(holder)}); wait for it to end, "
            "or give this run its own folder (hydra.run.dir=...)"
        ) from None
    previous = _read_holder(fd)
    if previous is not None:
        log.warning(
            "%s: taking over the lock of %s, which is no longer running (killed?)",
            lock.parent,
            _describe(previous),
        )
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(sys.argv),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    _held[lock] = [fd, 1]


def release(folder: str | Path, name: str = LOCK_NAME) -> None:
    """Undo one ``acquire``; the last one empties the record (a clean end, no takeover warning) and
    unlocks."""
    lock = Path(folder).absolute() / name
    held = _held.get(lock)
    if held is None:
        return
    held[1] -= 1
    if held[1] > 0:
        return
    fd = held[0]
    del _held[lock]
    try:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def busy_holder(folder: str | Path) -> str | None:
    """Who holds ``folder``'s run lock, when another live process does; None when it is free."""
    lock = Path(folder).absolute() / LOCK_NAME
    if lock in _held or not lock.is_file():
        return None
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _describe(_read_holder(fd))
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@atexit.register
def _release_all() -> None:
    # A run that ends by SystemExit (SIGTERM, a sweep stopping) leaves no record: only a process that
    # could not run this (SIGKILL, a crash of the interpreter) is taken over with a warning.
    for lock in list(_held):
        _held[lock][1] = 1
        release(lock.parent, lock.name)


@contextlib.contextmanager
def run_folder_lock(folder: str | Path) -> Iterator[None]:
    """Hold the lock on ``folder`` for the block (see ``acquire``)."""
    acquire(folder)
    try:
        yield
    finally:
        release(folder)


class RunFolderLockCallback(Callback):
    """Locks a single run's folder before Hydra writes into it and decides whether the run may start
    there (``run_start``); locks a sweep's folder for the whole sweep. A refusal is one line."""

    @staticmethod
    def _folder(config: DictConfig) -> str:
        return os.path.abspath(str(config.hydra.run.dir))  # what Hydra's run_job makes the output folder

    @staticmethod
    def _refuse(config: DictConfig, err: UserError) -> None:
        print(f"{command_name(config)}: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        folder = self._folder(config)
        try:
            acquire(folder)
        except RunError as err:
            self._refuse(config, err)
        # Loaded here, when the run goes ahead: the checks read checkpoints (torch, Lightning).
        from cifar_resnets.errors import find_user_error
        from cifar_resnets.training.run_folder import RunFolder
        from cifar_resnets.training.run_start import decide_start, finished_message

        run_folder = RunFolder(folder)
        try:
            start = decide_start(config, run_folder)
        except Exception as err:
            user_error = find_user_error(err)
            if user_error is None:
                raise
            self._refuse(config, user_error)
        if start.finished:
            print(f"{command_name(config)}: {finished_message(run_folder, start.existing)}", file=sys.stderr)
            sys.exit(0)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        release(self._folder(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            acquire(os.path.abspath(str(config.hydra.sweep.dir)), SWEEP_LOCK_NAME)
        except RunError as err:
            self._refuse(config, err)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        release(os.path.abspath(str(config.hydra.sweep.dir)), SWEEP_LOCK_NAME)
