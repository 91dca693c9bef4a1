"""One ``cifar-reproduce`` per table folder: a ``filelock`` lock held for the whole command.

Two reproductions of one table would plan the same jobs: the second would take the first's running jobs
for failed ones and train finished ones again. The lock is ``<table folder>/.reproduce.lock``; the
holder (host, pid, start time, command) is written beside it in ``.reproduce.holder.json`` (filelock
empties its own file on every try), so a refusal names who holds the folder. The operating system drops
the lock when its process dies, however it dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from cifar_resnets.errors import RunError
from cifar_resnets.provenance import utc_now

LOCK_NAME = ".reproduce.lock"
HOLDER_NAME = ".reproduce.holder.json"


def _holder(table_dir: Path) -> str:
    try:
        holder = json.loads((table_dir / HOLDER_NAME).read_text())
        return f"pid {holder['pid']} on {holder['host']}, started {holder['started']}: {holder['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that left no record"


@contextlib.contextmanager
def table_folder_lock(table_dir: Path) -> Iterator[None]:
    """Hold ``table_dir`` for this process, or raise ``RunError`` naming the holder."""
    lock = FileLock(table_dir / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunError(
            f"table folder {table_dir} is in use by another cifar-reproduce ({_holder(table_dir)}); wait "
            "for it to end, or give this one its own folder (--out ...)"
        ) from None
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": utc_now(),
        "command": shlex.join(["cifar-reproduce", *sys.argv[1:]]),
    }
    try:
        (table_dir / HOLDER_NAME).write_text(json.dumps(holder) + "\n")
        yield
    finally:
        (table_dir / HOLDER_NAME).unlink(missing_ok=True)
        lock.release()
