"""cifar-eval, cifar-predict and cifar-export never write onto an input, and a failed write is one line.

Each case is the command as a user types it (in process, one as a subprocess): exit status 2, one
``<prog>: error:`` line naming the path and the cause, and every input hashed equal before and after.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from train_helpers import run_cli

from cifar_resnets.cli.evaluate import main as eval_main
from cifar_resnets.cli.export import main as export_main
from cifar_resnets.cli.predict import main as predict_main
from cifar_resnets.inference import outputs

MAINS = {"cifar-predict": predict_main, "cifar-eval": eval_main, "cifar-export": export_main}


def _one_line_error(capsys, prog: str, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        MAINS[prog](argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{prog}: error: ") and "\n" not in err, err
    return err


@pytest.fixture
def images(tmp_path: Path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8))
    return path


@pytest.fixture
def ckpt(tiny_synthetic_ckpt: Path, tmp_path: Path) -> Path:
    """A copy of the session's checkpoint in its own run folder, so a test may try to harm it."""
    copy = tmp_path / "run" / "checkpoints" / "last.ckpt"
    copy.parent.mkdir(parents=True)
    shutil.copy(tiny_synthetic_ckpt, copy)
    return copy


def test_predict_out_onto_the_checkpoint_is_refused_as_typed(ckpt: Path, images: Path, file_hashes) -> None:
    before = file_hashes(ckpt, images)
    proc = run_cli(
        "cifar_resnets.cli.predict",
        ["--ckpt", str(ckpt), "--input", "x.npy", "--out", str(ckpt)],
        cwd=images.parent,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"cifar-predict: error: --out {ckpt} would overwrite the input {ckpt}; write the output elsewhere"
    )
    assert file_hashes(ckpt, images) == before


def test_predict_out_onto_an_input_is_refused(ckpt: Path, images: Path, capsys, file_hashes) -> None:
    before = file_hashes(ckpt, images)
    labels = images.with_name("labels.npy")
    np.save(labels, np.zeros(4, np.int64))
    for target in (images, labels):
        argv = ["--ckpt", str(ckpt), "--input", str(images), "--labels", str(labels), "--out", str(target)]
        assert f"would overwrite the input {target}" in _one_line_error(capsys, "cifar-predict", argv)
    # The same file by another name (a link) is the same input.
    link = images.with_name("alias.npy")
    link.symlink_to(images)
    err = _one_line_error(
        capsys, "cifar-predict", ["--ckpt", str(ckpt), "--input", str(images), "--out", str(link)]
    )
    assert "would overwrite the input" in err
    assert file_hashes(ckpt, images) == before


def test_predict_writes_where_asked_and_replaces_its_own_csv(ckpt: Path, images: Path, capsys) -> None:
    out = images.with_name("p.csv")
    for _ in range(2):  # a second run replaces the first CSV in one step
        predict_main(["--ckpt", str(ckpt), "--input", str(images), "--out", str(out), "--device", "cpu"])
        assert out.read_text().splitlines()[0] == "id,label"
    assert not list(out.parent.glob(".*partial*"))


@pytest.mark.parametrize("prog", ["cifar-predict", "cifar-eval", "cifar-export"])
def test_an_output_below_a_file_is_one_line(prog: str, ckpt: Path, images: Path, capsys, file_hashes) -> None:
    blocker = images.with_name("a-file")
    blocker.write_text("keep me")
    before = file_hashes(ckpt, images, blocker)
    argv = {
        "cifar-predict": ["--ckpt", str(ckpt), "--input", str(images), "--out", str(blocker / "p.csv")],
        "cifar-eval": ["--ckpt", str(ckpt), "--out-dir", str(blocker / "eval")],
        "cifar-export": ["--ckpt", str(ckpt), "--out", str(blocker / "export"), "--no-onnx"],
    }[prog]
    err = _one_line_error(capsys, prog, argv)
    assert str(blocker) in err and "is a file, not a folder" in err, err
    assert file_hashes(ckpt, images, blocker) == before


