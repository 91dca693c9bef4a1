"""The Streamlit app with Streamlit's AppTest (page logic in-process), plus its image and run readers.

One small checkpoint is trained per test session on the easy synthetic CIFAR-10 (each class a
distinct colour and pattern), so an image of a class prototype has a known answer; this module and
test_app_browser.py copy it into outputs folders of their own. Every kind of bad input must end as one
message in the page with the app still running: files that are not images, truncated images,
decompression bombs, checkpoints of unknown models, corrupt checkpoints and checkpoints carrying
pickled code (which must not run). Whether work is redone is read from the app's counters, never
from timings.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from app_helpers import (
    RUN_NAME,
    add_broken_newer_run,
    copy_run,
    png_bytes,
    prototype_image,
    recognised_class,
    refusal,
    reweighted_copy,
    reweighted_run,
    trained_app_run,
)
from PIL import Image
from streamlit.testing.v1 import AppTest
from train_helpers import REPO

from cifar_resnets.app.charts import curve_chart
from cifar_resnets.cli.app import parse_args, streamlit_args
from cifar_resnets.data.images import decode_image
from cifar_resnets.data.synthetic import CIFAR10_CLASSES
from cifar_resnets.errors import CheckpointError, InputError
from cifar_resnets.inference.checkpoint import load_model
from cifar_resnets.inference.preprocess import Preprocess
from cifar_resnets.models.pretrained import pretrained_names
from cifar_resnets.reporting.runs import find_runs, group_sweeps, read_scalars

APP = REPO / "cifar_resnets" / "app" / "streamlit_app.py"
PUBLISHED = pretrained_names()  # offered after the checkpoints found, in every picker


@pytest.fixture(autouse=True)
def empty_hub_cache(tmp_path: Path, monkeypatch) -> None:
    """No published net's file is in the torch hub cache unless a test puts it there (pretrained_hub):
    the picker's first choice then depends on the outputs folder alone."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_home"))


def decoder_says(data: bytes, name: str) -> str:
    with pytest.raises(InputError) as err:
        decode_image(data, name)
    return str(err.value)


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG header announcing a huge 1-bit image: a decompression bomb in a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


class _Touch:
    """Unpickling this calls ``Path.touch(marker)``: code in a checkpoint file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def app_outputs(synthetic_cifar10: Path, tmp_path_factory) -> Path:
    outputs = tmp_path_factory.mktemp("app_outputs")
    copy_run(trained_app_run(synthetic_cifar10, tmp_path_factory), outputs)
    return outputs


@pytest.fixture(scope="module")
def checkpoint(app_outputs: Path) -> Path:
    return app_outputs / "runs" / "2026-01-02" / RUN_NAME / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def known_class(checkpoint: Path) -> int:
    return recognised_class(checkpoint)


@pytest.fixture(scope="module")
def bad_checkpoints(checkpoint: Path, tmp_path_factory) -> dict[str, Path]:
    """Checkpoints the app must refuse, each with one message (kept outside the outputs folder)."""
    folder = tmp_path_factory.mktemp("bad_checkpoints")
    good = torch.load(checkpoint, map_location="cpu", weights_only=True)

    unknown = dict(good, hyper_parameters=json.loads(json.dumps(good["hyper_parameters"])))
    unknown["hyper_parameters"]["config"]["model"]["_target_"] = "cifar_resnets.models.no_such_module.Net"
    unknown["hyper_parameters"]["config"]["model"]["name"] = "no_such_net"
    torch.save(unknown, folder / "unknown_model.ckpt")

    raw = checkpoint.read_bytes()
    (folder / "corrupt.ckpt").write_bytes(raw[: len(raw) // 3])
    (folder / "not_a_checkpoint.ckpt").write_bytes(b"hello, this is text")

    torch.save({"state_dict": {}, "payload": _Touch(folder / "marker")}, folder / "pickled_code.ckpt")
    (folder / "random.ckpt").write_bytes(np.random.default_rng(0).bytes(500))
    (folder / "config.ckpt").write_text("model:\n  name: resnet20\n")
    weights = {k.removeprefix("net."): v for k, v in good["state_dict"].items()}
    torch.save(weights, folder / "weights.pt")
    (folder / "a_run_folder").mkdir()
    # the payload is live: an unrestricted load runs it (on a copy aimed at another marker)
    live = folder / "live.ckpt"
    torch.save({"payload": _Touch(folder / "live_marker")}, live)
    torch.load(live, weights_only=False)
    assert (folder / "live_marker").exists()
    return {
        "unknown": folder / "unknown_model.ckpt",
        "corrupt": folder / "corrupt.ckpt",
        "not_ckpt": folder / "not_a_checkpoint.ckpt",
        "code": folder / "pickled_code.ckpt",
        "missing": folder / "missing.ckpt",
        "random": folder / "random.ckpt",
        "yaml": folder / "config.ckpt",
        "foreign": folder / "weights.pt",
        "folder": folder / "a_run_folder",
        "marker": folder / "marker",
    }


@pytest.fixture
def app(app_outputs: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("CIFAR_APP_OUTPUTS", str(app_outputs))
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    return at


def result_rows(at: AppTest) -> list[str]:
    """The HTML of each image's result row on the Classify page."""
    return [e.proto.body for e in at.get("html") if 'class="cr-row"' in e.proto.body]


