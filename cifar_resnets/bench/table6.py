"""He et al. 2016 Table 6 wall time, estimated from measured training images/s at batch 128.

A depth-d CIFAR net costs ``a + b d`` per image with ``a, b >= 0``, so a deeper net costs at least as
much as a shallower one and at most ``d / d0`` times as much. The estimate keeps to those bounds (running
maximum between measured depths, flat below, scaled above), so it never falls with depth: a
least-squares line through noisy timings can, and can even extrapolate Table 6 to a negative time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from cifar_resnets.bench.results import PATHS, Result

TABLE6_DEPTHS = (20, 32, 44, 56, 110, 20, 32, 44, 56)
TABLE6_STEPS, TABLE6_BATCH = 64_000, 128


def cifar_depth(model: str) -> int | None:
    """The depth of a CIFAR ResNet/plain net config name (``resnet56`` -> 56), None for other nets."""
    digits = "".join(ch for ch in model if ch.isdigit())
    return int(digits) if digits and model.startswith(("resnet", "plain")) and int(digits) % 6 == 2 else None


def _monotone(measured: dict[int, float]) -> tuple[list[int], list[float]]:
    """Measured depths in order and the running maximum of their seconds per image."""
    if not measured:
        raise ValueError("no measured depth to estimate Table 6 from")
    bad = {d: s for d, s in measured.items() if not (math.isfinite(s) and s > 0) or d < 1}
    if bad:
        raise ValueError(f"seconds per image must be finite and > 0 at depths >= 1, got {bad}")
    depths = sorted(measured)
    return depths, list(np.maximum.accumulate([measured[d] for d in depths]))


def seconds_per_image_in_depth(measured: dict[int, float]) -> Callable[[int], float]:
    """s(d), seconds per training image for a CIFAR depth d, from measured seconds per image by depth:
    non-decreasing in d and at least every measured value (the module docstring has the model)."""
    depths, values = _monotone(measured)

    def s(d: int) -> float:
        if d >= depths[-1]:
            return values[-1] * (d / depths[-1])  # d / d_max >= 1 first: never below values[-1]
        return float(np.interp(d, depths, values))  # the shallowest value below the shallowest depth

    return s


def table6_seconds(seconds_per_image: dict[int, float]) -> tuple[float, str]:
    """Estimated wall time of He et al. Table 6 (nine runs x 64k steps x batch 128), and how it was
    costed, from measured seconds per training image at batch 128 keyed by CIFAR depth.

    T = 64000 x 128 x sum over the nine depths of s(d) (``seconds_per_image_in_depth``); plain nets are
    costed as residual nets of the same depth. Compilation and evaluation excluded.
    """
    s = seconds_per_image_in_depth(seconds_per_image)
    seconds = TABLE6_STEPS * TABLE6_BATCH * sum(s(d) for d in TABLE6_DEPTHS)
    depths, values = _monotone(seconds_per_image)
    how = [f"measured depths {','.join(map(str, depths))}"]
    raised = [d for d, v in zip(depths, values, strict=True) if v > seconds_per_image[d]]
    if raised:
        how.append(f"depth {','.join(map(str, raised))} measured faster than a shallower net: costed as it")
    deeper = sorted({d for d in TABLE6_DEPTHS if d > depths[-1]})
    if deeper:
        how.append(f"depth {','.join(map(str, deeper))} costed proportionally to depth {depths[-1]}")
    shallower = sorted({d for d in TABLE6_DEPTHS if d < depths[0]})
    if shallower:
        how.append(f"depth {','.join(map(str, shallower))} costed as depth {depths[0]}")
    return seconds, "; ".join(how)


def time_to_table(results: list[Result]) -> dict[str, Any]:
    """``table6_seconds`` for each path measured at batch 128 with a CIFAR depth (repeated measurements
    of one depth are averaged)."""
    out: dict[str, Any] = {}
    for path in dict.fromkeys([*PATHS, *(r.path for r in results)]):
        measured: dict[int, list[float]] = {}
        for r in results:
            depth = cifar_depth(r.model)
            if r.path == path and r.batch_size == TABLE6_BATCH and depth:
                measured.setdefault(depth, []).append(1.0 / r.images_per_second)
        if not measured:
            continue
        seconds, how = table6_seconds({d: float(np.mean(s)) for d, s in measured.items()})
        out[path] = {"seconds": round(seconds, 1), "minutes": round(seconds / 60, 1), "costed": how}
    return out
