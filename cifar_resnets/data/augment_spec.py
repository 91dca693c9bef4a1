"""The ``augment`` config group as a typed spec with the valid range of each key, without torch.

Both loaders build their augmentations from ``AugmentSpec`` (``transforms.py`` on the CPU path,
``gpu_loader.py`` on the GPU), and ``cifar_resnets.config.checks`` reads ``AUGMENT_RANGES`` to refuse
a bad ``augment.*`` value before a run starts: one table of ranges for both, in a module that the
config checks can import without loading torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from cifar_resnets.errors import ConfigError

# Valid range of each numeric key, both ends included; None = no upper bound.
AUGMENT_RANGES: dict[str, tuple[float, float | None]] = {
    "crop_padding": (0, None),
    "rotation": (0, None),
    "color_jitter": (0, None),
    "hue": (0, 0.5),  # ColorJitter's hue limit
    "perspective": (0, 1),
    "perspective_p": (0, 1),
    "mixup_alpha": (0, None),
    "mixup_prob": (0, 1),
    "cutmix_alpha": (0, None),
    "cutmix_prob": (0, 1),
}


@dataclasses.dataclass(frozen=True)
class AugmentSpec:
    """Training augmentations; every field defaults to "off" except crop and flip (the He et al. recipe)."""

    crop_padding: int = 4  # reflect-pad by this many pixels, then random crop back to size; 0 = off
    flip: bool = True  # random horizontal flip with p=0.5
    rotation: float = 0.0  # RandomRotation within +-degrees; 0 = off
    color_jitter: float = 0.0  # ColorJitter brightness/contrast/saturation strength; 0 = off
    hue: float = 0.0  # ColorJitter hue strength (<= 0.5); 0 = off
    perspective: float = 0.0  # RandomPerspective distortion scale; 0 = off
    perspective_p: float = 0.5  # probability of the perspective transform when it is on
    mixup_alpha: float = 0.0  # Beta(alpha, alpha) for mixup; 0 = off
    mixup_prob: float = 0.0  # probability a batch is mixed up
    cutmix_alpha: float = 0.0  # Beta(alpha, alpha) for cutmix; 0 = off
    cutmix_prob: float = 0.0  # probability a batch is cut-mixed (exclusive with mixup)

    @classmethod
    def kinds(cls) -> dict[str, type]:
        """The type of each key (bool, int or float), as its default has it."""
        return {f.name: type(f.default) for f in dataclasses.fields(cls)}

    @classmethod
    def from_config(cls, augment: Mapping | AugmentSpec | None) -> AugmentSpec:
        """Build from a plain dict (the resolved `augment` config group); None means `standard`."""
        if augment is None:
            return cls()
        if isinstance(augment, AugmentSpec):
            return augment
        kinds = cls.kinds()
        unknown = sorted(set(augment) - set(kinds))
        if unknown:
            raise ConfigError(f"unknown augment keys {unknown}; valid keys: {sorted(kinds)}")
        spec = cls(**{k: _coerce(k, v, kinds[k]) for k, v in augment.items()})
        spec.validate()
        return spec

    def validate(self) -> None:
        for key, (low, high) in AUGMENT_RANGES.items():
            value = getattr(self, key)
            if not (math.isfinite(value) and low <= value and (high is None or value <= high)):
                where = f">= {low:g}" if high is None else f"in [{low:g}, {high:g}]"
                raise ConfigError(f"augment.{key}={value} must be {where}")
        mixup, cutmix = self.effective_mix_probs
        if mixup + cutmix > 1 + 1e-9:
            raise ConfigError(
                f"augment.mixup_prob={self.mixup_prob} + augment.cutmix_prob={self.cutmix_prob} must be "
                "<= 1 (one of them per batch)"
            )

    @property
    def effective_mix_probs(self) -> tuple[float, float]:
        """(mixup, cutmix) probabilities per batch, 0 where the alpha turns it off."""
        return (
            self.mixup_prob if self.mixup_alpha > 0 else 0.0,
            self.cutmix_prob if self.cutmix_alpha > 0 else 0.0,
        )

    @property
    def mixes(self) -> bool:
        """True when training batches carry soft targets."""
        return sum(self.effective_mix_probs) > 0


def _coerce(key: str, value, kind: type):
    """Check one config value against the field type (YAML gives bool/int/float; no silent rounding)."""
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok:
        raise ConfigError(f"augment.{key}={value!r} must be a {kind.__name__}")
    return kind(value)
