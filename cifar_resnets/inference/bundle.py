"""The exported bundle: a net's weights as safetensors, with a JSON card beside them.

A checkpoint is a pickle that needs the training config to mean anything; ``model.safetensors`` holds
only tensors, so no code runs while reading it (https://huggingface.co/docs/safetensors), and the card
says how to rebuild, feed and name the net. ``read_bundle`` gives the same ``LoadedModel`` as a checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cifar_resnets.errors import CheckpointError
from cifar_resnets.inference.checkpoint import (
    LoadedModel,
    check_fingerprint,
    check_keys_fit,
    check_stored,
    rebuild_net,
    weights_do_not_fit,
)
from cifar_resnets.inference.outputs import write_atomic, write_text
from cifar_resnets.models.build import model_fingerprint

FORMAT = "cifar_resnets.bundle/1"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "model.json"  # the card beside the weights: bundle_files
# What the card must say (the net, its classes, its input) and the stored values checked before use.
_CARD_REQUIRED = ("num_classes", "image_size", "mean", "std")
_CARD_STORED = ("num_classes", "classes", "image_size", "resize_size", "mean", "std")
_REEXPORT = "the card was edited or damaged; export the checkpoint again with cifar-export"
_INSTALL = 'reading a safetensors bundle needs the export extra: pip install "cifar_resnets[export]"'


def is_bundle(path: str | Path) -> bool:
    """A ``.safetensors`` file, or a folder holding ``model.safetensors`` (what cifar-export writes)."""
    path = Path(path)
    return path.suffix == ".safetensors" or (path.is_dir() and (path / WEIGHTS_NAME).is_file())


def bundle_files(path: str | Path) -> tuple[Path, Path]:
    """(weights, card) of a bundle given as its folder or its ``.safetensors`` file."""
    path = Path(path)
    weights = path / WEIGHTS_NAME if path.is_dir() else path
    return weights, weights.with_suffix(".json")


def _safetensors() -> Any:
    try:
        import safetensors.torch
    except ImportError:
        raise CheckpointError(_INSTALL, "foreign") from None
    return safetensors.torch


def write_bundle(loaded: LoadedModel, out_dir: str | Path, card: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``loaded.net``'s weights and ``card``, plus the fields ``read_bundle`` needs, into the
    existing folder ``out_dir``, each file in one step (the card last: a bundle whose card exists is
    complete)."""
    weights, card_path = bundle_files(Path(out_dir) / WEIGHTS_NAME)
    # save_model, not save_file: it drops duplicate views of one tensor, which save_file refuses.
    save = _safetensors().save_model
    write_atomic(weights, lambda tmp: save(loaded.net, str(tmp), metadata={"format": FORMAT}))
    full = {
        "format": FORMAT,
        "model": loaded.config.get("model"),
        "model_fingerprint": model_fingerprint(loaded.config.get("model") or {}),
        "num_classes": loaded.num_classes,
        "classes": loaded.classes,
        "input_size": [3, loaded.image_size, loaded.image_size],
        "image_size": loaded.image_size,
        "resize_size": loaded.resize_size,
        "mean": list(loaded.mean),
        "std": list(loaded.std),
        **card,
    }
    write_text(card_path, json.dumps(full, indent=2, sort_keys=False) + "\n")
    return weights, card_path


def read_bundle(path: str | Path) -> LoadedModel:
    """Rebuild a bundle's net in eval mode on the CPU; a ``CheckpointError`` says what is wrong."""
    weights, card_path = bundle_files(path)
    if not weights.is_file():
        raise CheckpointError(f"bundle {weights} does not exist; pass cifar-export's output", "missing")
    if not card_path.is_file():
        raise CheckpointError(
            f"{weights} has no card {card_path.name} beside it (it says how to rebuild the net); "
            "copy both files of the bundle",
            "foreign",
        )
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CheckpointError(f"{card_path} is not a readable card: {err}", "truncated") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT or not isinstance(card.get("model"), dict):
        raise CheckpointError(f"{card_path} is not a card written by cifar-export ({FORMAT})", "foreign")
    absent = [key for key in _CARD_REQUIRED if key not in card]
    if absent:
        raise CheckpointError(f"{card_path} has no {', '.join(absent)}; {_REEXPORT}", "edited")
    check_stored(card_path, {key: card[key] for key in _CARD_STORED if key in card}, _REEXPORT)
    for key in ("config", "metrics"):
        if not isinstance(card.get(key) or {}, dict):
            raise CheckpointError(f"{card_path}: {key} must be a mapping; {_REEXPORT}", "edited")
    num_classes = card["num_classes"]
    net = rebuild_net(weights, card["model"], num_classes)
    try:
        missing, unexpected = _safetensors().load_model(net, str(weights), strict=False)
    except RuntimeError as err:  # shape mismatches
        raise weights_do_not_fit(weights, card["model"], err) from None
    except Exception as err:  # noqa: BLE001 - safetensors' own errors for a cut-off or foreign file
        raise CheckpointError(
            f"{weights} is not a readable safetensors file ({str(err).strip()[:160]}); copy the file again",
            "truncated",
        ) from None
    check_keys_fit(weights, card["model"], [*missing, *unexpected])
    check_fingerprint(card_path, card["model"], card.get("model_fingerprint"), _REEXPORT)
    net.eval()
    resize = card.get("resize_size")  # checked above: None or an int
    return LoadedModel(
        net=net,
        config=card.get("config") or {"model": card["model"]},
        num_classes=num_classes,
        classes=list(card.get("classes") or [str(i) for i in range(num_classes)]),
        mean=tuple(float(v) for v in card["mean"]),
        std=tuple(float(v) for v in card["std"]),
        image_size=card["image_size"],
        resize_size=resize,
        path=weights,
        metrics=dict(card.get("metrics") or {}),
    )
