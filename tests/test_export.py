"""cifar-export: the safetensors bundle and its card, ONNX parity under onnxruntime on real test images,
TorchScript, and cifar-predict / cifar-eval reading the bundle as they read the checkpoint."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("safetensors")
pytest.importorskip("onnxruntime")

from cifar_resnets.cli.evaluate import main as eval_main  # noqa: E402
from cifar_resnets.cli.export import main as export_main  # noqa: E402
from cifar_resnets.cli.predict import main as predict_main  # noqa: E402
from cifar_resnets.data.cifar_files import load_cifar_pickle  # noqa: E402
from cifar_resnets.errors import CheckpointError
from cifar_resnets.export.exporter import export_checkpoint, onnx_probs  # noqa: E402
from cifar_resnets.inference.checkpoint import load_model  # noqa: E402
from cifar_resnets.inference.predict import predict_probs  # noqa: E402


@pytest.fixture(scope="module")
def exported(tiny_real_run: Path, tmp_path_factory) -> tuple[Path, Path, object]:
    ckpt = tiny_real_run / "checkpoints" / "last.ckpt"
    out = tmp_path_factory.mktemp("export")
    return ckpt, out, export_checkpoint(ckpt, out, torchscript=True, verify=256)


def test_card_records_what_rebuilds_feeds_and_judges_the_net(exported) -> None:
    ckpt, out, result = exported
    card = json.loads((out / "model.json").read_text())
    loaded = load_model(ckpt)
    assert card["architecture"] == loaded.model_name and card["model"] == loaded.config["model"]
    assert card["classes"] == loaded.classes and len(card["classes"]) == 10
    assert card["input_size"] == [3, 32, 32]
    assert card["mean"] == pytest.approx(loaded.mean) and card["std"] == pytest.approx(loaded.std)
    metrics = json.loads((ckpt.parent.parent / "metrics.json").read_text())
    assert card["metrics"]["test/acc"] == pytest.approx(metrics["test/acc"])
    assert card["metrics"]["val/acc"] == pytest.approx(metrics["val/acc"])
    assert card["trained_by"]["checkpoint"] == str(ckpt) and "commit" in card["trained_by"]
    assert {p.name for p in out.iterdir()} >= {"model.safetensors", "model.json", "model.onnx"}


def test_onnx_gives_the_checkpoints_probabilities_on_real_test_images(
    exported, small_real_cifar10: Path
) -> None:
    ckpt, out, result = exported
    assert result.card["onnx"]["checked_images"] == 256
    assert result.onnx_max_diff <= 1e-4
    # Independently of the exporter's own check, and at batch sizes other than the traced one.
    images, _ = load_cifar_pickle(small_real_cifar10 / "cifar-10-batches-py" / "test_batch")
    images = torch.as_tensor(images[:7])
    loaded = load_model(ckpt)
    ours = predict_probs(loaded, images, device="cpu").numpy()
    theirs = onnx_probs(out / "model.onnx", loaded, images, batch_size=3)  # batches of 3, 3, 1
    assert np.abs(theirs - ours).max() <= 1e-4


def test_torchscript_and_bundle_rebuild_the_same_net(exported) -> None:
    ckpt, out, _ = exported
    loaded, bundle = load_model(ckpt), load_model(out)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        reference = loaded.net(x)
        torch.testing.assert_close(bundle.net(x), reference)
        torch.testing.assert_close(torch.jit.load(str(out / "model.torchscript.pt"))(x), reference)
    assert bundle.classes == loaded.classes and bundle.metrics["test/acc"] == loaded.metrics["test/acc"]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_predict_and_eval_read_the_bundle_as_the_checkpoint(
    exported, small_real_cifar10: Path, tmp_path
) -> None:
    ckpt, out, _ = exported
    images, _ = load_cifar_pickle(small_real_cifar10 / "cifar-10-batches-py" / "test_batch")
    np.save(tmp_path / "x.npy", images[:64])
    for name, source in (("ckpt", ckpt), ("bundle", out / "model.safetensors")):
        predict_main(
            [
                "--ckpt",
                str(source),
                "--input",
                str(tmp_path / "x.npy"),
                "--out",
                str(tmp_path / f"{name}.csv"),
                "--probs",
                "--device",
                "cpu",
            ]
        )
        eval_main([f"ckpt={source}", "split=val", "device=cpu", f"out_dir={tmp_path / name}"])
    rows = {name: _read_csv(tmp_path / f"{name}.csv") for name in ("ckpt", "bundle")}
    assert [r["label"] for r in rows["bundle"]] == [r["label"] for r in rows["ckpt"]]
    probs = {
        n: np.array([[float(v) for k, v in r.items() if k.startswith("prob_")] for r in rs])
        for n, rs in rows.items()
    }
    assert np.abs(probs["bundle"] - probs["ckpt"]).max() <= 1e-5
    reports = {n: json.loads((tmp_path / n / "eval_val.json").read_text()) for n in ("ckpt", "bundle")}
    assert (
        reports["bundle"]["accuracy"] == reports["ckpt"]["accuracy"] and reports["ckpt"]["num_images"] == 128
    )


def test_a_bundle_without_its_card_is_refused_in_one_line(exported, tmp_path, capsys) -> None:
    _, out, _ = exported
    lonely = tmp_path / "lonely.safetensors"
    lonely.write_bytes((out / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="has no card lonely.json"):
        load_model(lonely)
    with pytest.raises(SystemExit) as exit_info:
        export_main(["--ckpt", str(tmp_path / "missing.ckpt")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
