"""Using trained checkpoints: loading, preprocessing, prediction, TTA, ensembles and evaluation reports.

Nothing here imports Lightning or ``cifar_resnets.training``: the commands that only predict start fast.
The Python API is importable from here: ``load_model`` (a checkpoint, an export bundle or a published net
``pretrained:<source>/<net>``), ``classify`` (top-k classes of image files), ``predict_images`` and
``predict_probs`` (probabilities); each loads its module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_SUBMODULE_OF = {
    "classify": "classify",
    "load_model": "checkpoint",
    "predict_images": "predict",
    "predict_probs": "predict",
}

__all__ = sorted(_SUBMODULE_OF)


def __getattr__(name: str) -> Any:
    submodule = _SUBMODULE_OF.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
