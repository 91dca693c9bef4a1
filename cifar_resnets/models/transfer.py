"""Transfer learning shared by every model family: read weights files, load a backbone, freeze it.

A net takes part by naming its head ``fc`` (so ``fc.*`` keys are the head and everything else is the
backbone), exposing a ``backbone`` property and mixing in :class:`FreezableBackbone`. Both the
torchvision ResNets and the CIFAR ResNets of He et al. do, so ``weights_path``/``freeze`` mean the
same for all of them.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from cifar_resnets.errors import CheckpointError, ConfigError

__all__ = [
    "FREEZES",
    "HEAD_PREFIX",
    "FreezableBackbone",
    "check_freeze",
    "load_backbone_state",
    "read_weights_file",
]

FREEZES = ("none", "backbone")
HEAD_PREFIX = "fc."


def check_freeze(freeze: str | None) -> str:
    """Validate a ``freeze`` choice (``None`` means ``"none"``) and return it."""
    freeze = "none" if freeze is None else freeze
    if freeze not in FREEZES:
        raise ConfigError(f"unknown freeze {freeze!r}; valid: {', '.join(FREEZES)}")
    return freeze


class FreezableBackbone(nn.Module):
    """Mixin: ``freeze_backbone()`` and a ``train()`` that keeps frozen BatchNorm layers in eval mode."""

    def freeze_backbone(self) -> None:
        """Stop gradients into the backbone; its BatchNorm layers also stay in eval mode (see ``train``)."""
        for name, p in self.named_parameters():
            if not name.startswith(HEAD_PREFIX):
                p.requires_grad_(False)
        self.train(self.training)

    def train(self, mode: bool = True):
        """Switch train/eval, but keep frozen BatchNorm layers in eval mode.

        A BN layer whose affine parameters all have ``requires_grad=False`` would otherwise still update
        its running stats in train mode. Keeping it in eval makes frozen weights and statistics stay
        bit-identical, and follows Lightning's ``BackboneFinetuning`` once it unfreezes layers.
        """
        super().train(mode)
        if mode:
            for m in self.modules():
                frozen_bn = isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine
                if frozen_bn and not any(p.requires_grad for p in m.parameters()):
                    m.eval()
        return self


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict or a Lightning checkpoint of this suite as a plain ``{key: tensor}`` dict.

    Lightning checkpoints keep the net under ``state_dict`` with keys ``net.<key>``; that prefix and the
    ``_orig_mod.`` prefix of ``torch.compile`` wrappers are stripped, other entries (loss buffers,
    EMA bookkeeping) are dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"weights file {path} does not exist; check weights_path")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise CheckpointError(
            f"cannot read {path} as tensors-only weights ({type(err).__name__}: {str(err).splitlines()[0]}); "
            "pass a state dict or a checkpoint saved with plain-container hyperparameters",
            "not_a_checkpoint",
        ) from err
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path} holds no state dict of tensors; pass a state dict or a .ckpt", "foreign"
        )
    if any(k.startswith("net.") for k in obj):
        obj = {k[len("net.") :]: v for k, v in obj.items() if k.startswith("net.")}
    return {k.replace("_orig_mod.", ""): v for k, v in obj.items()}


def load_backbone_state(
    net: nn.Module, state: dict[str, torch.Tensor], source: str = "weights", skip: Iterable[str] = ()
) -> None:
    """Copy every backbone tensor of ``state`` into ``net`` (in place); the head ``fc.*`` is skipped.

    ``skip`` names further keys left out on both sides (a stem that cannot fit, say). Raises
    CheckpointError naming the layers whose name or shape does not fit.
    """
    skip = set(skip)
    own = {k: v for k, v in net.state_dict().items() if not k.startswith(HEAD_PREFIX) and k not in skip}
    theirs = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX) and k not in skip}
    problems = [f"{k} (missing)" for k in own if k not in theirs]
    problems += [f"{k} (unexpected)" for k in theirs if k not in own]
    problems += [
        f"{k} (shape {tuple(theirs[k].shape)} != {tuple(v.shape)})"
        for k, v in own.items()
        if k in theirs and theirs[k].shape != v.shape
    ]
    if problems:
        shown = "; ".join(problems[:5])
        raise CheckpointError(
            f"{source} does not fit this backbone: {len(problems)} mismatched layers, e.g. {shown}; "
            "check the model name and its options (depth, stem, shortcut) and that the file comes from "
            "the same architecture",
            "other_model",
        )
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(theirs[k])  # in place: parameter storage (and CUDA-graph addresses) stays put
