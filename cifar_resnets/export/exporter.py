"""Export a checkpoint: safetensors weights + ``model.json`` card, ``model.onnx``, optionally TorchScript.

ONNX uses the ``torch.export``-based exporter (the TorchScript-based one is deprecated since torch 2.9,
https://pytorch.org/docs/stable/onnx.html) with a symbolic batch size. ``onnx_probs`` runs the file on the
same preprocessing, so parity with the checkpoint is checked on real images rather than assumed.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from cifar_resnets.errors import ConfigError
from cifar_resnets.inference.bundle import CARD_NAME, WEIGHTS_NAME, write_bundle
from cifar_resnets.inference.checkpoint import LoadedModel, load_model
from cifar_resnets.inference.evaluate import cifar_split, run_folder
from cifar_resnets.inference.outputs import check_output_folder, make_folder, write_atomic
from cifar_resnets.inference.predict import predict_probs
from cifar_resnets.inference.preprocess import Preprocess
from cifar_resnets.inference.pretrained import report_folder
from cifar_resnets.provenance import provenance as environment
from cifar_resnets.provenance import utc_now

ONNX_NAME = "model.onnx"
TORCHSCRIPT_NAME = "model.torchscript.pt"
ONNX_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "images", "logits"
_INSTALL = 'pip install "cifar_resnets[export]"'


@dataclass
class ExportResult:
    files: dict[str, Path] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)
    onnx_max_diff: float | None = None


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(f"{module} is not installed; {_INSTALL}") from None


def provenance(ckpt: Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """What the run folder says about how the checkpoint was made: the command (Hydra's recorded
    overrides) and the commit, where recorded; ``None`` for what it does not record."""
    folder = run_folder(ckpt)
    command = None
    overrides_file = folder / ".hydra" / "overrides.yaml"
    with contextlib.suppress(OSError, yaml.YAMLError):
        overrides = yaml.safe_load(overrides_file.read_text())
        if isinstance(overrides, list):
            command = " ".join(["cifar-train", *map(str, overrides)])
    recorded = metrics.get("provenance") or {}  # versions, device, commit and times of the training run
    return {
        "run": str(folder),
        "checkpoint": str(ckpt),
        "command": command,
        "commit": recorded.get("git_commit", metrics.get("commit")),
        "environment": recorded or None,
    }


def final_metrics(loaded: LoadedModel) -> dict[str, float]:
    """The run's final validation and test numbers (``metrics.json`` beside the checkpoint)."""
    return {
        k: float(v)
        for k, v in sorted(loaded.metrics.items())
        if k.startswith(("test/", "val/")) and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def write_onnx(loaded: LoadedModel, path: Path) -> Path:
    _require("onnx")
    _require("onnxscript")  # the torch.export-based exporter translates through it
    example = torch.zeros(2, 3, loaded.image_size, loaded.image_size)
    batch = torch.export.Dim("batch", min=1)
    # The exporter reports each stage on stdout; cifar-export prints its own summary instead.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            loaded.net.eval(),
            (example,),
            str(path),
            dynamo=True,
            external_data=False,  # one self-contained file (the ONNX limit is 2 GB; these nets are far below)
            opset_version=ONNX_OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
    return path


def write_torchscript(loaded: LoadedModel, path: Path) -> Path:
    example = torch.zeros(2, 3, loaded.image_size, loaded.image_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice: TorchScript is asked for by name
        traced = torch.jit.trace(loaded.net.eval(), example)
    traced.save(str(path))
    return path


def onnx_probs(
    onnx_path: Path, loaded: LoadedModel, images: torch.Tensor, batch_size: int = 256
) -> np.ndarray:
    """Softmax probabilities [N, C] of uint8 images [N, 3, H, W] from the ONNX file under onnxruntime,
    preprocessed exactly as cifar-predict preprocesses them for the checkpoint."""
    ort = _require("onnxruntime")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    preprocess = Preprocess.for_model(loaded)
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = preprocess.batch(preprocess.views(images[start : start + batch_size])).numpy()
        logits = torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x})[0])
        out.append(torch.softmax(logits.float(), dim=1).numpy())
    return np.concatenate(out) if out else np.empty((0, loaded.num_classes), np.float32)


