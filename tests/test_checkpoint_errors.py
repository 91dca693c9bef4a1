"""Files that are not usable checkpoints: one kind and one line each, the same in every command."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import trained_run

from cifar_resnets.cli.evaluate import main as eval_main
from cifar_resnets.cli.predict import main as predict_main
from cifar_resnets.errors import CheckpointError
from cifar_resnets.inference.checkpoint import load_model, read_checkpoint


class _Touch:
    """Unpickling this calls ``Path.touch(marker)``: code in a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, synthetic_cifar10: Path) -> Path:
    return trained_run(tmp_path_factory, synthetic_cifar10) / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def content(ckpt: Path) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=True)


def _with_model(content: dict, path: Path, **changes) -> Path:
    changed = dict(content, hyper_parameters=json.loads(json.dumps(content["hyper_parameters"])))
    changed["hyper_parameters"]["config"]["model"].update(changes)
    torch.save(changed, path)
    return path


def _kind(path: Path) -> tuple[str, str]:
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    return err.value.kind, message


def test_not_a_checkpoint_at_all(tmp_path: Path) -> None:
    (tmp_path / "random.ckpt").write_bytes(np.random.default_rng(0).bytes(500))
    (tmp_path / "config.ckpt").write_text("model:\n  name: resnet20\n")
    kind, message = _kind(tmp_path / "random.ckpt")
    assert kind == "not_a_checkpoint" and "neither a zip archive (torch.save) nor a pickle" in message
    kind, message = _kind(tmp_path / "config.ckpt")
    assert kind == "not_a_checkpoint" and "it is text starting 'model:" in message
    assert _kind(tmp_path / "missing.ckpt")[0] == "missing"


