"""Augmentation settings and the torchvision.transforms.v2 pipelines of the CPU DataLoader path.

`AugmentSpec` is the typed form of the `augment` config group, shared by both loaders so that one
config means the same thing on the CPU path (per-sample v2 transforms) and the GPU-resident path
(batched ops in `gpu_loader.py`). Mixup/CutMix on the CPU path are torchvision's v2.MixUp/v2.CutMix
applied to the collated batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from cifar_resnets.errors import UserError


class AugmentConfigError(UserError, ValueError):
    """An `augment.*` value is unknown or out of range."""


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
    def from_config(cls, augment: Mapping | AugmentSpec | None) -> AugmentSpec:
        """Build from a plain dict (the resolved `augment` config group); None means `standard`."""
        if augment is None:
            return cls()
        if isinstance(augment, AugmentSpec):
            return augment
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(augment) - names)
        if unknown:
            raise AugmentConfigError(f"unknown augment keys {unknown}; valid keys: {sorted(names)}")
        spec = cls(**{k: _coerce(k, v, type(getattr(cls(), k))) for k, v in augment.items()})
        spec.validate()
        return spec

    def validate(self) -> None:
        checks = [
            (self.crop_padding >= 0, "augment.crop_padding must be >= 0"),
            (self.rotation >= 0, "augment.rotation must be >= 0 (degrees)"),
            (self.color_jitter >= 0, "augment.color_jitter must be >= 0"),
            (0 <= self.hue <= 0.5, "augment.hue must be in [0, 0.5]"),
            (0 <= self.perspective <= 1, "augment.perspective must be in [0, 1]"),
            (0 <= self.perspective_p <= 1, "augment.perspective_p must be in [0, 1]"),
            (self.mixup_alpha >= 0 and self.cutmix_alpha >= 0, "augment.*_alpha must be >= 0"),
            (0 <= self.mixup_prob <= 1 and 0 <= self.cutmix_prob <= 1, "augment.*_prob must be in [0, 1]"),
            (self.effective_mix_probs[0] + self.effective_mix_probs[1] <= 1 + 1e-9,
             "augment.mixup_prob + augment.cutmix_prob must be <= 1 (one of them per batch)"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise AugmentConfigError(message)

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

    def photometric_transforms(self) -> list[v2.Transform]:
        """Rotation, colour jitter and perspective as v2 transforms (empty when all are off)."""
        out: list[v2.Transform] = []
        if self.rotation > 0:
            out.append(v2.RandomRotation(self.rotation))
        if self.color_jitter > 0 or self.hue > 0:
            s = self.color_jitter
            out.append(v2.ColorJitter(brightness=s, contrast=s, saturation=s, hue=self.hue))
        if self.perspective > 0:
            out.append(v2.RandomPerspective(self.perspective, p=self.perspective_p))
        return out


def _coerce(key: str, value, kind: type):
    """Check one config value against the field type (YAML gives bool/int/float; no silent rounding)."""
    ok = (
        isinstance(value, bool)
        if kind is bool
        else (
            isinstance(value, int) and not isinstance(value, bool)
            if kind is int
            else isinstance(value, (int, float)) and not isinstance(value, bool)
        )
    )
    if not ok:
        raise AugmentConfigError(f"augment.{key}={value!r} must be a {kind.__name__}")
    return kind(value)


def _resize_steps(resize_to: int | None) -> list[v2.Transform]:
    """Bilinear resize to a square size without antialiasing, as the GPU loader's F.interpolate does."""
    if resize_to is None:
        return []
    return [v2.Resize((resize_to, resize_to), interpolation=v2.InterpolationMode.BILINEAR, antialias=False)]


def cifar_train_transform(
    spec: AugmentSpec,
    mean: Sequence[float],
    std: Sequence[float],
    size: int = 32,
    resize_to: int | None = None,
):
    """Per-sample training pipeline for a uint8 [3, H, W] tensor image -> normalized float32.

    `resize_to` (e.g. 224 for ImageNet-pretrained nets) resizes after the crop, flip and photometric
    steps, so those stay as cheap as at 32x32.
    """
    steps: list[v2.Transform] = []
    if spec.crop_padding > 0:
        steps.append(v2.RandomCrop(size, padding=spec.crop_padding, padding_mode="reflect"))
    if spec.flip:
        steps.append(v2.RandomHorizontalFlip())
    steps += spec.photometric_transforms()
    steps += _resize_steps(resize_to)
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


def eval_transform(mean: Sequence[float], std: Sequence[float], resize_to: int | None = None):
    """Evaluation pipeline: optional resize, scale to [0, 1] and normalize, nothing random."""
    steps = _resize_steps(resize_to)
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])


def imagenet_train_transform(spec: AugmentSpec, mean, std, image_size: int = 224):
    """Standard ImageNet training pipeline for PIL images: RandomResizedCrop + flip (+ photometric)."""
    steps: list[v2.Transform] = [v2.ToImage(), v2.RandomResizedCrop(image_size, antialias=True)]
    if spec.flip:
        steps.append(v2.RandomHorizontalFlip())
    steps += spec.photometric_transforms()
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


def imagenet_eval_transform(mean, std, image_size: int = 224, resize_size: int = 256):
    """Standard ImageNet evaluation pipeline: Resize(shorter side) + CenterCrop."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(resize_size, antialias=True),
            v2.CenterCrop(image_size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )


class MixCollate:
    """Collate function for the CPU path: default collate, then v2.MixUp or v2.CutMix on the batch.

    Per batch one of {mixup, cutmix, nothing} is picked with the configured probabilities; the labels
    always come out as float [B, num_classes] rows summing to 1, so the loss sees one target shape.
    Random draws use the (per worker, Lightning-seeded) torch RNG, as torchvision's transforms do.
    """

    def __init__(self, spec: AugmentSpec, num_classes: int):
        self.num_classes = num_classes
        self.p_mixup, self.p_cutmix = spec.effective_mix_probs
        self.mixup = v2.MixUp(alpha=spec.mixup_alpha, num_classes=num_classes) if self.p_mixup > 0 else None
        self.cutmix = (
            v2.CutMix(alpha=spec.cutmix_alpha, num_classes=num_classes) if self.p_cutmix > 0 else None
        )

    def __call__(self, samples):
        images, labels = torch.utils.data.default_collate(samples)
        u = float(torch.rand(()))
        if self.mixup is not None and u < self.p_mixup:
            return self.mixup(images, labels)
        if self.cutmix is not None and u < self.p_mixup + self.p_cutmix:
            return self.cutmix(images, labels)
        return images, F.one_hot(labels, self.num_classes).float()