def cards(row: str) -> list[tuple[str, str, list[str]]]:
    """(title, top-1 class, the labels of its top-5 bars) of each model card of a result row."""
    titles = re.findall(r'<div class="cr-title">(.*?)</div><div class="cr-top1">top-1: <b>(.*?)</b>', row)
    labels = [
        re.findall(r'class="cr-label" title="[^"]*">(.*?)</span>', card)
        for card in row.split('<div class="cr-cell cr-model">')[1:]
    ]
    return [
        (html.unescape(t), html.unescape(b), [html.unescape(x) for x in ls])
        for (t, b), ls in zip(titles, labels)
    ]


def row_facts(row: str, kind: str) -> list[str]:
    """The texts of the row's ``cr-<kind>`` elements (name, note, warn)."""
    return [html.unescape(t) for t in re.findall(rf'<div class="cr-{kind}">(.*?)</div>', row)]


def summary(at: AppTest):
    """The Classify page's summary table (image x model -> top-1 and confidence), opened as a user does."""
    at.session_state["summary_open"] = True
    at.run()
    return next(df.value for df in at.dataframe if "image" in df.value.columns)


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def markdown_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def upload(at: AppTest, *files: tuple[str, bytes]) -> AppTest:
    at.file_uploader(key="uploads").set_value(
        [(name, data, "application/octet-stream") for name, data in files]
    )
    at.run()
    assert not at.exception, at.exception
    return at


# ----------------------------------------------------------------------------- the app
def test_models_page_lists_and_loads_the_checkpoint(app: AppTest, checkpoint: Path) -> None:
    assert not errors(app)
    picker = app.multiselect(key="checkpoints")
    # one entry per run: last.ckpt and the final epoch's file hold the same weights
    assert picker.options == [f"{RUN_NAME} · last.ckpt", *PUBLISHED]
    assert picker.value == [f"{RUN_NAME} · last.ckpt"]
    table = app.dataframe[0].value
    assert list(table["checkpoint"]) == [f"{RUN_NAME} · last.ckpt"] and list(table["picked"]) == ["✓"]
    assert Path(table["path"][0].split(" (")[0]) == checkpoint
    assert "(same weights: epoch" in table["path"][0]
    assert set(table["model"]) == {"resnet20"} and set(table["data"]) == {"cifar10"}
    assert list(table["status"]) == ["completed"] and list(table["input"]) == ["32x32"]
    assert list(table.columns)[:5] == ["checkpoint", "picked", "status", "test acc", "path"]
    assert table["test acc"][0].endswith("%") and 0.0 <= float(table["test acc"][0][:-1]) <= 100.0
    assert "1 of 1 checkpoint picked" in markdown_text(app)
    assert [h.value for h in app.subheader][:1] == ["Models"]


def test_newest_checkpoint_that_loads_is_preselected_and_broken_ones_are_listed_apart(
    app_outputs: Path, checkpoint: Path, monkeypatch, tmp_path: Path
) -> None:
    outputs = tmp_path / "outputs"
    good = copy_run(checkpoint.parents[1], outputs)
    broken = add_broken_newer_run(outputs, good)
    monkeypatch.setenv("CIFAR_APP_OUTPUTS", str(outputs))
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    assert not at.exception
    picker = at.multiselect(key="checkpoints")
    assert picker.value == [f"{RUN_NAME} · last.ckpt"]
    assert picker.options and not any("broken" in option for option in picker.options)
    text = markdown_text(at)
    assert "1 of 1 checkpoint picked" in text and f"1 checkpoint under `{outputs}` cannot be used" in text
    assert errors(at) == [refusal(broken.resolve())]
    assert not any("Pick at least one checkpoint" in i.value for i in at.info)


def test_upload_predicts_the_known_class(app: AppTest, known_class: int) -> None:
    name = CIFAR10_CLASSES[known_class]
    upload(app, ("proto.png", png_bytes(prototype_image(known_class))))
    assert not errors(app)
    [row] = result_rows(app)
    assert row_facts(row, "name") == ["proto.png"]
    # the uploaded image, then the image as the net sees it: 32x32, shown enlarged
    assert row_facts(row, "note") == ["uploaded PNG, 64x64; as the net sees it: 32x32"]
    [(title, best, labels)] = cards(row)
    assert title == f"{RUN_NAME} · last.ckpt" and best == name
    assert len(labels) == 5 and labels[0] == name and len(set(labels)) == 5  # all five bars labelled
    assert not app.get("download_button")  # the summary is built when it is opened
    table = summary(app)
    assert list(table["image"]) == ["proto.png"] and table[title][0].startswith(f"{name} ")
    assert [b.proto.label for b in app.get("download_button")] == ["Download as CSV"]


def test_several_images_of_every_supported_kind(app: AppTest, known_class: int) -> None:
    image = prototype_image(known_class, size=48)
    sixteen = Image.fromarray(np.asarray(image.convert("L"), np.uint16) * 257)
    assert sixteen.mode == "I;16"
    files = [
        ("a.jpg", png_bytes(image, "JPEG", quality=95)),
        ("b.webp", png_bytes(image, "WEBP", lossless=True)),
        ("c.bmp", png_bytes(image, "BMP")),
        ("d.png", png_bytes(image.convert("RGBA"))),
        ("e.png", png_bytes(image.convert("L"))),
        ("f.jpg", png_bytes(image.convert("CMYK"), "JPEG")),
        ("g.png", png_bytes(sixteen)),
        ("h.png", png_bytes(image.convert("P"))),
    ]
    upload(app, *files)
    assert not errors(app)
    rows = result_rows(app)
    assert [row_facts(r, "name")[0] for r in rows] == [name for name, _ in files]
    name = CIFAR10_CLASSES[known_class]
    # colour images keep the answer; the grey ones just have to be classified
    tops = [cards(r)[0][1] for r in rows]
    assert len(tops) == len(files) and all(t == name for t in tops[:4] + tops[5:6])


