"""What produced a result: versions, device, code commit, command line and times, in one record.

A number that differs from a published one is explained first by what ran it. metrics.json, the export
card and cifar-reproduce's report carry it. No Lightning import, so the export side can use it; the
commit is null (never an error) when installed from a wheel or git is absent.
"""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("torch", "torchvision", "lightning")


def utc_now() -> str:
    """The current time, UTC, ISO 8601 to the second (``2026-12-07T17:45:03+00:00``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name(device: torch.device | str | None = None) -> str:
    """The GPU model for a CUDA device, else the CPU model and the threads torch uses."""
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return f"{_cpu_model()}, {torch.get_num_threads()} threads"


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout holding this package, or (None, None) outside one."""
    # The package's own files must be tracked: a wheel installed into a venv inside some checkout is not
    # that checkout's code.
    if _git("ls-files", "--error-unmatch", Path(__file__).name) is None:
        return None, None
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return commit, (bool(status) if status is not None and commit else None)


def provenance(device: torch.device | str | None = None, started: str | None = None) -> dict[str, Any]:
    """The record: python, torch, torchvision, lightning, CUDA and cuDNN versions (null without CUDA),
    the device's name, git commit and dirty flag, the command line, and the start time (UTC)."""
    on_cuda = device is not None and torch.device(device).type == "cuda" and torch.cuda.is_available()
    commit, dirty = git_state()
    return {
        "python": platform.python_version(),
        **{package: _version(package) for package in PACKAGES},
        "cuda": torch.version.cuda if on_cuda else None,
        "cudnn": torch.backends.cudnn.version() if on_cuda else None,
        "device_name": device_name(device),
        "cpu_threads": torch.get_num_threads(),
        "hostname": platform.node(),
        "git_commit": commit,
        "git_dirty": dirty,
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else None,
        "started": started or utc_now(),
    }
