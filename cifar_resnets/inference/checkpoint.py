"""Load a checkpoint of this suite safely and rebuild the net that wrote it.

``read_checkpoint`` is the one place that says why a file is not a usable checkpoint, as one
``CheckpointError`` line whose ``kind`` every tool shows. Files are judged by content and read with
``torch.load(weights_only=True)``; a pickle that is not a torch file is only scanned, never loaded, so
nothing in a file runs. The net is rebuilt by ``models.build.build_net`` without Lightning or Hydra.
"""

from __future__ import annotations

import pickle
import pickletools
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cifar_resnets.config.rules import ListOf, Number, Rule, Text, show
from cifar_resnets.errors import CheckpointError, ConfigError
from cifar_resnets.models.build import build_net, model_fingerprint
from cifar_resnets.reporting.runs import read_metrics

KINDS = ("missing", "not_a_checkpoint", "truncated", "foreign", "code", "other_model", "edited")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# torch.save's pre-1.6 format starts with this pickled magic number (torch.serialization.MAGIC_NUMBER).
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."
_PICKLE_CALLS = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"}
_PICKLE_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING"}
# What torch.load raises for a file whose bytes are damaged past its first few (not bugs of ours).
_DAMAGED = (
    pickle.UnpicklingError,
    RuntimeError,
    EOFError,
    IndexError,
    KeyError,
    struct.error,
    UnicodeDecodeError,
)
_HINT = "pass a checkpoint written by cifar-train, e.g. RUN/checkpoints/last.ckpt"
_EDITED = "the file was edited or damaged since training; use the run's own checkpoint"


@dataclass
class LoadedModel:
    """A net in eval mode plus what is needed to feed it and name its outputs."""

    net: nn.Module
    config: dict[str, Any]
    num_classes: int
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int
    resize_size: int | None  # ImageNet-style evaluation resize; None: CIFAR-style (see data.transforms)
    path: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    # The net as inference runs it, per device (``predict.inference_net``)
    inference_nets: dict[str, nn.Module] = field(default_factory=dict, repr=False, compare=False)

    @property
    def model_name(self) -> str:
        return str(self.config.get("model", {}).get("name", "?"))

    @property
    def data_name(self) -> str:
        return str(self.config.get("data", {}).get("name", "?"))

    @property
    def dataset(self) -> str:
        """``cifar``, ``imagenet_subset`` or the datamodule's class name: which reader has its splits."""
        return dataset_kind(self.config.get("data") or {})


def dataset_kind(data_cfg: dict[str, Any]) -> str:
    target = str(data_cfg.get("_target_", "")).rsplit(".", 1)[-1]
    return {"CIFARDataModule": "cifar", "ImageNetSubsetDataModule": "imagenet_subset"}.get(target, target)


# ----------------------------------------------------------------------------- reading the file
def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:160] if text else type(err).__name__


def _pickle_protocol(head: bytes) -> int | None:
    return head[1] if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5 else None


def _headerless_pickle(data: bytes) -> bool:
    """A pickle of protocol 0 or 1, which has no header: its opcodes read through to its end (STOP)."""
    try:
        ops = list(pickletools.genops(data))
    except ValueError:  # an unknown opcode, or arguments cut short: not a pickle (or a damaged one)
        return False
    return bool(ops) and ops[-1][0].name == "STOP" and ops[-1][2] == len(data) - 1


def _scan_plain_pickle(path: Path, data: bytes) -> CheckpointError:
    """Why a pickle that is not a torch file is refused, found by reading its opcodes (nothing runs)."""
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in _PICKLE_STRINGS:
                strings.append(str(arg))
            elif op.name in _PICKLE_CALLS:
                if op.name in ("GLOBAL", "INST"):
                    name = str(arg).replace(" ", ".")
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    name = ".".join(strings[-2:])
                else:
                    name = "a function"
                return _refused(path, name)
    except ValueError as err:  # pickletools: the opcodes stop short or make no sense
        return CheckpointError(
            f"{path} is not a readable checkpoint: it is a truncated or damaged pickle ({err}); "
            "copy the file again",
            "truncated",
        )
    return CheckpointError(
        f"{path} was written by another program: a Python pickle of plain values, not a torch checkpoint; "
        + _HINT,
        "foreign",
    )


def _refused(path: Path, name: str) -> CheckpointError:
    return CheckpointError(
        f"{path} is refused, nothing in it was run: loading it would call {name}, "
        "and a checkpoint may hold only tensors and plain values",
        "code",
    )


def _not_a_checkpoint(path: Path, head: bytes) -> CheckpointError:
    if all(32 <= b < 127 or b in b"\t\n\r" for b in head):
        looks = f"it is text starting {head[:24].decode()!r}"
    else:
        looks = f"its first bytes are {head[:8].hex(' ')}"
    return CheckpointError(
        f"{path} is not a readable checkpoint: neither a zip archive (torch.save) nor a pickle ({looks}); "
        + _HINT,
        "not_a_checkpoint",
    )


