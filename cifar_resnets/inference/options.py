"""The choices cifar-eval and cifar-predict accept, and the checks of their combinations.

Nothing here imports torch: the command lines parse and check their arguments with this module alone,
so ``--help`` and a wrong argument answer at once, before the heavy modules load.
"""

from __future__ import annotations

from collections.abc import Sequence

from cifar_resnets.errors import ConfigError

# none: one view. flip: the image and its mirror. flip_translate: those two, each also shifted by
# one pixel up, down, left and right (edge pixels replicated): 10 views. Softmax outputs are averaged.
TTA_MODES = ("none", "flip", "flip_translate")
METHODS = ("plain", "tta", "class_specialized", "adaptive", "ensemble")
SPLITS = ("test", "val")


def check_method(
    method: str,
    ckpts: Sequence[object] = (),
    tta: str | None = None,
    csvs: Sequence[object] = (),
    input_path: object | None = None,
) -> None:
    """Refuse the combinations of cifar-predict's arguments that cannot work, in one line each."""
    if method not in METHODS:
        raise ConfigError(f"--method {method!r} is not supported; choose one of {list(METHODS)}")
    if tta is not None and tta not in TTA_MODES:
        raise ConfigError(f"--tta {tta!r} is not supported; choose one of {list(TTA_MODES)}")
    if csvs:
        if method != "ensemble" or ckpts or input_path is not None:
            raise ConfigError("--csv works with --method ensemble alone (no --ckpt or --input)")
        return
    if not ckpts:
        raise ConfigError("give --ckpt (or, for --method ensemble, --csv files)")
    if input_path is None:
        raise ConfigError("give --input (a folder of images, a .npy file or a CIFAR pickle)")
    if len(ckpts) > 1 and method != "ensemble":
        raise ConfigError(f"several --ckpt need --method ensemble, not {method}")
    if method in ("plain", "class_specialized") and tta not in (None, "none"):
        raise ConfigError(f"--method {method} uses one view; use --method tta or adaptive for --tta")
