"""cifar-eval: reports consistent with their confusion matrix, TTA, outputs, and refused checkpoints."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from train_helpers import Evil, read_metrics, run_cli, trained_run

from cifar_resnets.cli.common import keyvalue_to_options
from cifar_resnets.cli.evaluate import main
from cifar_resnets.data.transforms import eval_view
from cifar_resnets.errors import CheckpointError
from cifar_resnets.inference.evaluate import evaluate
from cifar_resnets.inference.predict import tta_views
from cifar_resnets.inference.report import classification_report


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, synthetic_cifar10: Path) -> Path:
    return trained_run(tmp_path_factory, synthetic_cifar10)


@pytest.fixture(scope="module")
def ckpt(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "last.ckpt"


def _assert_consistent(report: dict) -> None:
    """Per-class numbers recomputed from the confusion matrix (rows: true, columns: predicted)."""
    m = np.array(report["confusion_matrix"], dtype=np.float64)
    assert m.sum() == report["num_images"]
    assert report["accuracy"] == pytest.approx(np.trace(m) / m.sum())
    for i, row in enumerate(report["per_class"]):
        tp, predicted, actual = m[i, i], m[:, i].sum(), m[i].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        assert row["support"] == actual
        assert row["precision"] == pytest.approx(precision, abs=1e-6)
        assert row["recall"] == pytest.approx(recall, abs=1e-6)
        assert row["f1"] == pytest.approx(f1, abs=1e-6)
    assert report["macro"]["f1"] == pytest.approx(np.mean([r["f1"] for r in report["per_class"]]))


def test_eval_report_is_consistent_and_written_into_the_run_folder(run_dir: Path, ckpt: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    report = evaluate(ckpt, device="cpu")
    _assert_consistent(report)
    assert report["num_images"] == 256 and report["split"] == "test"
    # Same weights, same test split, same preprocessing as the trainer's own test pass.
    assert report["accuracy"] == pytest.approx(read_metrics(run_dir)["test/acc"], abs=1e-6)
    assert report["accuracy"] > 0.5  # the easy classes are learnt
    written = json.loads((run_dir / "eval_test.json").read_text())
    assert written["confusion_matrix"] == report["confusion_matrix"]
    markdown = (run_dir / "eval_test.md").read_text()
    assert "| Class | Precision | Recall | F1-Score | Support |" in markdown
    for row in report["per_class"]:
        assert f"| {row['class']} | {100 * row['precision']:.1f}% | {100 * row['recall']:.1f}% |" in markdown
    with Image.open(run_dir / "eval_test_confusion.png") as png:
        assert png.format == "PNG" and min(png.size) > 200
    # Only the three eval files are new; nothing that was there changed.
    after = {p.name: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    assert set(after) - set(before) >= {"eval_test.md", "eval_test.json", "eval_test_confusion.png"}
    assert {k: after[k] for k in before if not k.startswith("eval_")} == {
        k: v for k, v in before.items() if not k.startswith("eval_")
    }


@pytest.mark.parametrize("tta", ["flip", "flip_translate"])
def test_eval_tta_variants_on_the_validation_split(ckpt: Path, tmp_path: Path, tta: str) -> None:
    report = evaluate(ckpt, split="val", tta=tta, device="cpu", out_dir=tmp_path)
    _assert_consistent(report)
    assert report["num_images"] == 128 and report["tta"] == tta
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"eval_val_{tta}{suffix}" for suffix in (".json", ".md", "_confusion.png")
    )


def test_tta_views_flip_and_one_pixel_shifts() -> None:
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    assert len(tta_views(x, "none")) == 1
    flip = tta_views(x, "flip")
    assert len(flip) == 2 and torch.equal(flip[1], x.flip(-1))
    views = tta_views(x, "flip_translate")
    assert len(views) == 10 and all(v.shape == x.shape for v in views)
    down, up, right, left = views[1:5]
    assert torch.equal(down[..., 1:, :], x[..., :-1, :]) and torch.equal(down[..., 0, :], x[..., 0, :])
    assert torch.equal(up[..., :-1, :], x[..., 1:, :])
    assert torch.equal(right[..., :, 1:], x[..., :, :-1])
    assert torch.equal(left[..., :, :-1], x[..., :, 1:])
    assert torch.equal(views[5], x.flip(-1))


def test_classification_report_by_hand() -> None:
    labels = [0, 0, 1, 1, 2, 2]
    preds = [0, 1, 1, 1, 1, 0]  # class 2 never predicted: precision 0 by convention
    report = classification_report(labels, preds, ["a", "b", "c"])
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 1, 0]]
    assert report["accuracy"] == pytest.approx(0.5)
    a, b, c = report["per_class"]
    assert (a["precision"], a["recall"]) == pytest.approx((0.5, 0.5))
    assert (b["precision"], b["recall"], b["f1"]) == pytest.approx((0.5, 1.0, 2 / 3))
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == (0.0, 0.0, 0.0, 2)
    _assert_consistent(report)


def test_eval_view_geometry() -> None:
    images = torch.randint(0, 256, (2, 3, 40, 60), dtype=torch.uint8)
    assert eval_view(images, 32).shape == (2, 3, 32, 32)
    assert eval_view(images, 24, 28).shape == (2, 3, 24, 24)  # ImageNet-style: resize, centre crop
    assert eval_view(images, 64).shape == (2, 3, 64, 64) and eval_view(images, 64).dtype == torch.uint8
    same = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    assert eval_view(same, 32) is same
    # A CIFAR-style net of input size 64 sees any image as its 32x32 version upsampled.
    torch.testing.assert_close(eval_view(images, 64), eval_view(eval_view(images, 32), 64), rtol=0, atol=0)


def test_keyvalue_arguments() -> None:
    argv = ["ckpt=a.ckpt", "data.root=/d", "tta=flip", "--out-dir", "x=y"]
    assert keyvalue_to_options(argv, ["ckpt", "data.root", "tta"]) == [
        "--ckpt", "a.ckpt", "--data-root", "/d", "--tta", "flip", "--out-dir", "x=y",
    ]  # fmt: skip


def _one_line_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cifar-eval: error: ") and "\n" not in err, err
    return err


def test_refused_checkpoints_give_one_line_errors(ckpt: Path, tmp_path: Path, capsys) -> None:
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"config": Evil(marker)}}, evil)
    assert "refused" in _one_line_error(capsys, [f"ckpt={evil}", "device=cpu"])
    assert not marker.exists()

    # The stored config names another model than the weights belong to.
    other = tmp_path / "other.ckpt"
    content = torch.load(ckpt, map_location="cpu", weights_only=True)
    content["hyper_parameters"]["config"]["model"]["depth"] = 20
    torch.save(content, other)
    assert "do not fit" in _one_line_error(capsys, ["--ckpt", str(other)])

    bare = tmp_path / "bare.ckpt"
    torch.save({"state_dict": content["state_dict"]}, bare)
    assert "without the run config" in _one_line_error(capsys, ["--ckpt", str(bare)])

    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(ckpt.read_bytes()[:5000])
    assert "it is truncated" in _one_line_error(capsys, ["--ckpt", str(truncated)])

    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(pickle.dumps([1, 2, 3]))
    assert "a Python pickle of plain values" in _one_line_error(capsys, ["--ckpt", str(garbage)])
    with pytest.raises(CheckpointError):
        evaluate(tmp_path / "missing.ckpt")


def test_missing_data_gives_one_line_error(ckpt: Path, tmp_path: Path, capsys) -> None:
    err = _one_line_error(capsys, [f"ckpt={ckpt}", f"data.root={tmp_path / 'nowhere'}"])
    assert "does not exist" in err


@pytest.mark.slow
def test_cli_subprocess(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli(
        "cifar_resnets.cli.evaluate",
        [f"ckpt={ckpt}", "tta=flip", f"out_dir={out}", "batch_size=100", "device=cpu"],
        cwd=tmp_path,
    )
    assert "| Class | Precision | Recall | F1-Score | Support |" in proc.stdout
    assert (out / "eval_test_flip.md").is_file() and (out / "eval_test_flip_confusion.png").is_file()
    shutil.rmtree(out)
