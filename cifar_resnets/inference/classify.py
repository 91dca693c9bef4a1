"""The Python API's one call: top-k classes of image files or decoded images, from any loaded net.

Images go through ``data.images.read_image`` and the net's ``Preprocess`` as in cifar-predict and the
app, so an image gets the same answer here as there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from cifar_resnets.data.images import read_image
from cifar_resnets.inference.checkpoint import LoadedModel
from cifar_resnets.inference.predict import predict_images


def classify(
    model: LoadedModel,
    images: Sequence[str | Path | Image.Image | torch.Tensor],
    top_k: int = 5,
    tta: str = "none",
    device: str | torch.device = "cpu",
) -> list[list[tuple[str, float]]]:
    """For each image (a file path, a Pillow image or uint8 [3, H, W]), its ``top_k`` (class, probability)
    pairs, most probable first."""
    decoded = [read_image(x) if isinstance(x, (str, Path)) else x for x in images]
    probs = predict_images(model, decoded, tta, device)
    values, indices = probs.topk(min(top_k, model.num_classes), dim=1)
    return [
        [(model.classes[i], round(float(p), 4)) for p, i in zip(row_p, row_i, strict=True)]
        for row_p, row_i in zip(values.tolist(), indices.tolist(), strict=True)
    ]
