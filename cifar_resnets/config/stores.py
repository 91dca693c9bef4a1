"""Whether a store a run will write to takes writes: found by trying, without changing anything.

The MLflow logger opens its tracking store only when the run has begun: a damaged or read-only SQLite
file then fails in a long traceback after the run folder was made. These checks open the store as
MLflow would (SQLite's own integrity check, a write transaction rolled back at once) before any work.
Standard library only: the config checks must answer before torch is loaded.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path
from urllib.request import pathname2url


def folder_problem(folder: Path) -> str | None:
    """Why no file can be made in ``folder`` (or the nearest folder above it that exists), or None."""
    ancestor = folder.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as err:
        return f"{ancestor} takes no new files ({err.strerror or err})"
    return None


def sqlite_store_problem(path: Path) -> str | None:
    """Why the SQLite database at ``path`` cannot be written (a new one: why it cannot be made), or None."""
    if not path.exists():
        return folder_problem(path.parent)
    if not path.is_file():
        return f"{path} is not a file"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"{path} is read-only"
    problem = folder_problem(path.parent)  # SQLite writes its journal beside the database
    if problem is not None:
        return problem
    try:
        connection = sqlite3.connect(
            f"file:{pathname2url(str(path.absolute()))}?mode=rw", uri=True, timeout=1
        )
    except sqlite3.Error as err:
        return f"{path} cannot be opened ({err})"
    try:
        result = connection.execute("PRAGMA quick_check").fetchall()
        if result != [("ok",)]:
            return f"{path} is a damaged SQLite database ({result[0][0]})"
        connection.execute("BEGIN IMMEDIATE")  # takes the write lock, writes nothing
        connection.rollback()
    except sqlite3.OperationalError as err:
        if "locked" in str(err):  # another run is writing to it: a busy store, not a broken one
            return None
        return f"{path} is not a usable SQLite database ({err})"
    except sqlite3.DatabaseError as err:  # "file is not a database": damaged, or another kind of file
        return f"{path} is not a usable SQLite database ({err})"
    finally:
        connection.close()
    return None
