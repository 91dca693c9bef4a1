"""What one checkpoint's net is fed: the datamodules' evaluation transform, as an object per checkpoint.

``Preprocess.for_model(model)`` reads the checkpoint's input size, normalisation and dataset style;
``view`` and ``views`` give the uint8 image(s) exactly as the net sees them (``data.transforms.eval_view``),
``batch`` the normalised float batch (``data.transforms.normalize``). The datamodules' evaluation
loaders call the same two functions, so cifar-eval, cifar-predict, the app and cifar-reproduce's
confusion matrices give one image one answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from cifar_resnets.data.transforms import CIFAR_SIZE, eval_view, normalize

# How far an image may be from the size the net was trained on before its answer deserves a warning.
TOO_SMALL = 0.5  # a side below half the training size: the net sees an enlarged blur
# No warning for a large picture: every photo is larger than a CIFAR image, and the view the net
# sees (shown by the app) says more about lost details than a warning on each photo would.
TOO_NARROW = 2  # CIFAR-style views squash the picture to a square


@dataclass(frozen=True)
class Preprocess:
    """How one checkpoint's net takes its input; hashable, so views can be cached per geometry."""

    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize_size: int | None = None  # ImageNet-style: shorter side, then centre crop; None: CIFAR-style

    @classmethod
    def for_model(cls, model: Any) -> Preprocess:
        """From a ``checkpoint.LoadedModel``."""
        return cls(model.image_size, tuple(model.mean), tuple(model.std), model.resize_size)

    def view(self, image: Image.Image | torch.Tensor) -> torch.Tensor:
        """One RGB image (Pillow, or uint8 [3, H, W]) -> uint8 [3, S, S] as the net sees it."""
        tensor = TF.pil_to_tensor(image) if isinstance(image, Image.Image) else image
        return self.views(tensor)

    def views(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images [..., 3, H, W] of one size -> uint8 [..., 3, S, S], on the images' device."""
        if images.dtype != torch.uint8 or images.ndim < 3 or images.shape[-3] != 3:
            raise ValueError(
                f"expected uint8 RGB images [..., 3, H, W], got {images.dtype} {tuple(images.shape)}"
            )
        return eval_view(images, self.image_size, self.resize_size)

    @property
    def training_size(self) -> int:
        """The side of the pictures the net learnt from: CIFAR's 32 px, else the evaluation resize."""
        return CIFAR_SIZE if self.resize_size is None else self.resize_size

    def size_warning(self, width: int, height: int) -> str | None:
        """Why an image of this size may get a meaningless answer from this net, or None.

        A net answers for any input (a 1x1 image gets a confident class), so the size is judged here,
        against what the net was trained on, for cifar-predict and the app alike.
        """
        size = self.training_size
        shown = f"{width}x{height}"
        if min(width, height) < size * TOO_SMALL:
            return (
                f"{shown} is far smaller than the {size}x{size} images this net was trained on: it is "
                "enlarged to a blur, so its answer means little"
            )
        if self.resize_size is None and max(width, height) > TOO_NARROW * min(width, height):
            return f"{shown} is squashed to a square, as this net was trained on square {size}x{size} images"
        return None

    def batch(self, views: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """uint8 views [N, 3, S, S] (or a list of [3, S, S]) -> float32 normalised batch [N, 3, S, S]."""
        stacked = views if isinstance(views, torch.Tensor) else torch.stack(list(views))
        return normalize(stacked if stacked.ndim == 4 else stacked.unsqueeze(0), self.mean, self.std)
