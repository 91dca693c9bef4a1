"""Decode user images safely and turn them into exactly what a checkpoint's net was trained on.

Uploaded files are untrusted: anything that is not a PNG, JPEG, WebP or BMP, a truncated file, or a
decompression bomb (more pixels than Pillow's ``Image.MAX_IMAGE_PIXELS``) raises one
``ImageDecodeError`` with a message for the user, never a stray Pillow exception. Every accepted
image comes back as 8-bit RGB whatever its mode (grayscale, RGBA, palette, CMYK, 16-bit).

``Preprocess`` mirrors the evaluation transforms of the datamodules, so a prediction here matches
what `cifar-eval` would see: CIFAR models get the image resized to 32x32 (then, for nets trained on
upsampled CIFAR, bilinearly to their input size as the datamodule does); ImageNet-sized models get
the shorter side resized and a center crop.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from torchvision.transforms import v2

from cifar_resnets.errors import UserError

FORMATS = ("PNG", "JPEG", "WEBP", "BMP")
EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp")
CIFAR_SIZE = 32


class ImageDecodeError(UserError, ValueError):
    """An uploaded file that cannot be used as an image; the message says which file and why."""


def _pixel_limit() -> str:
    limit = Image.MAX_IMAGE_PIXELS
    return f"{limit:,} pixels" if limit else "none"


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB uint8; transparency is flattened onto white, high bit depths scaled."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
        if image.mode.startswith("I;16") or (low >= 0 and 255 < high <= 65535):
            values = values / 257.0  # 16-bit range onto 8-bit
        elif low < 0 or high > 255:
            values = (values - low) / max(high - low, 1e-12) * 255.0
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode == "P" and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(data: bytes, name: str = "image") -> Image.Image:
    """Bytes of a PNG/JPEG/WebP/BMP file -> an RGB Pillow image, or ``ImageDecodeError``."""
    if not data:
        raise ImageDecodeError(f"{name} is empty")
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # A global Pillow switch (set by some libraries) that would silently pad cut files with grey.
        raise ImageDecodeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is on; turn it off to check images")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its pixel limit; refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(FORMATS)) as image:
                image.load()
                image = ImageOps.exif_transpose(image) or image
                return _to_rgb(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        found = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(found.group(1)):,} pixels, " if found else ""
        raise ImageDecodeError(
            f"{name} is refused as a possible decompression bomb ({size}more than the limit of "
            f"{_pixel_limit()}, PIL.Image.MAX_IMAGE_PIXELS); downscale it and try again"
        ) from None
    except UnidentifiedImageError:
        raise ImageDecodeError(
            f"{name} is not a PNG, JPEG, WebP or BMP image (its contents are not a picture Pillow can read)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        detail = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise ImageDecodeError(
            f"{name} is truncated or corrupt ({detail}); upload the complete file"
        ) from None


@dataclass(frozen=True)
class Preprocess:
    """How one checkpoint's net expects its input; built from a checkpoint with ``for_model``."""

    image_size: int
    resize_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    cifar: bool  # trained on 32x32 CIFAR images (possibly upsampled) rather than on full-size photos

    @classmethod
    def for_model(cls, model: Any) -> Preprocess:
        """From a ``checkpoints.LoadedModel`` (its stored data info and data config)."""
        data_cfg = (model.config or {}).get("data", {}) or {}
        target = str(data_cfg.get("_target_", ""))
        cifar = str(data_cfg.get("name", "")).startswith("cifar") or target.endswith("CIFARDataModule")
        return cls(
            image_size=int(model.image_size),
            resize_size=int(model.resize_size),
            mean=tuple(float(v) for v in model.mean),
            std=tuple(float(v) for v in model.std),
            cifar=cifar or int(model.image_size) <= CIFAR_SIZE,
        )

    def view_transform(self) -> v2.Compose:
        """PIL RGB -> uint8 tensor [3, H, W] as the net sees it (before normalisation)."""
        if self.cifar:
            steps: list[v2.Transform] = [v2.ToImage(), v2.Resize((CIFAR_SIZE, CIFAR_SIZE), antialias=True)]
            if self.image_size != CIFAR_SIZE:
                # The CIFAR datamodule upsamples 32x32 images this way (bilinear, no antialias).
                steps.append(
                    v2.Resize(
                        (self.image_size, self.image_size),
                        interpolation=v2.InterpolationMode.BILINEAR,
                        antialias=False,
                    )
                )
            return v2.Compose(steps)
        return v2.Compose(
            [v2.ToImage(), v2.Resize(self.resize_size, antialias=True), v2.CenterCrop(self.image_size)]
        )

    def view(self, image: Image.Image) -> torch.Tensor:
        """The uint8 [3, H, W] image the net is fed (resized/cropped, not yet normalised)."""
        return self.view_transform()(image)

    def normalize(self, views: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """uint8 views [N, 3, H, W] (or a list of [3, H, W]) -> float32 normalised batch."""
        batch = torch.stack(list(views)) if not isinstance(views, torch.Tensor) else views
        if batch.ndim == 3:
            batch = batch.unsqueeze(0)
        scale = v2.ToDtype(torch.float32, scale=True)
        return v2.Normalize(list(self.mean), list(self.std))(scale(batch))


def view_to_pil(view: torch.Tensor) -> Image.Image:
    """uint8 [3, H, W] tensor -> PIL image, for display."""
    return Image.fromarray(view.permute(1, 2, 0).contiguous().numpy())
