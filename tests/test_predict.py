"""cifar-predict: every method on every input kind, CSV ensembles by hand, and refused inputs."""

from __future__ import annotations

import csv
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from train_helpers import Evil, run_cli, trained_run

from cifar_resnets.cli.predict import main
from cifar_resnets.data.cifar_files import load_cifar_pickle
from cifar_resnets.data.images import read_image
from cifar_resnets.errors import ConfigError, InputError
from cifar_resnets.inference.ensembles import ensemble_csvs, majority_vote
from cifar_resnets.inference.inputs import read_image_folder, read_input, read_npy_images
from cifar_resnets.inference.methods import predict, predict_csvs
from cifar_resnets.inference.predictions import write_predictions
from cifar_resnets.inference.preprocess import Preprocess
from cifar_resnets.inference.thresholds import apply_thresholds, tune_thresholds


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, synthetic_cifar10: Path) -> Path:
    return trained_run(tmp_path_factory, synthetic_cifar10) / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def test_batch(synthetic_cifar10: Path) -> Path:
    return synthetic_cifar10 / "cifar-10-batches-py" / "test_batch"


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_every_method_on_a_labelled_pickle(ckpt: Path, test_batch: Path, tmp_path: Path) -> None:
    results = {m: predict(test_batch, [ckpt], m, device="cpu") for m in ("plain", "class_specialized")}
    results["tta"] = predict(test_batch, [ckpt], "tta", tta="flip", device="cpu")
    results["adaptive"] = predict(test_batch, [ckpt], "adaptive", tta="flip", device="cpu")
    results["ensemble"] = predict(test_batch, [ckpt, ckpt], "ensemble", device="cpu")
    for method, result in results.items():
        assert len(result.ids) == 256 and result.ids[:2] == ["0", "1"], method
        assert 0.0 <= result.summary["accuracy"] <= 1.0, method
        assert result.probs.shape == (256, 10) and np.allclose(result.probs.sum(1), 1, atol=1e-4)
    plain = results["plain"]
    assert plain.summary["accuracy"] > 0.5
    # An ensemble of one checkpoint with itself is that checkpoint.
    assert results["ensemble"].labels == plain.labels
    np.testing.assert_allclose(results["ensemble"].probs, plain.probs, atol=1e-6)
    # Tuned methods report the validation split; tuning never lowers validation accuracy.
    for method, base in (("class_specialized", "plain"), ("adaptive", "tta")):
        val = results[method].summary["validation_accuracy"]
        assert results[method].summary["validation_images"] == 128
        assert val[method] >= val[base], (method, val)
        assert len(results[method].summary["thresholds"]) == 3  # 30% of CIFAR-10's classes
    # The thresholds do what the rule says on these very probabilities.
    spec = results["class_specialized"]
    thresholds = np.zeros(10)
    for name, value in spec.summary["thresholds"].items():
        thresholds[spec.classes.index(name)] = value
    assert spec.labels == [spec.classes[i] for i in apply_thresholds(spec.probs, thresholds)]

    out = write_predictions(results["tta"], tmp_path / "sub" / "tta.csv", probs=True)
    rows = _read_csv(out)
    assert list(rows[0])[:3] == ["id", "label", "prob_airplane"] and len(rows[0]) == 12
    assert [r["label"] for r in rows] == results["tta"].labels
    assert list(_read_csv(write_predictions(plain, tmp_path / "p.csv"))[0]) == ["id", "label"]


def test_npy_layouts_match_the_pickle(ckpt: Path, test_batch: Path, tmp_path: Path) -> None:
    images, labels = load_cifar_pickle(test_batch)
    np.save(tmp_path / "nchw.npy", images)
    np.save(tmp_path / "nhwc.npy", images.transpose(0, 2, 3, 1))
    np.save(tmp_path / "labels.npy", labels)
    reference = predict(test_batch, [ckpt], "tta", tta="flip", device="cpu")
    for name in ("nchw.npy", "nhwc.npy"):
        result = predict(
            tmp_path / name, [ckpt], "tta", tta="flip", labels_path=tmp_path / "labels.npy", device="cpu"
        )
        assert result.labels == reference.labels
        assert result.summary["accuracy"] == reference.summary["accuracy"]
    unlabelled = predict(tmp_path / "nhwc.npy", [ckpt], "plain", device="cpu")
    assert "accuracy" not in unlabelled.summary


