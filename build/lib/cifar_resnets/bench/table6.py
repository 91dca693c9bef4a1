"""He et al. 2016 Table 6 wall time, extrapolated from measured training images/s at batch 128.

Table 6 is nine runs (ResNet-20/32/44/56/110 and plain-20/32/44/56) of 64k iterations at batch 128.
Measuring all nine would take as long as running them; a step's cost grows close to linearly in depth
(the same three stages, more blocks each), so two measured depths cost the rest.
"""

from __future__ import annotations

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


def seconds_per_image_in_depth(measured: dict[int, float]) -> Callable[[int], float]:
    """s(d), seconds per training image at batch 128 for a CIFAR depth d, from measured depths: the
    measured value at every depth when there is one, else the least-squares line s(d) = a + b d."""
    if not measured:
        raise ValueError("no measured depth to extrapolate Table 6 from")
    depths = sorted(measured)
    if len(depths) == 1:
        return lambda d: measured[depths[0]]
    b, a = np.polyfit(depths, [measured[d] for d in depths], 1)
    return lambda d: float(a + b * d)


def table6_seconds(seconds_per_image: dict[int, float]) -> tuple[float, str]:
    """Extrapolated wall time of He et al. Table 6 (nine runs x 64k steps x batch 128), and its formula,
    from measured seconds per training image at batch 128, keyed by CIFAR depth.

    T = 64000 x 128 x sum over the nine depths of s(d) (``seconds_per_image_in_depth``): with one
    measured depth every run is costed as that depth; plain nets are costed as residual nets of the same
    depth. Compilation and evaluation excluded.
    """
    s = seconds_per_image_in_depth(seconds_per_image)
    seconds = TABLE6_STEPS * TABLE6_BATCH * sum(s(d) for d in TABLE6_DEPTHS)
    if len(seconds_per_image) == 1:
        (depth,) = seconds_per_image
        return seconds, f"9 x 64000 x 128 / ips(depth {depth}) (every run costed as the measured depth)"
    depth_list = ",".join(str(d) for d in TABLE6_DEPTHS)
    return seconds, f"64000 x 128 x sum_d (a + b d) over depths {depth_list}; 1/ips fitted in depth"


def time_to_table(results: list[Result]) -> dict[str, Any]:
    """``table6_seconds`` for each path measured at batch 128 with a CIFAR depth (repeated measurements
    of one depth are averaged)."""
    out: dict[str, Any] = {}
    for path in PATHS:
        measured: dict[int, list[float]] = {}
        for r in results:
            depth = cifar_depth(r.model)
            if r.path == path and r.batch_size == TABLE6_BATCH and depth:
                measured.setdefault(depth, []).append(1.0 / r.images_per_second)
        if not measured:
            continue
        seconds, formula = table6_seconds({d: float(np.mean(s)) for d, s in measured.items()})
        out[path] = {"seconds": round(seconds, 1), "minutes": round(seconds / 60, 1), "formula": formula}
    return out