@pytest.mark.parametrize(
    "filename,data,message",
    [
        ("notes.png", b"just some text, not a picture", "is not an image"),
        ("empty.jpg", b"", "is empty"),
        ("cut.png", png_bytes(prototype_image(3, 256))[:600], "is truncated or corrupt"),
        ("cut.jpg", png_bytes(prototype_image(3, 256), "JPEG")[:400], "is truncated or corrupt"),
        ("bomb.png", png_header_only(30_000, 30_000), "decompression bomb"),
        ("big.png", png_header_only(10_000, 10_000), "decompression bomb"),
    ],
)
def test_bad_image_gives_one_message_and_the_app_keeps_serving(
    app: AppTest, known_class: int, filename: str, data: bytes, message: str
) -> None:
    good = ("good.png", png_bytes(prototype_image(known_class)))
    upload(app, (filename, data), good)
    assert len(errors(app)) == 1 and message in errors(app)[0] and filename in errors(app)[0]
    # the good image next to it is still classified, and the session keeps working
    assert [row_facts(r, "name") for r in result_rows(app)] == [["good.png"]]
    upload(app, good)
    assert not errors(app) and cards(result_rows(app)[0])[0][1] == CIFAR10_CLASSES[known_class]


def test_several_checkpoints_side_by_side_and_ensemble(
    app: AppTest, checkpoint: Path, known_class: int, tmp_path: Path, monkeypatch
) -> None:
    # a second model (scaled classifier weights) in another run folder, typed as a path; then the
    # picked checkpoint typed again by a relative path: it is the same entry, counted once
    second = reweighted_copy(checkpoint, tmp_path / "other_run" / "checkpoints" / "last.ckpt", 1.5)
    monkeypatch.chdir(checkpoint.parent)
    app.text_input(key="typed_paths").input(f"{second}, last.ckpt, ./last.ckpt").run()
    assert not errors(app) and "2 of 2 checkpoints picked" in markdown_text(app)
    upload(app, ("proto.png", png_bytes(prototype_image(known_class))))
    [row] = result_rows(app)
    titles = [title for title, _, _ in cards(row)]
    assert titles == [f"{RUN_NAME} · last.ckpt", "other_run · last.ckpt", "Ensemble (mean of 2)"]
    assert all(best == CIFAR10_CLASSES[known_class] for _, best, _ in cards(row))
    # the same names in the summary table
    assert list(summary(app).columns) == ["image", *titles]


def test_no_ensemble_across_different_classes(app: AppTest, checkpoint: Path, tmp_path: Path) -> None:
    other = torch.load(checkpoint, map_location="cpu", weights_only=True)
    other["hyper_parameters"]["data_info"]["classes"] = [f"thing{i}" for i in range(10)]
    path = tmp_path / "renamed.ckpt"
    torch.save(other, path)
    app.text_input(key="typed_paths").input(str(path)).run()
    upload(app, ("x.png", png_bytes(prototype_image(0))))
    assert not any("Ensemble" in title for title, _, _ in cards(result_rows(app)[0]))
    assert any("do not predict the same classes" in c.value for c in app.caption)


@pytest.mark.parametrize(
    "kind", ["unknown", "corrupt", "not_ckpt", "code", "missing", "random", "yaml", "foreign", "folder"]
)
def test_bad_checkpoint_shows_the_readers_own_line_and_runs_no_code(
    app: AppTest, bad_checkpoints: dict[str, Path], known_class: int, kind: str
) -> None:
    path = bad_checkpoints[kind]
    app.text_input(key="typed_paths").input(f"  {path}  ").run()
    assert not app.exception
    # word for word what cifar-eval and cifar-predict print: one place writes it
    assert errors(app) == [refusal(path)], errors(app)
    assert not bad_checkpoints["marker"].exists()
    # the good checkpoint picked from the list still works
    upload(app, ("proto.png", png_bytes(prototype_image(known_class))))
    assert cards(result_rows(app)[0])[0][1] == CIFAR10_CLASSES[known_class]


def test_each_kind_of_bad_checkpoint_gets_its_own_words(bad_checkpoints: dict[str, Path]) -> None:
    lines = {
        kind: refusal(bad_checkpoints[kind]) for kind in ("random", "yaml", "corrupt", "foreign", "code")
    }
    assert "neither a zip archive (torch.save) nor a pickle" in lines["random"]
    assert "it is text starting 'model:" in lines["yaml"]
    assert "truncated" in lines["corrupt"]
    assert "written by another program" in lines["foreign"]
    assert "refused, nothing in it was run" in lines["code"]
    assert "is a folder, not a checkpoint file" in refusal(bad_checkpoints["folder"])
    assert "does not exist" in refusal(bad_checkpoints["missing"])


@pytest.mark.parametrize("where", ["nested", "top"])
def test_checkpoint_config_cannot_run_code(checkpoint: Path, tmp_path: Path, where: str) -> None:
    stored = torch.load(checkpoint, map_location="cpu", weights_only=True)
    marker = tmp_path / "marker"
    path_of = {"_target_": "pathlib.Path", "_args_": [str(marker)]}
    touch = {"_target_": "pathlib.Path.touch", "_args_": [path_of]}
    if where == "nested":
        stored["hyper_parameters"]["config"]["model"]["depth"] = touch
    else:
        stored["hyper_parameters"]["config"]["model"] = touch
    torch.save(stored, tmp_path / "config_code.ckpt")
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "config_code.ckpt")
    assert not marker.exists(), "a checkpoint's config ran code while loading"