def _image_folder(test_batch: Path, folder: Path) -> tuple[np.ndarray, dict[str, int]]:
    """PNG/JPEG files in several modes from the test images, a corrupt file and a non-image."""
    images, labels = load_cifar_pickle(test_batch)
    hwc = images.transpose(0, 2, 3, 1)
    folder.mkdir()
    truth = {}
    for i in range(12):
        name = f"img{i:02d}.png"
        Image.fromarray(hwc[i]).save(folder / name)
        truth[name] = int(labels[i])
    grey = Image.fromarray(hwc[12]).convert("L")
    grey.save(folder / "grey.png")
    Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257).save(folder / "grey16.png")  # 16-bit PNG
    Image.fromarray(hwc[13]).convert("RGBA").save(folder / "rgba.png")
    Image.fromarray(hwc[14]).convert("P").save(folder / "palette.png")
    Image.fromarray(hwc[15]).resize((64, 48)).save(folder / "big.jpg", quality=95)
    for name, i in (
        ("grey.png", 12),
        ("grey16.png", 12),
        ("rgba.png", 13),
        ("palette.png", 14),
        ("big.jpg", 15),
    ):
        truth[name] = int(labels[i])
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    (folder / "notes.txt").write_text("not an image")
    return hwc, truth


def test_folder_of_images(ckpt: Path, test_batch: Path, tmp_path: Path) -> None:
    hwc, truth = _image_folder(test_batch, tmp_path / "images")
    assert Image.open(tmp_path / "images" / "grey16.png").mode.startswith("I")
    grey8, grey16 = (
        np.asarray(read_image(tmp_path / "images" / "grey.png")),
        np.asarray(read_image(tmp_path / "images" / "grey16.png")),
    )
    assert np.array_equal(grey8, grey16) and grey8.shape == (32, 32, 3)  # rescaled, not clipped to white
    assert np.array_equal(np.asarray(read_image(tmp_path / "images" / "img00.png")), hwc[0])

    with open(tmp_path / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "label"])
        writer.writerows(sorted(truth.items()))
    result = predict(
        tmp_path / "images", [ckpt], "adaptive", "flip", labels_path=tmp_path / "labels.csv", device="cpu"
    )
    assert result.ids == sorted(truth)  # file names, sorted
    skipped = dict(result.summary["skipped"])
    assert list(skipped) == ["broken.png", "notes.txt"]  # every other entry, with its reason
    assert skipped["broken.png"].startswith("truncated or corrupt") and skipped["notes.txt"].startswith(
        "not an image"
    )
    assert 0.0 <= result.summary["accuracy"] <= 1.0
    plain_png = predict(tmp_path / "images", [ckpt], "plain", device="cpu")
    pickle_plain = predict(test_batch, [ckpt], "plain", device="cpu")
    for i in range(12):  # lossless PNGs of the test images predict exactly as the pickle does
        assert plain_png.labels[plain_png.ids.index(f"img{i:02d}.png")] == pickle_plain.labels[i]


