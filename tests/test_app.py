"""The Streamlit app with Streamlit's AppTest (page logic in-process), plus its image and run readers.

One small checkpoint is trained per module on the easy synthetic CIFAR-10 (each class a distinct
colour and pattern), so an image of a class prototype has a known answer. Every kind of bad input
must end as one message in the page with the app still running: files that are not images,
truncated images, decompression bombs, checkpoints of unknown models, corrupt checkpoints and
checkpoints carrying pickled code (which must not run).
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest
from train_helpers import REPO, tiny_overrides

from cifar_resnets.cli.app import parse_args, streamlit_args
from cifar_resnets.config.compose import compose_train
from cifar_resnets.data.images import ImageDecodeError, decode_image
from cifar_resnets.data.synthetic import CIFAR10_CLASSES, _prototypes
from cifar_resnets.inference.checkpoint import CheckpointError, load_model
from cifar_resnets.inference.preprocess import Preprocess
from cifar_resnets.reporting.runs import find_checkpoints, find_runs, group_sweeps, read_scalars
from cifar_resnets.training.train import train

APP = REPO / "cifar_resnets" / "app" / "streamlit_app.py"
RUN_NAME = "03-04-05_resnet8_cifar10"
# Three quick epochs of a ResNet-8 with Adam learn the synthetic colour classes.
APP_TRAIN = {
    "model.depth": 8,
    "optim": "adam",
    "optim.lr": 0.01,
    "schedule": "constant",
    "augment": "none",
    "data.num_train": 384,
    "data.batch_size": 32,
    "trainer.max_epochs": 3,
}


# ----------------------------------------------------------------------------- shared helpers
def train_app_checkpoint(data_root: Path, outputs: Path) -> Path:
    """Train the tiny app checkpoint into ``outputs/runs/<date>/<time>_<name>``; return the run folder."""
    run_dir = outputs / "runs" / "2026-01-02" / RUN_NAME
    train(compose_train(tiny_overrides(data_root, **APP_TRAIN), output_dir=run_dir))
    return run_dir


def png_bytes(image: Image.Image, fmt: str = "PNG", **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def prototype_image(class_index: int, size: int = 64) -> Image.Image:
    """The noise-free synthetic image of one class, enlarged (the app must shrink it back to 32x32)."""
    pixels = np.clip(_prototypes(10)[class_index], 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return Image.fromarray(pixels).resize((size, size), Image.Resampling.NEAREST)


def recognised_class(checkpoint: Path) -> int:
    """A class whose prototype the trained checkpoint gets right with confidence (the test's answer)."""
    model = load_model(checkpoint)
    pre = Preprocess.for_model(model)
    views = [pre.view(prototype_image(k)) for k in range(10)]
    with torch.no_grad():
        probs = torch.softmax(model.net(pre.batch(views)), dim=1)
    confident = [k for k in range(10) if int(probs[k].argmax()) == k and float(probs[k, k]) > 0.5]
    assert len(confident) >= 5, f"the app's test checkpoint did not learn the synthetic classes: {probs}"
    return confident[0]


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
    train_app_checkpoint(synthetic_cifar10, outputs)
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
        "marker": folder / "marker",
    }


