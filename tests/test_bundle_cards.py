"""An export bundle whose card was edited is refused in one line, before any value of it is used.

Each case edits one value of ``model.json`` as a user might (a class list cut short, a zero image size,
a mean/std of the wrong length, a zero std, the model turned into the plain net) and runs cifar-predict
and cifar-eval on the bundle: exit status 2, one line naming the card and the key, the bundle's files
hashed equal before and after.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("safetensors")

from cifar_resnets.cli.evaluate import main as eval_main  # noqa: E402
from cifar_resnets.cli.predict import main as predict_main  # noqa: E402
from cifar_resnets.export.exporter import export_checkpoint  # noqa: E402
from cifar_resnets.inference.checkpoint import load_model  # noqa: E402


@pytest.fixture(scope="module")
def bundle(tiny_synthetic_ckpt: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    export_checkpoint(tiny_synthetic_ckpt, out, onnx=False)
    return out


EDITS = [
    ("classes", ["airplane", "automobile"], "classes=['airplane', 'automobile'] must be a list of 10 items"),
    ("image_size", 0, "image_size=0 must be an integer >= 8"),
    ("mean", [0.5, 0.5], "mean=[0.5, 0.5] must be a list of 3 items"),
    ("std", [0.25, 0.25, 0.25, 0.25], "std=[0.25, 0.25, 0.25, 0.25] must be a list of 3 items"),
    (
        "std",
        [0.0, 0.0, 0.0],
        "std=[0.0, 0.0, 0.0] must be a list of 3 items that are each a finite number > 0",
    ),
    ("std", "wide", "std='wide' must be a list of 3 items"),
    ("num_classes", "ten", "num_classes='ten' must be an integer >= 2"),
    ("num_classes", 1, "num_classes=1 must be an integer >= 2"),
    ("resize_size", 4, "resize_size=4 must be an integer >= 8"),
    ("metrics", [1, 2], "metrics must be a mapping"),
    ("mean", None, "has no mean"),
    ("model", {"residual": False}, "is not the one its weights were trained with"),
]


def _edited(bundle: Path, tmp_path: Path, key: str, value: object) -> Path:
    edited = tmp_path / "edited"
    shutil.copytree(bundle, edited)
    card = json.loads((edited / "model.json").read_text())
    if value is None:
        del card[key]
    elif key == "model":
        card["model"] = {**card["model"], **value, "name": "plain8"}
    else:
        card[key] = value
    (edited / "model.json").write_text(json.dumps(card))
    return edited


def _one_line(capsys, main, argv: list[str], prog: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{prog}: error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize("key,value,line", EDITS, ids=[f"{k}={v}" for k, v, _ in EDITS])
def test_an_edited_card_is_one_line(
    bundle: Path, tmp_path: Path, capsys, key: str, value: object, line: str, file_hashes
) -> None:
    edited = _edited(bundle, tmp_path, key, value)
    np.save(tmp_path / "x.npy", np.zeros((2, 32, 32, 3), np.uint8))
    before = file_hashes(edited, tmp_path / "x.npy")
    argv = ["--ckpt", str(edited), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "p.csv")]
    err = _one_line(capsys, predict_main, argv, "cifar-predict")
    assert str(edited / "model.json") in err and line in err, err
    assert "export the checkpoint again" in err or "edited after training" in err, err
    assert _one_line(
        capsys, eval_main, ["--ckpt", str(edited), "--out-dir", str(tmp_path / "e")], "cifar-eval"
    ) == (err.replace("cifar-predict", "cifar-eval", 1))
    assert file_hashes(edited, tmp_path / "x.npy") == before
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "e").exists()


def test_an_unedited_card_and_one_without_a_fingerprint_load(bundle: Path, tmp_path: Path) -> None:
    assert load_model(bundle).num_classes == 10
    card = json.loads((bundle / "model.json").read_text())
    del card["model_fingerprint"]  # a bundle exported before fingerprints were stored
    old = tmp_path / "old"
    shutil.copytree(bundle, old)
    (old / "model.json").write_text(json.dumps(card))
    assert load_model(old).classes == load_model(bundle).classes