@pytest.mark.parametrize("prog", ["cifar-eval", "cifar-export"])
def test_an_output_folder_naming_a_file_is_one_line(prog: str, ckpt: Path, capsys, file_hashes) -> None:
    existing = ckpt.parent.parent / "notes.txt"
    existing.write_text("keep me")
    before = file_hashes(ckpt.parent.parent)
    flag = "--out-dir" if prog == "cifar-eval" else "--out"
    err = _one_line_error(capsys, prog, ["--ckpt", str(ckpt), flag, str(existing)])
    assert err.endswith(f"{flag} {existing} is a file; give a folder for the output files"), err
    assert file_hashes(ckpt.parent.parent) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("prog", ["cifar-predict", "cifar-eval", "cifar-export"])
def test_a_read_only_output_folder_is_one_line(prog: str, ckpt: Path, images: Path, capsys) -> None:
    locked = images.with_name("locked")
    locked.mkdir()
    locked.chmod(0o555)
    try:
        argv = {
            "cifar-predict": ["--ckpt", str(ckpt), "--input", str(images), "--out", str(locked / "p.csv")],
            "cifar-eval": ["--ckpt", str(ckpt), "--out-dir", str(locked)],
            "cifar-export": ["--ckpt", str(ckpt), "--out", str(locked), "--no-onnx"],
        }[prog]
        assert "permission denied" in _one_line_error(capsys, prog, argv)
    finally:
        locked.chmod(0o755)


def _disk_full(fd: int) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_no_space_left_keeps_the_old_output_and_says_so(
    ckpt: Path, images: Path, capsys, monkeypatch, file_hashes
) -> None:
    """A full disk (the data is refused when it is flushed) leaves the previous CSV whole."""
    out = images.with_name("p.csv")
    argv = ["--ckpt", str(ckpt), "--input", str(images), "--out", str(out), "--device", "cpu"]
    predict_main(argv)
    capsys.readouterr()
    before = file_hashes(out, ckpt, images)

    monkeypatch.setattr(outputs.os, "fsync", _disk_full)
    err = _one_line_error(capsys, "cifar-predict", [*argv, "--probs"])
    assert (
        err
        == f"cifar-predict: error: cannot write {out}: no space left on the device; nothing there was changed"
    )
    assert file_hashes(out, ckpt, images) == before
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []


def test_eval_no_space_left_is_one_line(ckpt: Path, capsys, monkeypatch, file_hashes) -> None:
    before = file_hashes(ckpt)
    monkeypatch.setattr(outputs.os, "fsync", _disk_full)
    err = _one_line_error(capsys, "cifar-eval", ["--ckpt", str(ckpt), "--device", "cpu"])
    assert "eval_test_confusion.png: no space left on the device" in err, err
    assert file_hashes(ckpt) == before
    assert not list(ckpt.parent.parent.glob("eval_*")) and not list(ckpt.parent.parent.glob(".*"))


def test_export_onto_the_bundle_it_reads_is_refused(ckpt: Path, tmp_path: Path, capsys, file_hashes) -> None:
    pytest.importorskip("safetensors")
    bundle = tmp_path / "bundle"
    export_main(["--ckpt", str(ckpt), "--out", str(bundle), "--no-onnx"])
    capsys.readouterr()
    before = file_hashes(bundle)
    for source in (bundle, bundle / "model.safetensors"):
        err = _one_line_error(
            capsys, "cifar-export", ["--ckpt", str(source), "--out", str(bundle), "--no-onnx"]
        )
        assert "would overwrite the input" in err, err
    # cifar-predict with the bundle's card as its CSV.
    np.save(tmp_path / "x.npy", np.zeros((1, 32, 32, 3), np.uint8))
    argv = ["--ckpt", str(bundle / "model.safetensors"), "--input", str(tmp_path / "x.npy")]
    err = _one_line_error(capsys, "cifar-predict", [*argv, "--out", str(bundle / "model.json")])
    assert "would overwrite the input" in err, err
    assert file_hashes(bundle) == before


def test_export_no_space_left_is_one_line(
    ckpt: Path, tmp_path: Path, capsys, monkeypatch, file_hashes
) -> None:
    pytest.importorskip("safetensors")
    before = file_hashes(ckpt)
    monkeypatch.setattr(outputs.os, "fsync", _disk_full)
    out = tmp_path / "bundle"
    err = _one_line_error(capsys, "cifar-export", ["--ckpt", str(ckpt), "--out", str(out), "--no-onnx"])
    assert err.startswith(f"cifar-export: error: cannot write {out / 'model.safetensors'}: no space left"), (
        err
    )
    assert file_hashes(ckpt) == before and list(out.iterdir()) == []
