"""What this machine's CPU offers for speed, asked in one place by training and inference alike.

Measured on a 2-core AMD EPYC with AVX-512 BF16 (docs/speed.md): ResNet-20 training at batch 128 runs
about 440 img/s in fp32, 560 with channels_last and 830-890 with channels_last under bf16 autocast.
On a CPU without native BF16 instructions bf16 is emulated and no faster, so bf16 is chosen only where
the CPU has them. A thread pool larger than the cores this process may use spins against other work
(one image took 0.21 s on a busy machine with the default pool, 0.009 s with one thread).
"""

from __future__ import annotations

import os

import torch


def cpu_has_native_bf16() -> bool:
    """Whether the CPU runs bf16 matrix kernels natively (x86 AVX-512 BF16 or AMX), not emulated."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity (containers and ``taskset`` narrow it), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def set_cpu_threads(concurrent: int = 1) -> int:
    """Shrink torch's intra-op pool to this process's share of the usable cores, and return its size.

    ``concurrent``: how many such processes or requests share the cores (the app's sessions). The pool
    never grows here: a smaller count chosen before (``torch.set_num_threads``, a test pinning one
    thread for bit-exact results) stays, and so does a user's ``OMP_NUM_THREADS``.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    threads = max(1, min(torch.get_num_threads(), usable_cores() // max(1, concurrent)))
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads
