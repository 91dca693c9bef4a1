"""Running the GPU check scripts in their CPU smoke mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_gpu_script(
    name: str, out: Path, timeout: float = 900, check: bool = True, **env: str
) -> subprocess.CompletedProcess:
    """Run ``benchmarks/gpu/<name>`` in its CPU smoke mode (GPU_CHECK_TINY=1), results into ``out``; with
    ``check``, asserts it succeeds. PYTHON: the interpreter running the tests, where the suite is
    installed (bash's python3 may lack it)."""
    full_env = {**os.environ, "GPU_CHECK_TINY": "1", "OUT": str(out), "PYTHON": sys.executable, **env}
    full_env.pop("CIFAR_DATA", None)
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu" / name)],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc
