"""Imports go one way: the import-linter contracts of pyproject.toml hold for the whole package.

cli, then app / reproduce / bench, then training, inference, reporting, config, and data / models at
the bottom; inference and reporting never reach Lightning, models neither Lightning nor Hydra. The
check reads every import statement (function-level ones included), so a lazy import counts too.
"""

from __future__ import annotations

import subprocess
import sys

from train_helpers import REPO


def test_import_contracts_hold() -> None:
    # A subprocess: import-linter builds its graph from the source files of the package it imports.
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True))",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout and proc.stdout.count("KEPT") >= 3