def test_decompression_bombs_are_refused(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "bombs"
    folder.mkdir()
    Image.new("RGB", (32, 32)).save(folder / "a.png")
    Image.new("RGB", (8, 8)).save(folder / "small.png")
    pre = Preprocess(32, (0.5,) * 3, (0.25,) * 3)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 600)  # 1024 px: between the warning and error limits
    data = read_image_folder(folder, [pre])
    assert data.ids == ["small.png"] and data.views[pre].shape == (1, 3, 32, 32)
    assert data.skipped[0][0] == "a.png" and data.skipped[0][1].startswith("too large: a possible")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1024 px > 2x the limit: Pillow's own error
    assert read_image_folder(folder, [pre]).ids == ["small.png"]


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_majority_vote_by_hand(tmp_path: Path) -> None:
    ids = ["a", "b", "c", "d", "e"]
    votes = [
        ["cat", "dog", "cat", "ship", "frog"],
        ["cat", "cat", "dog", "truck", "frog"],
        ["dog", "cat", "bird", "deer", "frog"],
    ]
    # a: cat 2-1; b: cat 2-1; c: three-way tie -> first CSV's cat; d: tie -> ship; e: frog.
    expected = ["cat", "cat", "cat", "ship", "frog"]
    assert majority_vote(votes) == expected
    assert majority_vote([["x", "y"], ["y", "x"]]) == ["x", "y"]  # 1-1 ties: the first CSV
    paths = []
    for k, labels in enumerate(votes):
        order = list(range(5)) if k != 1 else [4, 3, 2, 1, 0]  # row order must not matter
        paths.append(
            _write_csv(tmp_path / f"v{k}.csv", ["id", "label"], [[ids[i], labels[i]] for i in order])
        )
    _write_csv(
        tmp_path / "truth.csv", ["id", "label"], [[i, t] for i, t in zip(ids, expected[:4] + ["deer"])]
    )
    result = predict_csvs(paths, tmp_path / "truth.csv")
    assert result.ids == ids and result.labels == expected and result.probs is None
    assert result.summary["accuracy"] == pytest.approx(0.8)

    _write_csv(tmp_path / "indices.csv", ["id", "label"], [[i, 3] for i in ids])
    with pytest.raises(InputError, match="class index"):  # a vote has no class order to name indices
        predict_csvs(paths, tmp_path / "indices.csv")

    out = tmp_path / "vote.csv"
    main(["--method", "ensemble", "--csv", *map(str, paths), "--out", str(out)])
    assert [(r["id"], r["label"]) for r in _read_csv(out)] == list(zip(ids, expected))


def test_csv_probability_average_by_hand(tmp_path: Path) -> None:
    header = ["id", "label", "prob_cat", "prob_dog"]
    a = _write_csv(tmp_path / "a.csv", header, [["0", "cat", 0.6, 0.4], ["1", "dog", 0.45, 0.55]])
    b = _write_csv(tmp_path / "b.csv", header, [["0", "dog", 0.3, 0.7], ["1", "dog", 0.2, 0.8]])
    c = _write_csv(tmp_path / "c.csv", header, [["0", "cat", 0.55, 0.45], ["1", "cat", 0.9, 0.1]])
    result = ensemble_csvs([a, b, c])
    # mean cat prob: row 0 (0.6+0.3+0.55)/3 = 0.4833 -> dog (a vote would say cat); row 1 0.5167 -> cat
    np.testing.assert_allclose(result.probs[:, 0], [1.45 / 3, 1.55 / 3])
    assert result.labels == ["dog", "cat"] and result.summary["rule"] == "probability average"
    mixed = ensemble_csvs(
        [a, b, _write_csv(tmp_path / "n.csv", ["id", "label"], [["0", "cat"], ["1", "cat"]])]
    )
    assert mixed.labels == ["cat", "dog"] and mixed.probs is None  # not all have probs: majority vote


def test_threshold_rule_and_tuning_by_hand() -> None:
    probs = np.array([[0.5, 0.4, 0.1], [0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.35, 0.05, 0.6]])
    assert apply_thresholds(probs, np.array([0.6, 0, 0])).tolist() == [1, 0, 2, 2]
    assert apply_thresholds(probs, np.array([0.9, 0.9, 0.9])).tolist() == [0, 0, 2, 2]  # none pass: argmax
    labels = np.array([1, 0, 2, 2])
    tuned = tune_thresholds(probs, labels, hard=[0])
    assert tuned[0] == pytest.approx(0.55) and tuned[1:].tolist() == [0, 0]  # lowest value fixing row 0


def _one_line_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cifar-predict: error: ") and "\n" not in err, err
    return err