def test_truncated_zip_and_pickle(ckpt: Path, content: dict, tmp_path: Path) -> None:
    raw = ckpt.read_bytes()
    for size in (100, len(raw) // 2, len(raw) - 10):
        (tmp_path / "cut.ckpt").write_bytes(raw[:size])
        kind, message = _kind(tmp_path / "cut.ckpt")
        assert kind == "truncated" and "it is truncated" in message, size
    legacy = tmp_path / "legacy.ckpt"
    torch.save(content, legacy, _use_new_zipfile_serialization=False)  # torch's pre-1.6 format
    assert load_model(legacy).num_classes == 10
    legacy.write_bytes(legacy.read_bytes()[:2000])
    assert _kind(legacy)[0] == "truncated"
    plain = tmp_path / "plain_cut.ckpt"
    plain.write_bytes(pickle.dumps({"state_dict": list(range(1000))})[:300])
    kind, message = _kind(plain)
    assert kind == "truncated" and "it is a truncated or damaged pickle" in message
    (tmp_path / "empty.ckpt").write_bytes(b"")
    kind, message = _kind(tmp_path / "empty.ckpt")
    assert kind == "truncated" and message.endswith("it is empty (0 bytes); the save was cut short")


def test_written_by_another_program(content: dict, tmp_path: Path) -> None:
    torch.save({k.removeprefix("net."): v for k, v in content["state_dict"].items()}, tmp_path / "weights.pt")
    kind, message = _kind(tmp_path / "weights.pt")
    assert kind == "foreign" and "a plain state dict" in message
    torch.save({"state_dict": content["state_dict"], "epoch": 3}, tmp_path / "lightning.ckpt")
    kind, message = _kind(tmp_path / "lightning.ckpt")
    assert kind == "foreign" and "without the run config cifar-train stores" in message
    torch.save([1, 2, 3], tmp_path / "list.pt")
    assert "a torch file holding a list" in _kind(tmp_path / "list.pt")[1]
    np.savez(tmp_path / "arrays.npz", a=np.zeros(3))
    kind, message = _kind(tmp_path / "arrays.npz")
    assert kind == "foreign" and "a zip archive that holds no torch checkpoint (a.npy)" in message
    with zipfile.ZipFile(tmp_path / "docs.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert _kind(tmp_path / "docs.zip")[0] == "foreign"
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    kind, message = _kind(tmp_path / "plain.pkl")
    assert kind == "foreign" and "a Python pickle of plain values" in message


@pytest.mark.parametrize(
    "writer", ["torch.save", "torch.save legacy", "pickle.dump", "pickle protocol 0", "pickle protocol 1"]
)
def test_code_is_refused_and_never_run(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "code.ckpt"
    payload = {"state_dict": {}, "hyper_parameters": {"config": _Touch(marker)}}
    if writer == "pickle.dump":
        path.write_bytes(pickle.dumps(payload))
    elif writer.startswith("pickle protocol"):  # no header: the opcodes alone say it is a pickle
        path.write_bytes(pickle.dumps(payload, protocol=int(writer[-1])))
    else:
        torch.save(payload, path, _use_new_zipfile_serialization=writer == "torch.save")
    kind, message = _kind(path)
    assert kind == "code" and "refused, nothing in it was run: loading it would call " in message
    assert not marker.exists()


def test_weights_of_another_model(content: dict, tmp_path: Path) -> None:
    kind, message = _kind(_with_model(content, tmp_path / "deeper.ckpt", depth=20))
    assert kind == "other_model" and "weights do not fit model 'resnet20'" in message
    kind, message = _kind(_with_model(content, tmp_path / "shortcut.ckpt", shortcut="B"))
    assert kind == "other_model" and "mismatched keys" in message
    kind, message = _kind(_with_model(content, tmp_path / "unknown.ckpt", _target_="os.system"))
    assert kind == "other_model" and "model._target_='os.system' is not a net of this suite" in message
    kind, message = _kind(_with_model(content, tmp_path / "newer.ckpt", width_multiplier=2))
    assert kind == "other_model" and "width_multiplier" in message


def test_rebuilding_ignores_the_pretrained_weights_named_at_training_time(
    content: dict, tmp_path: Path
) -> None:
    """A transfer run's checkpoint holds its weights; the file it started from may be long gone."""
    path = _with_model(content, tmp_path / "transfer.ckpt", weights_path=str(tmp_path / "gone.pth"))
    assert read_checkpoint(path)["hyper_parameters"]["config"]["model"]["weights_path"].endswith("gone.pth")
    assert load_model(path).num_classes == 10


def _one_line(capsys, main, argv: list[str], prog: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{prog}: error: ") and "\n" not in err, err
    return err


def test_the_command_lines_print_the_same_one_line(ckpt: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "random.ckpt").write_bytes(b"\x00" + np.random.default_rng(1).bytes(64))
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(ckpt.read_bytes()[:4000])
    np.save(tmp_path / "x.npy", np.zeros((1, 32, 32, 3), np.uint8))
    for path in (tmp_path / "random.ckpt", cut):
        with pytest.raises(CheckpointError) as err:
            read_checkpoint(path)
        predict_args = [
            "--ckpt",
            str(path),
            "--input",
            str(tmp_path / "x.npy"),
            "--out",
            str(tmp_path / "o.csv"),
        ]
        assert _one_line(capsys, predict_main, predict_args, "cifar-predict").endswith(str(err.value))
        assert _one_line(capsys, eval_main, [f"ckpt={path}"], "cifar-eval").endswith(str(err.value))
    assert not (tmp_path / "o.csv").exists()


def test_a_config_edited_to_a_net_of_the_same_shapes_is_refused(content: dict, tmp_path: Path) -> None:
    """ResNet and plain net of one depth share every weight name and shape: the stored fingerprint tells."""
    assert content["hyper_parameters"]["model_fingerprint"]
    kind, message = _kind(_with_model(content, tmp_path / "plain.ckpt", residual=False, name="plain8"))
    assert kind == "other_model" and "is not the one its weights were trained with" in message
    # Checkpoints written before fingerprints were stored are read as they are.
    old = dict(content, hyper_parameters=dict(content["hyper_parameters"]))
    del old["hyper_parameters"]["model_fingerprint"]
    torch.save(old, tmp_path / "old.ckpt")
    assert load_model(tmp_path / "old.ckpt").num_classes == 10


def _with_hparams(content: dict, path: Path, **changes) -> Path:
    changed = dict(content, hyper_parameters=json.loads(json.dumps(content["hyper_parameters"])))
    for key, value in changes.items():
        target = changed["hyper_parameters"]
        *parents, last = key.split("__")
        for parent in parents:
            target = target[parent]
        target[last] = value
    torch.save(changed, path)
    return path


EDITED_HPARAMS = [
    ({"num_classes": "ten"}, "hyper_parameters.num_classes='ten' must be an integer >= 2"),
    ({"data_info__std": [0, 0, 0]}, "hyper_parameters.data_info.std=[0, 0, 0] must be a list of 3 items"),
    ({"data_info__mean": [0.5, 0.5]}, "hyper_parameters.data_info.mean=[0.5, 0.5] must be a list of 3 items"),
    ({"data_info__image_size": 0}, "hyper_parameters.data_info.image_size=0 must be an integer >= 8"),
    (
        {"data_info__classes": ["cat", "dog"]},
        "hyper_parameters.data_info.classes=['cat', 'dog'] must be a list of 10",
    ),
    ({"data_info": ["x"]}, "hyper_parameters.data_info is not a mapping"),
]


@pytest.mark.parametrize("changes,line", EDITED_HPARAMS, ids=[str(c) for c, _ in EDITED_HPARAMS])
def test_edited_hyper_parameters_are_one_line(
    content: dict, tmp_path: Path, capsys, changes: dict, line: str, file_hashes
) -> None:
    path = _with_hparams(content, tmp_path / "edited.ckpt", **changes)
    np.save(tmp_path / "x.npy", np.zeros((1, 32, 32, 3), np.uint8))
    before = file_hashes(tmp_path)
    argv = ["--ckpt", str(path), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "p.csv")]
    err = _one_line(capsys, predict_main, argv, "cifar-predict")
    assert f"{path}: {line}" in err and "edited or damaged" in err, err
    assert file_hashes(tmp_path) == before


def test_checkpoint_error_survives_pickling_with_its_kind() -> None:
    """joblib sends a failed sweep job's exception back to the sweep process (a weights file that does
    not fit, say)."""
    err = pickle.loads(pickle.dumps(CheckpointError("w.pt does not fit this backbone", "other_model")))
    assert str(err) == "w.pt does not fit this backbone" and err.kind == "other_model"