@pytest.fixture
def app(app_outputs: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("CIFAR_APP_OUTPUTS", str(app_outputs))
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    return at


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
    assert picker.value == [str(checkpoint.relative_to(checkpoint.parents[4]))]
    table = app.dataframe[0].value
    assert checkpoint.name in {Path(p).name for p in table["path"]}
    assert set(table["model"]) == {"resnet20"} and set(table["data"]) == {"cifar10"}
    assert 0.0 <= float(table["test acc"][0]) <= 1.0 and table["date"][0]
    assert "Loaded 1 checkpoint" in markdown_text(app)


def test_upload_predicts_the_known_class(app: AppTest, known_class: int) -> None:
    name = CIFAR10_CLASSES[known_class]
    upload(app, ("proto.png", png_bytes(prototype_image(known_class))))
    assert not errors(app)
    assert [s.value for s in app.subheader] == ["proto.png"]
    assert f"top-1: **{name}**" in markdown_text(app)
    assert any(c.value.startswith(f"top-5: {name} ") and c.value.count("%") == 5 for c in app.caption)
    # the uploaded image, then the image as the net sees it: 32x32, shown enlarged
    captions = [img.caption for element in app.get("image") for img in element.proto.imgs]
    assert captions == ["uploaded, 64x64", "as the net sees it (32x32)"]


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
    assert [s.value for s in app.subheader] == [name for name, _ in files]
    name = CIFAR10_CLASSES[known_class]
    # colour images keep the answer; the grey ones just have to be classified
    tops = [m.value for m in app.markdown if "top-1:" in m.value]
    assert len(tops) == len(files) and all(f"**{name}**" in t for t in tops[:4] + tops[5:6])


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
    assert [s.value for s in app.subheader] == ["good.png"]
    upload(app, good)
    assert not errors(app) and f"top-1: **{CIFAR10_CLASSES[known_class]}**" in markdown_text(app)


def test_several_checkpoints_side_by_side_and_ensemble(
    app: AppTest, app_outputs: Path, checkpoint: Path, known_class: int, tmp_path: Path
) -> None:
    # a second checkpoint: the same weights in another run folder, typed as a path
    second = tmp_path / "other_run" / "checkpoints" / "last.ckpt"
    second.parent.mkdir(parents=True)
    shutil.copy(checkpoint, second)
    app.text_input(key="typed_paths").input(str(second)).run()
    assert not errors(app) and "Loaded 2 checkpoints" in markdown_text(app)
    upload(app, ("proto.png", png_bytes(prototype_image(known_class))))
    titles = [m.value.split("\n")[0].strip() for m in app.markdown if "top-1:" in m.value]
    assert titles == [
        "**resnet20 · 03-04-05_resnet8_cifar10**",
        "**resnet20 · other_run**",
        "**Ensemble (mean of 2)**",
    ]
    assert all(f"**{CIFAR10_CLASSES[known_class]}**" in m.value for m in app.markdown if "top-1:" in m.value)


def test_no_ensemble_across_different_classes(app: AppTest, checkpoint: Path, tmp_path: Path) -> None:
    other = torch.load(checkpoint, map_location="cpu", weights_only=True)
    other["hyper_parameters"]["data_info"]["classes"] = [f"thing{i}" for i in range(10)]
    path = tmp_path / "renamed.ckpt"
    torch.save(other, path)
    app.text_input(key="typed_paths").input(str(path)).run()
    upload(app, ("x.png", png_bytes(prototype_image(0))))
    assert not any("Ensemble" in m.value for m in app.markdown)
    assert any("do not predict the same classes" in c.value for c in app.caption)


@pytest.mark.parametrize(
    "kind,message",
    [
        ("unknown", "cannot rebuild its model 'no_such_net'"),
        ("corrupt", "not a readable checkpoint"),
        ("not_ckpt", "not a readable checkpoint"),
        ("code", "refused, nothing in it was run"),
        ("missing", "does not exist"),
    ],
)
def test_bad_checkpoint_gives_one_message_and_runs_no_code(
    app: AppTest, bad_checkpoints: dict[str, Path], known_class: int, kind: str, message: str
) -> None:
    app.text_input(key="typed_paths").input(str(bad_checkpoints[kind])).run()
    assert not app.exception
    assert len(errors(app)) == 1 and message in errors(app)[0], errors(app)
    assert str(bad_checkpoints[kind]) in errors(app)[0]
    assert not bad_checkpoints["marker"].exists()
    # the good checkpoint picked from the list still works
    upload(app, ("proto.png", png_bytes(prototype_image(known_class))))
    assert f"top-1: **{CIFAR10_CLASSES[known_class]}**" in markdown_text(app)


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
    heads = [s.value for s in app.subheader]
    assert len(heads) == 3 and all("cifar10 test image #" in h and "(true class: " in h for h in heads)
    assert sum("top-1:" in m.value for m in app.markdown) == 3
    app.button(key="clear_samples").click().run()
    assert not app.subheader


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


def test_missing_outputs_folder_is_a_message(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CIFAR_APP_OUTPUTS", str(tmp_path / "nowhere"))
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    assert not at.exception and not at.error
    assert any("is not a folder" in w.value for w in at.warning)
    assert any("No checkpoints found" in i.value for i in at.info)
    assert any("Pick at least one checkpoint" in i.value for i in at.info)


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
    with pytest.raises(ImageDecodeError, match="is a TIFF image, not one of the accepted formats"):
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


def test_run_readers(app_outputs: Path, checkpoint: Path) -> None:
    runs = find_runs(app_outputs)
    assert [r.name for r in runs] == [RUN_NAME]
    run = runs[0]
    assert run.model == "resnet20" and run.data == "cifar10" and run.finished and run.sweep is None
    assert run.date is not None and run.date.strftime("%Y-%m-%d %H:%M:%S") == "2026-01-02 03:04:05"
    assert checkpoint in run.checkpoints
    assert checkpoint in [e.path for e in find_checkpoints(app_outputs)]
    scalars = read_scalars(run.path)
    assert len(scalars["val/acc"]) == 3 and [s for s, _ in scalars["val/acc"]] == sorted(
        s for s, _ in scalars["val/acc"]
    )
    assert group_sweeps(runs) == {}
    assert find_runs(app_outputs / "nowhere") == []


def test_launcher_command_line(app_outputs: Path, tmp_path: Path) -> None:
    args = parse_args(["--outputs", str(app_outputs), "--port", "8765"])
    argv = streamlit_args(args.outputs, args.port, args.address)
    assert argv[:2] == ["run", str(APP)]
    assert argv[argv.index("--server.port") + 1] == "8765"
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert argv[argv.index("--server.headless") + 1] == "true"
    assert argv[-3:] == ["--", "--outputs", str(app_outputs)]
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--outputs", str(tmp_path / "nowhere")])
    assert exit_.value.code == 2
