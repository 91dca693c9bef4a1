"""Using trained checkpoints: loading, preprocessing, prediction, TTA, ensembles and evaluation reports.

Nothing here imports Lightning or ``cifar_resnets.training``: the commands that only predict start fast.
The Python API is importable from here: ``load_model`` (a checkpoint, an export bundle or a published net
``pretrained:<source>/<net>``), ``classify`` (top-k classes of image files), ``predict_images`` and
``predict_probs`` (probabilities); each loads its module on first use.
"""

from __future__ import annotations

from cifar_resnets.lazy import lazy_exports

_SUBMODULE_OF = {
    "classify": "classify",
    "load_model": "checkpoint",
    "predict_images": "predict",
    "predict_probs": "predict",
}

__all__ = sorted(_SUBMODULE_OF)


__getattr__ = lazy_exports(__name__, _SUBMODULE_OF)
