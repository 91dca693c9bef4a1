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

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from cifar_resnets.data.transforms import eval_view, normalize


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

    def batch(self, views: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """uint8 views [N, 3, S, S] (or a list of [3, S, S]) -> float32 normalised batch [N, 3, S, S]."""
        stacked = views if isinstance(views, torch.Tensor) else torch.stack(list(views))
        return normalize(stacked if stacked.ndim == 4 else stacked.unsqueeze(0), self.mean, self.std)


def view_to_pil(view: torch.Tensor) -> Image.Image:
    """uint8 [3, H, W] tensor -> Pillow image, for display."""
    return Image.fromarray(np.ascontiguousarray(view.permute(1, 2, 0).cpu().numpy()))