def test_sample_test_images_from_the_checkpoint_dataset(app: AppTest) -> None:
    app.number_input(key="sample_count").set_value(3)
    app.button(key="sample").click().run()
    assert not errors(app) and not app.exception
    rows = result_rows(app)
    heads = [row_facts(r, "name")[0] for r in rows]
    assert len(heads) == 3 and all("cifar10 test image #" in h and "(true class: " in h for h in heads)
    assert all(len(cards(r)) == 1 for r in rows)
    notes = [row_facts(r, "note")[0] for r in rows]
    assert notes == ["cifar10 test image, 32x32; as the net sees it: 32x32"] * 3  # not "uploaded"
    assert "true class" in summary(app).columns
    app.button(key="clear_samples").click().run()
    assert not result_rows(app)


def test_runs_page_lists_runs_sweeps_and_curves(app_outputs: Path, monkeypatch, tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    shutil.copytree(app_outputs, outputs)
    run = next((outputs / "runs").glob("*/*"))
    sweep = outputs / "sweeps" / "2026-01-03" / "10-00-00"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    for job in ("0_optim.lr=0.1", "1_optim.lr=0.2"):
        (sweep / job).mkdir()
        for name in ("config.yaml", "metrics.json"):
            shutil.copy(run / name, sweep / job / name)
    monkeypatch.setenv("CIFAR_APP_OUTPUTS", str(outputs))
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    assert not at.exception and not errors(at)
    text = markdown_text(at)
    assert "**Runs** (1)" in text and "**Sweep** `sweeps/2026-01-03/10-00-00` (2 jobs)" in text
    sweep_table = at.dataframe[-1].value
    assert list(sweep_table["run"]) == ["10-00-00/0_optim.lr=0.1", "10-00-00/1_optim.lr=0.2"]
    assert at.multiselect(key="plot_tags").value[:2] == ["val/acc", "val/loss"]
    assert RUN_NAME in at.multiselect(key="plot_runs").value


def test_outputs_folder_that_is_missing_a_file_or_empty(
    monkeypatch, tmp_path: Path, app_outputs: Path
) -> None:
    (tmp_path / "notes.txt").write_text("x")
    cases = {
        str(tmp_path / "nowhere"): "does not exist yet: train a net with `cifar-train`",
        str(tmp_path / "notes.txt"): "is a file, not a folder",
        "   ": "Type the folder cifar-train writes to",
        str(tmp_path / ("x" * 300) / "outputs"): "cannot be a folder (File name too long)",
    }
    monkeypatch.chdir(app_outputs)  # an empty field must not list the working folder's runs
    for typed, message in cases.items():
        monkeypatch.setenv("CIFAR_APP_OUTPUTS", typed)
        at = AppTest.from_file(str(APP), default_timeout=180).run()
        assert not at.exception and not at.error
        assert [w.value for w in at.warning if message in w.value], [w.value for w in at.warning]
        assert all(len(w.value) < 400 for w in at.warning)  # a pasted log line is shortened
        assert not at.dataframe and at.multiselect(key="checkpoints").options == PUBLISHED
        # the Models page says why and what to do (the sidebar is closed on a phone)
        infos = [i.value for i in at.info]
        assert any(message in i for i in infos) and any("No checkpoints to pick yet" in i for i in infos)
        assert any("pick a published net" in i for i in infos)
        assert any("Pick at least one checkpoint" in i for i in infos)


def test_an_existing_folder_is_not_reported_missing(app: AppTest, checkpoint: Path) -> None:
    run_dir = checkpoint.parents[1]
    app.text_input(key="typed_paths").input(str(run_dir)).run()
    assert errors(app) == [refusal(run_dir.resolve())]
    assert "is a folder, not a checkpoint file" in errors(app)[0] and "does not exist" not in errors(app)[0]


def test_a_run_without_test_score_or_metrics_reads_in_words(
    checkpoint: Path, monkeypatch, tmp_path: Path
) -> None:
    outputs = tmp_path / "outputs"
    run = copy_run(checkpoint.parents[1], outputs)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.pop("test/acc"), metrics.pop("test/loss", None)
    (run / "metrics.json").write_text(json.dumps(metrics))
    monkeypatch.setenv("CIFAR_APP_OUTPUTS", str(outputs))
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    assert not at.exception and not errors(at)
    checkpoints, runs = (at.dataframe[i].value for i in range(2))
    tables = (checkpoints, runs)
    assert {value for table in tables for value in table["test acc"]} == {"not tested"}
    assert list(runs["test loss"]) == ["—"]
    assert not any(value is None or value == "None" for table in tables for value in table.to_numpy().ravel())
    # one run, one date: when it started, in every table (the checkpoint file's time is another fact)
    assert {*checkpoints["started"], *runs["started"]} == {"2026-01-02 03:04"}
    assert "date" not in checkpoints and "date" not in runs


def test_each_way_a_run_ended_reads_in_words_on_the_runs_and_models_pages(
    checkpoint: Path, monkeypatch, tmp_path: Path
) -> None:
    """The status each run's metrics.json records, as both tables show it; a run without a readable
    record reads as running or stopped, or as damaged."""
    outputs = tmp_path / "outputs"
    records = {
        "completed": None,  # as trained
        "failed": {"status": "failed", "error": "RuntimeError: boom"},
        "diverged": {"status": "diverged", "error": "RunError: training diverged at step 3"},
        "interrupted": {"status": "interrupted", "error": "KeyboardInterrupt: SIGTERM"},
        "running": "",  # no metrics.json yet
        "damaged": '{"status": "compl',
    }
    for hour, (name, record) in enumerate(records.items()):
        run = copy_run(checkpoint.parents[1], outputs, "2026-01-02", f"0{hour}-00-00_{name}")
        if record == "":
            (run / "metrics.json").unlink()
        elif record is not None:
            (run / "metrics.json").write_text(record if isinstance(record, str) else json.dumps(record))
    monkeypatch.setenv("CIFAR_APP_OUTPUTS", str(outputs))
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    assert not at.exception and not errors(at)
    words = {
        "completed": "completed",
        "failed": "failed",
        "diverged": "diverged",
        "interrupted": "interrupted",
        "running": "no metrics.json (running or stopped)",
        "damaged": "metrics.json unreadable or empty (a damaged copy?)",
    }
    checkpoints, runs = at.dataframe[0].value, at.dataframe[-1].value
    assert {run.split("_", 1)[1]: status for run, status in zip(runs["run"], runs["status"])} == words
    entries = enumerate(checkpoints["checkpoint"])
    of_run = {name: i for i, entry in entries for name in words if f"_{name} " in entry}
    assert {name: checkpoints["status"][i] for name, i in of_run.items()} == words
    # the checkpoint's test score comes from its run's metrics.json, when there is a readable one
    tested = {name for name, i in of_run.items() if checkpoints["test acc"][i] != "not tested"}
    assert tested == {"completed"} and checkpoints["test acc"][of_run["completed"]].endswith("%")


def test_a_second_interaction_reuses_every_cached_prediction(
    app: AppTest, checkpoint: Path, known_class: int, tmp_path: Path, monkeypatch
) -> None:
    from cifar_resnets.inference import predict

    forwards = []  # how many images each forward pass of the app was given
    views_probs = predict.views_probs

    def counted(model, views, **options):
        forwards.append(len(views))
        return views_probs(model, views, **options)

    monkeypatch.setattr(predict, "views_probs", counted)
    second = reweighted_copy(checkpoint, tmp_path / "other_run" / "checkpoints" / "last.ckpt", 0.5)
    app.text_input(key="typed_paths").input(str(second)).run()
    image = png_bytes(prototype_image(known_class, size=41))
    upload(app, ("proto.png", image))
    assert "2 predictions: 2 computed, 0 from the cache" in [c.value for c in app.caption]
    assert sum(forwards) == 2
    # a widget that changes no prediction: nothing is computed again
    app.number_input(key="sample_count").set_value(2).run()
    assert "2 predictions: 0 computed, 2 from the cache" in [c.value for c in app.caption]
    # another method computes its own, and going back finds the first ones
    app.radio(key="tta").set_value("flip").run()
    assert "2 predictions: 2 computed, 0 from the cache" in [c.value for c in app.caption]
    app.radio(key="tta").set_value("none").run()
    assert "2 predictions: 0 computed, 2 from the cache" in [c.value for c in app.caption]
    # a second image: only its own predictions are computed
    upload(app, ("proto.png", image), ("other.png", png_bytes(prototype_image(known_class, size=45))))
    assert "4 predictions: 2 computed, 2 from the cache" in [c.value for c in app.caption]
    assert sum(forwards) == 6
    assert cards(result_rows(app)[0])[0][1] == CIFAR10_CLASSES[known_class]


def test_uploads_are_judged_by_content_and_refusals_say_why(app: AppTest, known_class: int) -> None:
    image = prototype_image(known_class, size=48)
    frames = [image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    tiff, text = png_bytes(image, "TIFF"), b"just text"
    upload(
        app,
        ("moving.gif", gif.getvalue()),
        ("renamed.png", png_bytes(image, "GIF")),
        ("dot.png", png_bytes(Image.new("RGB", (1, 1), (200, 30, 30)))),
        ("scan.png", tiff),
        ("notes.jpg", text),
    )
    rows = result_rows(app)
    assert [row_facts(r, "name")[0] for r in rows] == ["moving.gif", "renamed.png", "dot.png"]
    # the decoder's own line, which names what the file is
    assert errors(app) == [decoder_says(tiff, "scan.png"), decoder_says(text, "notes.jpg")]
    assert (
        "is a TIFF image, not one of the accepted" in errors(app)[0] and "is not an image" in errors(app)[1]
    )
    notes = [row_facts(r, "note")[0].split(";")[0] for r in rows]
    assert notes == [
        "uploaded GIF, 48x48, first of its 2 frames",
        "uploaded GIF (named .png), 48x48",
        "uploaded PNG, 1x1",
    ]
    assert all(cards(r)[0][1] == CIFAR10_CLASSES[known_class] for r in rows[:2])
    # the 1x1 image is classified, under a warning that says why its answer means little
    assert [row_facts(r, "warn") for r in rows] == [
        [],
        [],
        [
            "⚠ 1x1 is far smaller than the 32x32 images this net was trained on: it is enlarged to a "
            "blur, so its answer means little"
        ],
    ]


def test_refusals_read_as_plain_words(app: AppTest, known_class: int) -> None:
    photo = png_bytes(prototype_image(3, 256), "JPEG")
    upload(
        app,
        ("cut.jpg", photo[: len(photo) // 3]),  # two thirds missing
        ("empty.png", b""),
        ("bomb.png", png_header_only(30_000, 30_000)),
    )
    cut, empty, bomb = errors(app)
    assert "the file ends before the picture does" in cut and "bytes not processed" not in cut
    assert empty.endswith("copy or download the whole file again") and "pass the" not in empty
    assert "PIL" not in bomb and "decompression bomb" in bomb
    uploader = app.get("file_uploader")[0].proto.label
    assert "any size" not in uploader and "MB" in uploader and "pixels" in uploader


def test_size_warnings_follow_the_training_size() -> None:
    cifar = Preprocess(32, (0.5,) * 3, (0.25,) * 3)
    assert cifar.size_warning(32, 32) is None and cifar.size_warning(400, 300) is None
    assert "far smaller than the 32x32" in cifar.size_warning(15, 40)
    assert cifar.size_warning(600, 500) is None and cifar.size_warning(4000, 3000) is None  # any photo
    assert "squashed to a square" in cifar.size_warning(100, 40)
    assert "squashed to a square" in cifar.size_warning(2000, 40)  # a strip, not "too large"
    imagenet = Preprocess(224, (0.5,) * 3, (0.25,) * 3, resize_size=256)
    assert imagenet.size_warning(600, 200) is None  # centre-cropped, not squashed
    assert "far smaller than the 256x256" in imagenet.size_warning(64, 64)


def _write_scalars(run_dir: Path, points: dict[str, list[tuple[int, float]]]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run_dir)) as writer:
        for tag, series in points.items():
            for step, value in series:
                writer.add_scalar(tag, value, step)


def test_curves_keep_one_colour_per_run_integer_steps_and_readable_values(
    checkpoint: Path, monkeypatch, tmp_path: Path
) -> None:
    outputs = tmp_path / "outputs"
    copy_run(checkpoint.parents[1], outputs)
    partial = copy_run(checkpoint.parents[1], outputs, "2026-01-03", "08-00-00_partial")
    for events in partial.glob("events.out.tfevents.*"):
        events.unlink()
    _write_scalars(partial, {"val/acc": [(3, 0.25)]})  # one point, and no val/loss at all
    monkeypatch.setenv("CIFAR_APP_OUTPUTS", str(outputs))
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    assert not at.exception and not errors(at)
    assert at.multiselect(key="plot_tags").value[:2] == ["val/acc", "val/loss"]
    specs = [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]
    curves = [spec for spec in specs if spec["encoding"]["x"]["field"] in ("step", "epoch")]
    assert len(curves) >= 2
    scales = [spec["encoding"]["color"]["scale"] for spec in curves]
    colour = {run: c for scale in scales for run, c in zip(scale["domain"], scale["range"])}
    assert all(dict(zip(scale["domain"], scale["range"])) == colour for scale in scales)
    assert len(set(colour.values())) == len(colour) == 2  # both runs in both charts, one colour each
    for spec in curves:
        assert (
            spec["encoding"]["x"]["axis"]["format"] == "d"
            and spec["encoding"]["x"]["axis"]["tickMinStep"] == 1
        )
        fmt = "%" if spec["encoding"]["y"]["title"].endswith("acc") else ".4~g"
        assert spec["encoding"]["y"]["axis"]["format"] == fmt  # accuracy as a percentage, as in tables
    # a curve of one value gets a domain around it, not one of zero width
    one_point = curve_chart([{"run": "r", "step": 3, "value": 0.25}], "val/acc", {"r": "#4c78a8"}).to_dict()
    low, high = one_point["encoding"]["y"]["scale"]["domain"]
    assert low < 0.25 < high
    assert one_point["encoding"]["x"]["scale"]["domain"] == [2, 4]


def test_runs_page_counts_runs_keeps_colours_and_cuts_a_diverged_epoch(
    checkpoint: Path, monkeypatch, tmp_path: Path
) -> None:
    outputs = tmp_path / "outputs"
    copy_run(checkpoint.parents[1], outputs)
    stray = outputs / "runs" / "2026-01-06" / "10-00-00_stray" / "checkpoints"
    stray.mkdir(parents=True)
    shutil.copy(checkpoint, stray / "last.ckpt")  # checkpoints only: not a run
    diverged = copy_run(checkpoint.parents[1], outputs, "2026-01-03", "08-00-00_diverged")
    for events in diverged.glob("events.out.tfevents.*"):
        events.unlink()
    losses = [2.0, 1.5, 920.0, 1.2, 1.1, 1.0]
    _write_scalars(
        diverged,
        {
            "val/loss": [(10 * (e + 1), v) for e, v in enumerate(losses)],
            "val/acc": [(10 * (e + 1), 0.1 * e) for e in range(6)],
            "epoch": [(10 * (e + 1), e) for e in range(6)],
        },
    )
    (diverged / "metrics.json").write_text(json.dumps({"status": "diverged", "error": "loss is nan"}))
    monkeypatch.setenv("CIFAR_APP_OUTPUTS", str(outputs))
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    assert not at.exception and not errors(at)
    runs = at.dataframe[-1].value
    assert list(runs["run"]) == ["08-00-00_diverged", RUN_NAME]  # the stray folder is not a run
    assert list(runs["status"]) == ["diverged", "completed"]  # as metrics.json records it
    assert not any(value in ("?", None) for value in runs.to_numpy().ravel())
    assert any("10-00-00_stray" in c.value and "Not counted as runs" in c.value for c in at.caption)
    assert at.multiselect(key="plot_runs").value == ["08-00-00_diverged", RUN_NAME]

    def specs() -> dict[str, dict]:
        found = (json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart"))
        return {spec["encoding"]["y"]["title"]: spec for spec in found}

    loss = specs()["val/loss"]
    assert loss["encoding"]["x"]["field"] == "epoch"  # runs of different lengths line up by epoch
    assert loss["encoding"]["y"]["scale"]["domain"][1] < 10 and "cut off" in loss["title"]
    assert loss["encoding"]["color"]["legend"]["orient"] == "bottom"
    colours = dict(zip(*(loss["encoding"]["color"]["scale"][k] for k in ("domain", "range"))))

    # a new run appears (after Look again): the others keep their colours and the plot keeps its runs
    copy_run(checkpoint.parents[1], outputs, "2026-01-07", "09-00-00_newer")
    at.button(key="look_again").click().run()
    assert at.multiselect(key="plot_runs").value == ["08-00-00_diverged", RUN_NAME]
    loss = specs()["val/loss"]
    assert dict(zip(*(loss["encoding"]["color"]["scale"][k] for k in ("domain", "range")))) == colours

    # nothing picked: the page says what to do rather than stay blank
    at.multiselect(key="plot_tags").set_value([]).run()
    assert any("Pick curves above" in i.value for i in at.info)
    at.multiselect(key="plot_runs").set_value([]).run()
    assert any("Pick runs above" in i.value for i in at.info)


def test_the_selection_survives_a_mistyped_folder_a_missing_run_and_a_new_one(
    checkpoint: Path, monkeypatch, tmp_path: Path
) -> None:
    outputs = tmp_path / "outputs"
    good = copy_run(checkpoint.parents[1], outputs)
    second = reweighted_run(good, outputs, "2026-01-03", "07-00-00_second", 1.5)
    names = ["07-00-00_second · last.ckpt", f"{RUN_NAME} · last.ckpt"]
    monkeypatch.setenv("CIFAR_APP_OUTPUTS", str(outputs))
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    picker = at.multiselect(key="checkpoints")
    assert picker.options == [*names, *PUBLISHED] and picker.value == names[:1]  # the newest, once per run
    picker.set_value(names).run()
    # a one-character typo in the folder, fixed at once
    at.text_input(key="outputs").input(f"{outputs}x").run()
    assert at.multiselect(key="checkpoints").options == PUBLISHED and not at.exception
    at.text_input(key="outputs").input(str(outputs)).run()
    assert at.multiselect(key="checkpoints").value == names
    # a picked run gone for a moment: the other stays picked, and the run comes back picked
    shutil.move(second, tmp_path / "away")
    at.button(key="look_again").click().run()
    assert at.multiselect(key="checkpoints").value == names[1:]
    shutil.move(tmp_path / "away", second)
    at.button(key="look_again").click().run()
    assert at.multiselect(key="checkpoints").value == names
    # a newer run appears: listed first, the selection unchanged
    reweighted_run(good, outputs, "2026-01-04", "08-00-00_third", 2.0)
    at.button(key="look_again").click().run()
    picker = at.multiselect(key="checkpoints")
    assert picker.options[0] == "08-00-00_third · last.ckpt" and picker.value == names
    assert "2 of 3 checkpoints picked" in markdown_text(at)
    # nothing picked on purpose stays so
    picker.set_value([]).run()
    at.button(key="look_again").click().run()
    assert at.multiselect(key="checkpoints").value == []


def test_a_path_the_system_refuses_is_one_line(app: AppTest, tmp_path: Path) -> None:
    app.text_input(key="typed_paths").input(str(tmp_path / ("x" * 300) / "last.ckpt")).run()
    assert not app.exception
    [line] = errors(app)
    assert "File name too long" in line and len(line) < 300 and "Traceback" not in line


def test_a_bug_in_one_page_is_one_line_and_the_others_work(app_outputs: Path, monkeypatch) -> None:
    from cifar_resnets.app import runs_page

    def broken(runs):
        raise RuntimeError("a bug in grouping")

    monkeypatch.setattr(runs_page, "group_sweeps", broken)
    monkeypatch.setenv("CIFAR_APP_OUTPUTS", str(app_outputs))
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    assert not at.exception  # no traceback in the page
    assert errors(at) == [
        "The Runs page failed (RuntimeError: a bug in grouping); the other pages still work. Its details "
        "are in the log of the terminal running cifar-app: please report them."
    ]
    assert at.multiselect(key="checkpoints").value == [f"{RUN_NAME} · last.ckpt"]


def test_first_screen_draws_without_torch(tmp_path: Path) -> None:
    # A subprocess: this one has torch imported already. Nothing found, so nothing needs torch.
    code = (
        "import sys; from streamlit.testing.v1 import AppTest; "
        f"at = AppTest.from_file({str(APP)!r}, default_timeout=120).run(); "
        "assert not at.exception, at.exception; "
        "print(sorted(m for m in ('torch', 'torchvision', 'altair', 'tensorboard') if m in sys.modules))"
    )
    env = {**os.environ, "CIFAR_APP_OUTPUTS": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    # reading a CIFAR checkpoint needs torch, but not torchvision's model zoo
    code = "import sys, cifar_resnets.inference.checkpoint; print('torchvision' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip() == "False", proc.stderr[-2000:]


# ----------------------------------------------------------------------------- readers and launcher
def test_decode_image_modes_and_errors() -> None:
    rgb = prototype_image(5, 40)
    for image, fmt in [
        (rgb, "PNG"),
        (rgb.convert("L"), "PNG"),
        (rgb.convert("RGBA"), "WEBP"),
        (rgb.convert("CMYK"), "JPEG"),
        (rgb, "BMP"),
        (Image.fromarray(np.full((40, 40), 65535, np.uint16)), "PNG"),
    ]:
        decoded = decode_image(png_bytes(image, fmt), "x")
        assert decoded.mode == "RGB" and decoded.size == (40, 40)
    white = decode_image(png_bytes(Image.fromarray(np.full((4, 4), 65535, np.uint16))))
    assert np.asarray(white).min() == 255  # 16-bit white stays white
    clear = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert np.asarray(decode_image(png_bytes(clear))).min() == 255  # transparency -> white
    with pytest.raises(InputError, match="is a TIFF image, not one of the accepted formats"):
        decode_image(png_bytes(rgb, "TIFF"), "scan.png")


def test_preprocess_follows_the_checkpoint_data_config() -> None:
    photo = Image.new("RGB", (300, 200), (10, 200, 30))
    cifar = Preprocess(32, (0.5,) * 3, (0.25,) * 3)
    assert cifar.view(photo).shape == (3, 32, 32)  # squashed to 32x32, as CIFAR images are
    upsampled = Preprocess(64, (0.5,) * 3, (0.25,) * 3)
    assert upsampled.view(photo).shape == (3, 64, 64)
    imagenet = Preprocess(224, (0.5,) * 3, (0.25,) * 3, resize_size=256)
    view = imagenet.view(photo)
    assert view.shape == (3, 224, 224) and view.dtype == torch.uint8  # shorter side 256, center crop
    batch = imagenet.batch([view, view])
    assert batch.shape == (2, 3, 224, 224) and torch.allclose(
        batch[0, 1], torch.tensor((200 / 255 - 0.5) / 0.25)
    )


def test_a_runs_recorded_attempts_are_part_of_it_not_runs_of_their_own(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "2026-01-02" / RUN_NAME
    attempt = run / "attempts" / "2026-01-03T00-00-00.000Z"
    attempt.mkdir(parents=True)
    (run / "config.yaml").write_text("model: {name: resnet20}\n")
    (run / "metrics.json").write_text(json.dumps({"status": "completed", "test/acc": 0.5}))
    (attempt / "metrics.json").write_text(json.dumps({"status": "refused", "error": "RunError: ..."}))
    assert [r.path for r in find_runs(tmp_path)] == [run]


def test_run_readers(app_outputs: Path, checkpoint: Path) -> None:
    runs = find_runs(app_outputs)
    assert [r.name for r in runs] == [RUN_NAME]
    run = runs[0]
    assert (
        run.model == "resnet20" and run.data == "cifar10" and run.status == "completed" and run.sweep is None
    )
    assert run.date is not None and run.date.strftime("%Y-%m-%d %H:%M:%S") == "2026-01-02 03:04:05"
    assert checkpoint in run.checkpoints
    scalars = read_scalars(run.path)
    assert len(scalars["val/acc"]) == 3 and [s for s, _ in scalars["val/acc"]] == sorted(
        s for s, _ in scalars["val/acc"]
    )
    assert group_sweeps(runs) == {}
    assert find_runs(app_outputs / "nowhere") == []


def test_launcher_command_line(app_outputs: Path, tmp_path: Path, capsys) -> None:
    args = parse_args(["--outputs", str(app_outputs), "--port", "8765"])
    argv = streamlit_args(args.outputs, args.port, args.address)
    assert argv[:2] == ["run", str(APP)]
    assert argv[argv.index("--server.port") + 1] == "8765"
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert argv[argv.index("--server.headless") + 1] == "true"
    assert argv[-3:] == ["--", "--outputs", str(app_outputs)]
    # a folder that does not exist yet is fine: the app says how to fill it
    assert parse_args(["--outputs", str(tmp_path / "nowhere")]).outputs == tmp_path / "nowhere"
    (tmp_path / "notes.txt").write_text("x")
    for outputs, message in [
        (str(tmp_path / "notes.txt"), "is a file, not a folder"),
        ("", "--outputs is empty"),  # not the working folder
        (str(tmp_path / ("x" * 300)), "File name too long; pass the folder cifar-train writes to"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            parse_args(["--outputs", outputs])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    # the installed command: one line, exit 2, no traceback
    script = Path(sys.executable).with_name("cifar-app")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "cifar_resnets.cli.app"]
    proc = subprocess.run([*command, "--outputs", "x" * 300], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("cifar-app: error: --outputs xxx")


def test_with_no_outputs_folder_a_published_net_classifies_an_upload(
    pretrained_hub: Path, small_real_cifar10: Path, monkeypatch, tmp_path: Path
) -> None:
    """A newcomer's first start: no outputs folder, the published nets offered (none picked unasked: it
    may download); picked, it gives an uploaded photo the same top-5 as the Python API."""
    from cifar_resnets.inference.predict import predict_images

    monkeypatch.setenv("CIFAR_APP_OUTPUTS", str(tmp_path / "outputs"))
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    assert not at.exception and not errors(at)
    picker = at.multiselect(key="checkpoints")
    assert picker.options == PUBLISHED and picker.value == []
    picker.set_value(["pretrained:akamaster/resnet20"]).run()
    assert not at.exception and not errors(at)
    from cifar_resnets.data.cifar_files import load_cifar

    first_test_image = load_cifar(small_real_cifar10).test_images[0]
    photo = Image.fromarray(np.ascontiguousarray(first_test_image.transpose(1, 2, 0)))
    upload(at, ("photo.png", png_bytes(photo)))
    assert not errors(at)
    [row] = result_rows(at)
    [(title, best, ranked)] = cards(row)
    model = load_model("pretrained:akamaster/resnet20")
    probs = predict_images(model, [photo])[0]
    expected = [model.classes[i] for i in probs.argsort(descending=True)[:5].tolist()]
    assert title == "pretrained:akamaster/resnet20" and ranked == expected and best == expected[0]
