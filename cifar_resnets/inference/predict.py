"""Softmax probabilities of a checkpoint's net, in batches, with optional test-time augmentation (TTA).

Functions take and return plain tensors so other tools can call them; images are preprocessed chunk by
chunk, so memory stays bounded by ``batch_size`` whatever N is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.fx.experimental.optimization import fuse
from torch.fx.proxy import TraceError

from cifar_resnets.errors import ConfigError
from cifar_resnets.inference.checkpoint import LoadedModel
from cifar_resnets.inference.options import TTA_MODES
from cifar_resnets.inference.preprocess import Preprocess

_SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))


def check_tta(tta: str) -> str:
    if tta not in TTA_MODES:
        raise ConfigError(f"tta={tta!r} is not supported; choose one of {list(TTA_MODES)}")
    return tta


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: the first CUDA GPU when there is one, else the CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} asked for a GPU but none is available; use device=cpu")
    return torch.device(device)


def _shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    # Replicate-pad one pixel, then crop back: the content moves by (dy, dx) without wrapping round.
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    h, w = x.shape[-2:]
    return padded[..., 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]


def tta_views(x: torch.Tensor, tta: str) -> list[torch.Tensor]:
    """The views of a normalised batch that ``tta`` averages over (see ``options.TTA_MODES``)."""
    check_tta(tta)
    if tta == "none":
        return [x]
    bases = [x, torch.flip(x, dims=[-1])]
    if tta == "flip":
        return bases
    return [v for base in bases for v in (base, *(_shift(base, dy, dx) for dy, dx in _SHIFTS))]


@torch.inference_mode()
def forward_probs(net: nn.Module, x: torch.Tensor, tta: str = "none") -> torch.Tensor:
    """Softmax probabilities of one normalised batch, averaged over the TTA views (on x's device).

    Each view goes in as channels_last, like ``inference_net``'s weights: convolutions then run NHWC
    kernels on GPUs and CPUs alike (docs/speed.md). The arithmetic stays fp32, so every command gives
    the same probabilities as an exported bundle.
    """
    views = tta_views(x, tta)
    probs = torch.zeros((), device=x.device)
    for view in views:
        probs = probs + torch.softmax(net(view.contiguous(memory_format=torch.channels_last)).float(), dim=1)
    return probs / len(views)


def inference_net(model: LoadedModel, device: torch.device) -> nn.Module:
    """The net as inference runs it, made once per model and device: eval mode, each BatchNorm folded
    into the convolution before it (torch.fx's ``fuse``), weights channels_last like the inputs.

    Folding saves a pass over every activation (CPU images/s in docs/speed.md) and moves probabilities
    by under 1e-6. A net torch.fx cannot trace runs unfolded. ``model.net`` keeps its BatchNorms for
    fine-tuning and for the app's layer table.
    """
    key = str(device)
    if key not in model.inference_nets:
        net = model.net.to(device).eval()
        # A net with data-dependent control flow cannot be traced: it runs eager, correct but slower.
        with contextlib.suppress(TraceError, TypeError, NotImplementedError, RuntimeError):
            net = fuse(net)
        model.inference_nets[key] = net.to(memory_format=torch.channels_last)
    return model.inference_nets[key]


def _chunks(images: torch.Tensor, batch_size: int) -> Iterable[torch.Tensor]:
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    return (images[start : start + batch_size] for start in range(0, images.shape[0], batch_size))


def views_probs(
    model: LoadedModel,
    views: torch.Tensor | Iterable[torch.Tensor],
    tta: str = "none",
    device: str | torch.device = "auto",
    batch_size: int = 500,
) -> torch.Tensor:
    """Probabilities [N, C] (float32, CPU) of uint8 views already at the net's input size.

    ``views``: one tensor [N, 3, S, S] (run ``batch_size`` at a time), or an iterable of such chunks.
    """
    check_tta(tta)
    device = pick_device(device)
    preprocess = Preprocess.for_model(model)
    net = inference_net(model, device)
    chunks = _chunks(views, batch_size) if isinstance(views, torch.Tensor) else views
    out = [forward_probs(net, preprocess.batch(chunk.to(device)), tta).cpu() for chunk in chunks]
    return torch.cat(out) if out else torch.empty((0, model.num_classes))


def predict_probs(
    model: LoadedModel,
    images: torch.Tensor | np.ndarray,
    tta: str = "none",
    batch_size: int = 500,
    device: str | torch.device = "auto",
) -> torch.Tensor:
    """Probabilities [N, C] (float32, CPU) of uint8 images [N, 3, H, W] of one size, any size."""
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ConfigError(
            f"expected uint8 images [N, 3, H, W], got {tuple(images.shape)} {images.dtype}; "
            "cifar_resnets.inference.inputs reads user files into this layout"
        )
    device = pick_device(device)
    preprocess = Preprocess.for_model(model)
    views = (preprocess.views(chunk.to(device)) for chunk in _chunks(images, batch_size))
    return views_probs(model, views, tta, device)


def predict_images(
    model: LoadedModel,
    images: Sequence[Image.Image | torch.Tensor],
    tta: str = "none",
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Probabilities [N, C] of decoded images of any sizes (Pillow RGB or uint8 [3, H, W])."""
    preprocess = Preprocess.for_model(model)
    return views_probs(model, [torch.stack([preprocess.view(image) for image in images])], tta, device)