def onnx_parity(onnx_path: Path, loaded: LoadedModel, images: torch.Tensor) -> float:
    """Largest absolute difference between the ONNX file's and the checkpoint's probabilities."""
    ours = predict_probs(loaded, images, device="cpu").numpy()
    return float(np.abs(onnx_probs(onnx_path, loaded, images) - ours).max())


def cifar_test_images(loaded: LoadedModel, count: int, data_root: str | None = None) -> torch.Tensor:
    """The first ``count`` images of the checkpoint's CIFAR test split (uint8 [N, 3, H, W])."""
    if loaded.dataset != "cifar":
        raise ConfigError(f"--verify reads a CIFAR test split; {loaded.data_name} is not a CIFAR dataset")
    images, _ = cifar_split(loaded, "test", data_root)
    return torch.as_tensor(images[:count])


def export_checkpoint(
    ckpt: str | Path,
    out_dir: str | Path | None = None,
    onnx: bool = True,
    torchscript: bool = False,
    verify: int = 0,
    data_root: str | None = None,
) -> ExportResult:
    """Write the bundle (and ONNX/TorchScript) of ``ckpt`` into ``out_dir`` (default ``RUN/export``).

    ``verify`` > 0 runs the ONNX file on that many test images and records the largest probability
    difference from the checkpoint in the card.
    """
    ckpt = Path(ckpt)
    if verify and not onnx:
        raise ConfigError("--verify checks the ONNX file; leave ONNX export on to verify")
    loaded = load_model(ckpt)  # first: a published net has no run folder, its exports go elsewhere
    out = Path(out_dir) if out_dir is not None else (report_folder(loaded) or run_folder(ckpt)) / "export"
    names = [
        WEIGHTS_NAME,
        CARD_NAME,
        *([ONNX_NAME] if onnx else []),
        *([TORCHSCRIPT_NAME] if torchscript else []),
    ]
    check_output_folder(out, names, [ckpt], "--out")
    _require("safetensors")
    make_folder(out, "--out")
    result = ExportResult()
    card: dict[str, Any] = {
        "architecture": loaded.model_name,
        "dataset": loaded.data_name,
        "metrics": final_metrics(loaded),
        "trained_by": loaded.config.get("pretrained") or provenance(ckpt, loaded.metrics),
        "exported_by": {**environment(), "ended": utc_now()},  # versions, device, commit, command, times
        "config": loaded.config,
    }
    if onnx:
        result.files["onnx"] = write_atomic(out / ONNX_NAME, lambda tmp: write_onnx(loaded, tmp))
        card["onnx"] = {
            "file": ONNX_NAME,
            "opset": ONNX_OPSET,
            "input": INPUT_NAME,
            "output": OUTPUT_NAME,
            "input_shape": ["batch", 3, loaded.image_size, loaded.image_size],
            "input_is": "float32 images scaled to [0, 1], normalised with mean/std (per channel)",
        }
        if verify:
            images = cifar_test_images(loaded, verify, data_root)
            result.onnx_max_diff = onnx_parity(result.files["onnx"], loaded, images)
            card["onnx"].update(checked_images=int(images.shape[0]), max_abs_prob_diff=result.onnx_max_diff)
    if torchscript:
        result.files["torchscript"] = write_atomic(
            out / TORCHSCRIPT_NAME, lambda tmp: write_torchscript(loaded, tmp)
        )
        card["torchscript"] = {"file": TORCHSCRIPT_NAME}
    weights, card_path = write_bundle(loaded, out, card)
    result.files = {"weights": weights, "card": card_path, **result.files}
    result.card = card
    return result
