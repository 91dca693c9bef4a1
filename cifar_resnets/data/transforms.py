"""Augmentation pipelines of the CPU DataLoader path, and the one evaluation geometry.

``AugmentSpec`` is shared by both loaders so one config means the same on either path. ``eval_view`` and
``normalize`` are called by every eval loader and inference tool, so one image gets one answer.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from cifar_resnets.data.augment_spec import AugmentSpec


def photometric_transforms(spec: AugmentSpec) -> list[v2.Transform]:
    """Rotation, colour jitter and perspective as v2 transforms (empty when all are off)."""
    out: list[v2.Transform] = []
    if spec.rotation > 0:
        out.append(v2.RandomRotation(spec.rotation))
    if spec.color_jitter > 0 or spec.hue > 0:
        s = spec.color_jitter
        out.append(v2.ColorJitter(brightness=s, contrast=s, saturation=s, hue=spec.hue))
    if spec.perspective > 0:
        out.append(v2.RandomPerspective(spec.perspective, p=spec.perspective_p))
    return out


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
    steps += photometric_transforms(spec)
    steps += _resize_steps(resize_to)
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


CIFAR_SIZE = 32  # the side of a CIFAR image


def resize_uint8(images: torch.Tensor, size: int | Sequence[int], antialias: bool) -> torch.Tensor:
    """Bilinear resize of uint8 images [..., H, W] (``size``: an int sets the shorter side), to uint8.

    Computed in float32 and rounded once, on whatever device the images are: torchvision's uint8
    kernel (CPU) and its float path (CUDA) round up to one level apart, which would make the CPU
    DataLoader and the GPU-resident loader feed the same image differently.
    """
    out = TF.resize(images.float(), size, interpolation=v2.InterpolationMode.BILINEAR, antialias=antialias)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def to_input_size(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """uint8 images to ``size`` x ``size`` as the training loaders resize after crop/flip (bilinear, no
    antialias); unchanged when ``size`` is None or already their size."""
    if size is None or tuple(images.shape[-2:]) == (size, size):
        return images
    return resize_uint8(images, [size, size], antialias=False)


def eval_view(images: torch.Tensor, image_size: int, resize_size: int | None = None) -> torch.Tensor:
    """uint8 images [..., 3, H, W] -> uint8 [..., 3, image_size, image_size]: what a net is fed at evaluation.

    CIFAR-style nets (``resize_size`` None) were trained on 32x32 images, resized to ``image_size`` by
    ``to_input_size`` when that differs: an image of another size is first brought to 32x32
    (antialiased, as a photo shrunk to CIFAR's size, aspect ratio not kept), then resized the same way.
    ImageNet-style nets get the standard evaluation crop: the shorter side to ``resize_size``
    (antialiased), then the centre ``image_size`` square.
    """
    if resize_size is not None:
        return TF.center_crop(resize_uint8(images, resize_size, antialias=True), [image_size, image_size])
    if tuple(images.shape[-2:]) != (CIFAR_SIZE, CIFAR_SIZE):
        images = resize_uint8(images, [CIFAR_SIZE, CIFAR_SIZE], antialias=True)
    return to_input_size(images, image_size)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 images -> float32 scaled to [0, 1] and normalised with the per-channel mean/std."""
    return TF.normalize(TF.to_dtype(images, torch.float32, scale=True), list(mean), list(std))


def eval_transform(
    mean: Sequence[float], std: Sequence[float], image_size: int = CIFAR_SIZE, resize_size: int | None = None
) -> v2.Compose:
    """Per-sample evaluation pipeline (a PIL image or uint8 tensor -> normalised float32): ``eval_view``
    then ``normalize``, nothing random."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Lambda(functools.partial(eval_view, image_size=image_size, resize_size=resize_size)),
            v2.Lambda(functools.partial(normalize, mean=tuple(mean), std=tuple(std))),
        ]
    )


def imagenet_train_transform(spec: AugmentSpec, mean, std, image_size: int = 224):
    """Standard ImageNet training pipeline for PIL images: RandomResizedCrop + flip (+ photometric)."""
    steps: list[v2.Transform] = [v2.ToImage(), v2.RandomResizedCrop(image_size, antialias=True)]
    if spec.flip:
        steps.append(v2.RandomHorizontalFlip())
    steps += photometric_transforms(spec)
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


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