def test_bad_inputs_are_refused_with_one_line(ckpt: Path, tmp_path: Path, capsys) -> None:
    marker = tmp_path / "marker"
    out = ["--out", str(tmp_path / "o.csv"), "--device", "cpu"]
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([Evil(marker), {"a": 1}], dtype=object), allow_pickle=True)
    assert "refused" in _one_line_error(capsys, ["--ckpt", str(ckpt), "--input", str(objects), *out])
    floats = tmp_path / "floats.npy"
    np.save(floats, np.zeros((2, 32, 32, 3), np.float32))
    assert "uint8" in _one_line_error(capsys, ["--ckpt", str(ckpt), "--input", str(floats), *out])
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros((2, 3072), np.uint8))
    assert "shape" in _one_line_error(capsys, ["--ckpt", str(ckpt), "--input", str(flat), *out])

    evil_pickle = tmp_path / "evil_batch"
    evil_pickle.write_bytes(pickle.dumps({b"data": Evil(marker)}, protocol=2))
    assert "refuses" in _one_line_error(capsys, ["--ckpt", str(ckpt), "--input", str(evil_pickle), *out])
    evil_ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"w": Evil(marker)}}, evil_ckpt)
    good = tmp_path / "ok.npy"
    np.save(good, np.zeros((2, 32, 32, 3), np.uint8))
    assert "refused" in _one_line_error(capsys, ["--ckpt", str(evil_ckpt), "--input", str(good), *out])
    assert not marker.exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "broken.jpg").write_bytes(b"nope")
    assert "no readable images" in _one_line_error(capsys, ["--ckpt", str(ckpt), "--input", str(empty), *out])
    assert "ensemble" in _one_line_error(
        capsys, ["--ckpt", str(ckpt), "--ckpt", str(ckpt), "--input", str(good), *out]
    )
    with pytest.raises(InputError):
        read_npy_images(tmp_path / "missing.npy")
    with pytest.raises(InputError, match="does not exist"):
        read_input(tmp_path / "missing")


def test_tuning_without_a_validation_split_says_so(ckpt: Path, test_batch: Path, tmp_path: Path) -> None:
    content = torch.load(ckpt, map_location="cpu", weights_only=True)
    content["hyper_parameters"]["config"]["data"]["val_size"] = 0
    no_val = tmp_path / "no_val.ckpt"
    torch.save(content, no_val)
    with pytest.raises(ConfigError, match="no validation split"):
        predict(test_batch, [no_val], "class_specialized", device="cpu")
    with pytest.raises(ConfigError, match="validation split"):
        predict(test_batch, [ckpt], "adaptive", data_root=str(tmp_path / "nowhere"), device="cpu")


