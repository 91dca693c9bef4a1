"""The device a measurement runs on, and the clock and memory readings around it.

Every timed path reads the clock only after ``sync()``: CUDA work is asynchronous, and a clock read
while kernels are still queued would time the host's launches, not the training.
"""

from __future__ import annotations

import torch


def training_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def reset_peak_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mib() -> float | None:
    """Peak device memory since ``reset_peak_memory``; None on the CPU, which has no such counter."""
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU ({torch.get_num_threads()} threads)"