def _check_zip(path: Path) -> None:
    if not zipfile.is_zipfile(path):  # the central directory, written last, is missing
        raise CheckpointError(
            f"{path} is not a readable checkpoint: it is truncated (a zip archive without its end, "
            f"{path.stat().st_size:,} bytes); the save or copy was cut short, copy the file again",
            "truncated",
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as err:
        raise CheckpointError(
            f"{path} is not a readable checkpoint: a damaged zip archive ({err}); {_HINT}", "truncated"
        ) from None
    if not any(name.endswith("/data.pkl") for name in names):
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise CheckpointError(
            f"{path} was written by another program: a zip archive that holds no torch checkpoint "
            f"({shown}); {_HINT}",
            "foreign",
        )


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found:
            raise _refused(path, found.group(1)) from None
        raise CheckpointError(
            f"{path} is not a readable checkpoint: its pickle is damaged; {_HINT}", "truncated"
        ) from None
    except _DAMAGED as err:
        raise CheckpointError(
            f"{path} is not a readable checkpoint: it is truncated or damaged ({_first_line(err)}); "
            "copy the file again",
            "truncated",
        ) from None


def _foreign(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path} was written by another program: {what}; {_HINT}", "foreign")


def _check_content(path: Path, content: Any) -> None:
    if not isinstance(content, dict):
        raise _foreign(path, f"a torch file holding a {type(content).__name__}, not a checkpoint")
    if "state_dict" not in content:
        if content and all(isinstance(v, torch.Tensor) for v in content.values()):
            raise _foreign(path, "a plain state dict (weights without the run config that rebuilds the net)")
        raise _foreign(path, "a torch file without a state_dict")
    if not isinstance(content["state_dict"], dict):
        raise _foreign(path, "its state_dict is not a mapping of tensors")
    hparams = content.get("hyper_parameters")
    config = hparams.get("config") if isinstance(hparams, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise _foreign(
            path, "a checkpoint without the run config cifar-train stores, so its net cannot be rebuilt"
        )


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The content of a checkpoint of this suite, or the ``CheckpointError`` that says what the file is."""
    path = Path(path)
    if path.is_dir():  # it exists: "does not exist" would send the user looking in the wrong place
        raise CheckpointError(
            f"{path} is a folder, not a checkpoint file; pass a checkpoint inside it, "
            "e.g. RUN/checkpoints/last.ckpt",
            "not_a_checkpoint",
        )
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist; pass a run's checkpoints/last.ckpt", "missing"
        )
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        raise CheckpointError(
            f"{path} is not a readable checkpoint: it is empty (0 bytes); the save was cut short", "truncated"
        )
    if head.startswith(_ZIP_MAGIC):
        _check_zip(path)
    elif not head.startswith(_TORCH_LEGACY_MAGIC):
        data = path.read_bytes()
        if _pickle_protocol(head) is None and not _headerless_pickle(data):
            raise _not_a_checkpoint(path, head)
        raise _scan_plain_pickle(path, data)
    content = _torch_load(path)
    _check_content(path, content)
    return content


# ----------------------------------------------------------------------------- the stored values
CHANNELS = 3  # RGB: one mean and one std per channel
MIN_IMAGE_SIZE = 8  # the smallest data.image_size the config checks allow


def _stored_rules(num_classes: Any) -> dict[str, Rule]:
    """What each value a checkpoint or card stores about its net may be (the data config's own rules
    for the image sizes)."""
    return {
        "num_classes": Number(int, low=2),
        "classes": ListOf(Text(), length=num_classes if isinstance(num_classes, int) else None),
        "image_size": Number(int, low=MIN_IMAGE_SIZE),
        "resize_size": Number(int, low=MIN_IMAGE_SIZE, also={None: "no resize, CIFAR-style"}),
        "mean": ListOf(Number(float), length=CHANNELS),
        "std": ListOf(Number(float, low=0, low_open=True), length=CHANNELS),
    }


def check_stored(path: Path, values: dict[str, Any], advice: str) -> None:
    """Refuse, in one line, a stored value of the wrong type, length or range (an edited or damaged
    file); ``values`` maps each value's label (``hyper_parameters.num_classes``) to the value."""
    by_key = {label.rsplit(".", 1)[-1]: label for label in values}
    rules = _stored_rules(values.get(by_key.get("num_classes", "")))
    for key, rule in rules.items():
        label = by_key.get(key)
        if label is None or (key == "classes" and values[label] == []):  # no names: numbers are shown
            continue
        problem = rule.problem(values[label])
        if problem is not None:
            shown = show(values[label])
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise CheckpointError(f"{path}: {label}={shown} must be {problem}; {advice}", "edited")
    image, resize = values.get(by_key.get("image_size", "")), values.get(by_key.get("resize_size", ""))
    if isinstance(image, int) and isinstance(resize, int) and resize < image:
        raise CheckpointError(
            f"{path}: {by_key['resize_size']}={resize} must be >= {by_key['image_size']}={image}; {advice}",
            "edited",
        )


def check_fingerprint(path: Path, model_cfg: dict[str, Any], stored: Any, advice: str) -> None:
    """Refuse a stored model config that is not the one the weights were trained with; files written
    before fingerprints were stored have none and are read as they are."""
    if stored is not None and stored != model_fingerprint(model_cfg):
        raise CheckpointError(
            f"{path}: its stored model config ({model_cfg.get('name')!r}) is not the one its weights were "
            f"trained with (it was edited after training); {advice}",
            "other_model",
        )


# ----------------------------------------------------------------------------- rebuilding the net
def _num_classes(path: Path, state: dict[str, torch.Tensor], hparams: dict[str, Any]) -> int:
    if "num_classes" in hparams:
        return int(hparams["num_classes"])
    head = [v for k, v in state.items() if k.endswith("fc.weight")]
    if not head:
        raise _foreign(path, "its hyper_parameters do not say the number of classes")
    return int(head[-1].shape[0])


def rebuild_net(path: Path, model_cfg: dict[str, Any], num_classes: int) -> torch.nn.Module:
    """The net that ``model_cfg`` describes, with fresh weights; a config no net of this suite matches
    is the file's fault (another model's weights), said as a CheckpointError naming ``path``."""
    try:
        return build_net(model_cfg, num_classes, pretrained=False)
    except ConfigError as err:
        name = model_cfg.get("name")
        raise CheckpointError(f"{path}: cannot rebuild its model {name!r}: {err}", "other_model") from None


def weights_do_not_fit(path: Path, model_cfg: dict[str, Any], err: RuntimeError) -> CheckpointError:
    """A shape mismatch from loading weights into the rebuilt net, in one line."""
    detail = str(err).strip().splitlines()[-1].strip()
    return CheckpointError(
        f"{path}: weights do not fit model {model_cfg.get('name')!r}: {detail}", "other_model"
    )


def check_keys_fit(path: Path, model_cfg: dict[str, Any], bad_keys: list[str]) -> None:
    """Refuse weights whose names the rebuilt net does not have, or that leave some of it unset."""
    if bad_keys:
        raise CheckpointError(
            f"{path}: weights do not fit model {model_cfg.get('name')!r}: {len(bad_keys)} mismatched keys, "
            f"e.g. {', '.join(bad_keys[:4])}",
            "other_model",
        )


def load_model(path: str | Path) -> LoadedModel:
    """Rebuild the checkpoint's net (EMA weights when the run used EMA) in eval mode on the CPU; a
    cifar-export bundle (``.safetensors`` or its folder) is read by ``bundle.read_bundle``, a published net
    (``pretrained:<source>/<net>`` or its release file) by ``pretrained.load_pretrained``."""
    from cifar_resnets.inference.bundle import is_bundle, read_bundle  # it imports this module
    from cifar_resnets.inference.pretrained import is_pretrained, load_pretrained  # it imports this module

    if is_pretrained(path):
        return load_pretrained(path)
    path = Path(path)
    if is_bundle(path):
        return read_bundle(path)
    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters") or {}
    config = hparams["config"]
    info = hparams.get("data_info") or {}
    if not isinstance(info, dict):
        raise CheckpointError(f"{path}: hyper_parameters.data_info is not a mapping; {_EDITED}", "edited")
    stored = {f"hyper_parameters.data_info.{k}": v for k, v in info.items()}
    if "num_classes" in hparams:
        stored["hyper_parameters.num_classes"] = hparams["num_classes"]
    check_stored(path, stored, _EDITED)
    state = {
        k.removeprefix("net.").replace("_orig_mod.", ""): v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith("net.")
    }
    num_classes = _num_classes(path, state, hparams)
    net = rebuild_net(path, config["model"], num_classes)
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise weights_do_not_fit(path, config["model"], err) from None
    check_keys_fit(path, config["model"], [*result.missing_keys, *result.unexpected_keys])
    check_fingerprint(path, config["model"], hparams.get("model_fingerprint"), _EDITED)
    net.eval()
    data_cfg = config.get("data") or {}
    image_size = int(info.get("image_size", data_cfg.get("image_size", 32)))
    resize_size = int(info.get("resize_size", data_cfg.get("resize_size", image_size)))
    kind = dataset_kind(data_cfg)
    cifar_style = kind == "cifar" or (kind != "imagenet_subset" and resize_size == image_size)
    return LoadedModel(
        net=net,
        config=config,
        num_classes=num_classes,
        classes=list(info.get("classes") or [str(i) for i in range(num_classes)]),
        mean=tuple(float(v) for v in info.get("mean", (0.5, 0.5, 0.5))),
        std=tuple(float(v) for v in info.get("std", (0.25, 0.25, 0.25))),
        image_size=image_size,
        resize_size=None if cifar_style else resize_size,
        path=path,
        metrics=read_metrics(path.parent.parent) or {},  # the run's, for RUN/checkpoints/*.ckpt
    )