@pytest.mark.slow
def test_cli_subprocess_npy_with_probs(ckpt: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8))
    run_cli(
        "cifar_resnets.cli.predict",
        ["--ckpt", str(ckpt), "--input", "x.npy", "--method", "tta", "--out", "p.csv", "--probs"],
        cwd=tmp_path,
    )
    rows = _read_csv(tmp_path / "p.csv")
    assert [r["id"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert all(abs(sum(float(v) for k, v in r.items() if k.startswith("prob_")) - 1) < 1e-4 for r in rows)


def _mixed_folder(test_batch: Path, folder: Path) -> None:
    """Every kind of entry a user's folder may hold: images, other files, folders and links."""
    images, _ = load_cifar_pickle(test_batch)
    hwc = images.transpose(0, 2, 3, 1)
    (folder / "sub" / "deeper").mkdir(parents=True)
    (folder / "empty").mkdir()
    Image.fromarray(hwc[0]).save(folder / "a.png")
    frames = [Image.fromarray(hwc[1]).convert("P"), Image.fromarray(hwc[2]).convert("P")]
    frames[0].save(folder / "b.gif", save_all=True, append_images=frames[1:], duration=40)
    Image.fromarray(hwc[3]).convert("P").save(folder / "gif_named.png", format="GIF")
    Image.fromarray(hwc[4]).save(folder / "scan.tiff")
    Image.fromarray(hwc[5]).save(folder / "sub" / "c.jpg", quality=95)
    Image.fromarray(hwc[6]).save(folder / "sub" / "deeper" / "d.webp", lossless=True)
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.jpg").write_bytes((folder / "sub" / "c.jpg").read_bytes()[:300])
    (folder / "link_to_sub").symlink_to(folder / "sub", target_is_directory=True)
    (folder / "dangling.png").symlink_to(folder / "nowhere.png")


def test_every_folder_entry_is_predicted_or_listed(
    ckpt: Path, test_batch: Path, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "mixed"
    _mixed_folder(test_batch, folder)
    flat = predict(folder, [ckpt], "plain", device="cpu")
    assert flat.ids == ["a.png", "b.gif", "gif_named.png"]  # GIFs (first frame), whatever their name
    reasons = dict(flat.summary["skipped"])
    assert sorted(reasons) == sorted(
        ["broken.jpg", "dangling.png", "empty", "link_to_sub", "notes.txt", "scan.tiff", "sub"]
    )
    assert reasons["sub"] == reasons["empty"] == "a subfolder (pass --recursive to read subfolders)"
    assert reasons["scan.tiff"].startswith("a TIFF image, not one of the accepted formats")
    assert reasons["notes.txt"].startswith("not an image")
    assert reasons["broken.jpg"].startswith("truncated or corrupt")
    assert reasons["link_to_sub"] == "a link to a folder (not followed)"
    assert reasons["dangling.png"] == "a broken link"

    deep = predict(folder, [ckpt], "plain", device="cpu", recursive=True)
    assert deep.ids == ["a.png", "b.gif", "gif_named.png", "sub/c.jpg", "sub/deeper/d.webp"]
    assert sorted(dict(deep.summary["skipped"])) == sorted(
        ["broken.jpg", "dangling.png", "empty", "link_to_sub", "notes.txt", "scan.tiff"]
    )
    assert dict(deep.summary["skipped"])["empty"] == "an empty folder"
    np.testing.assert_allclose(deep.probs[:3], flat.probs, atol=1e-6)

    out = tmp_path / "preds.csv"
    main(["--ckpt", str(ckpt), "--input", str(folder), "--recursive", "--out", str(out), "--device", "cpu"])
    printed = capsys.readouterr().out
    assert "skipped 6 entries of the input:" in printed
    for ident, reason in deep.summary["skipped"]:
        assert f"  {ident}: {reason}" in printed
    assert [r["id"] for r in _read_csv(out)] == deep.ids  # the CSV holds the predictions only


def test_summary_lists_the_first_skipped_entries_and_counts_the_rest() -> None:
    from cifar_resnets.cli.predict import SHOWN_SKIPPED, summary_lines

    skipped = [(f"f{i:02d}.txt", "not an image") for i in range(SHOWN_SKIPPED + 5)]
    lines = summary_lines({"method": "plain", "images": 3, "skipped": skipped}, "out.csv")
    assert lines[1] == f"skipped {SHOWN_SKIPPED + 5} entries of the input:"
    assert lines[2 : 2 + SHOWN_SKIPPED] == [f"  {i}: {r}" for i, r in skipped[:SHOWN_SKIPPED]]
    assert lines[2 + SHOWN_SKIPPED] == "  ... and 5 more"


def test_one_image_file_is_predicted(ckpt: Path, test_batch: Path, tmp_path: Path, capsys) -> None:
    """An image file as --input is predicted alone, whatever its name says (the content decides)."""
    images, _ = load_cifar_pickle(test_batch)
    photo = tmp_path / "photo.png"
    Image.fromarray(images[0].transpose(1, 2, 0)).save(photo)
    renamed = tmp_path / "photo.dat"
    renamed.write_bytes(photo.read_bytes())
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "photo.png").write_bytes(photo.read_bytes())
    expected = predict(folder, [ckpt], "plain", device="cpu")
    for path in (photo, renamed):
        out = tmp_path / f"{path.name}.csv"
        main(["--ckpt", str(ckpt), "--input", str(path), "--out", str(out), "--device", "cpu"])
        assert _read_csv(out) == [{"id": path.name, "label": expected.labels[0]}]
    assert f"plain on 1 images -> {out}" in capsys.readouterr().out
    broken = tmp_path / "broken.png"
    broken.write_bytes(photo.read_bytes()[:100])
    err = _one_line_error(
        capsys, ["--ckpt", str(ckpt), "--input", str(broken), "--out", str(tmp_path / "b.csv")]
    )
    assert f"{broken} is truncated or corrupt" in err, err
