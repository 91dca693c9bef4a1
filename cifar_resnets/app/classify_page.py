"""The Classify page: uploaded images (or sampled test images) through each picked checkpoint.

Whether an upload is an image is decided by its content, by the one decoder of ``data.images``: the
uploader takes any file, so a refused one is named with its reason instead of vanishing in the
browser's file filter, and a GIF renamed ``.png`` is read as the GIF it is. An image far from the size
a net was trained on (``Preprocess.size_warning``) is still classified, under a warning.

Each widget change reruns this script from the top, so results are cached: a decoded upload by its
bytes, a prediction by (image bytes, checkpoint version, test-time augmentation). Only what changed
is computed; the caption at the top of the results says how many predictions were computed on this
rerun and how many came from the cache, and ``forward_calls`` counts every net forward of the process.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st
from PIL import Image

from cifar_resnets.app.models_page import Picked, Version, load_version
from cifar_resnets.data.images import (
    ACCEPTED_EXTENSIONS,
    ACCEPTED_TEXT,
    ImageDecodeError,
    decode_image,
    recognised_format,
)
from cifar_resnets.inference.options import TTA_MODES

if TYPE_CHECKING:
    from cifar_resnets.inference.checkpoint import LoadedModel

TOP_K = 5
MAX_SAMPLES = 16
DISPLAY_SIZE = 128  # small model inputs (32x32) are shown enlarged, pixel for pixel
CARD_WIDTH = 300  # result cards wrap onto new rows rather than shrink below this
TTA_TEXT = {
    "none": "none",
    "flip": "flip (2 views)",
    "flip_translate": "flip + shifts (10 views)",
}

forward_calls = 0  # net forward passes of this process: the test of the caching reads it


class _RunTally(threading.local):
    """Predictions computed on the current rerun; each session's script runs in a thread of its own."""

    computed = 0


_tally = _RunTally()


@dataclass(frozen=True)
class Item:
    """An image to classify: ``data`` is its file (an upload, or a test image as PNG), the cache key."""

    name: str
    data: bytes
    source: str  # "uploaded", "cifar10 test image", ...
    truth: str | None = None

    def caption(self, fmt: str, width: int, height: int) -> str:
        """Where the image comes from and its size; an upload's format as its content says."""
        if self.source != "uploaded":  # a test image's PNG is only how the app passes it on
            return f"{self.source}, {width}x{height}"
        return f"uploaded {fmt}{_named_as(self.name, fmt)}, {width}x{height}"


# ----------------------------------------------------------------------------- cached work
@st.cache_data(max_entries=256, show_spinner=False)
def decode(data: bytes, name: str) -> tuple[np.ndarray | None, str]:
    """(RGB pixels [H, W, 3], format) of an image file, or (None, the decoder's one-line refusal)."""
    try:
        image = decode_image(data, name)
    except ImageDecodeError as err:
        return None, str(err)
    return np.asarray(image), recognised_format(data) or "?"


@st.cache_data(max_entries=2048, show_spinner="Predicting ...")
def predict(data: bytes, _name: str, version: Version, tta: str) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [C], the view the net sees [S, S, 3]) of one image through one checkpoint."""
    global forward_calls
    from cifar_resnets.inference.predict import views_probs
    from cifar_resnets.inference.preprocess import Preprocess

    model = load_version(*version)
    if isinstance(model, Exception):  # the file was judged usable on this rerun; a change since is news
        raise model
    pixels, _ = decode(data, _name)
    view = Preprocess.for_model(model).view(Image.fromarray(pixels))
    probs = views_probs(model, view.unsqueeze(0), tta=tta, device="cpu")[0].numpy()
    forward_calls += 1
    _tally.computed += 1
    return probs, view.permute(1, 2, 0).numpy()


# ----------------------------------------------------------------------------- inputs
def _named_as(name: str, fmt: str) -> str:
    """`` (named .png)`` when the file's name suggests another format than its content."""
    suffix = Path(name).suffix.lower()
    expected = Image.registered_extensions().get(suffix)
    return f" (named {suffix})" if expected and expected != fmt else ""


def uploaded_items() -> list[Item]:
    files = st.file_uploader(
        f"Images to classify ({ACCEPTED_TEXT}; any size)",
        accept_multiple_files=True,
        key="uploads",
        help="Any file is accepted here and judged by its content, not by its name.",
    )
    return [Item(file.name, file.getvalue(), "uploaded") for file in files or []]


def _data_root(model: LoadedModel) -> Path | None:
    root = (model.config.get("data") or {}).get("root")
    return Path(str(root)).expanduser() if root else None


@st.cache_resource(max_entries=4, show_spinner="Reading test images ...")
def _cifar_test_split(folder: str, name: str, mtime_ns: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from cifar_resnets.data.cifar_files import CIFAR_SPECS, read_cifar_batch, read_class_names

    spec = CIFAR_SPECS[name]
    parts = [read_cifar_batch(Path(folder) / f, spec.label_key, spec.num_classes) for f in spec.test_files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels, read_class_names(folder, name)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def sample_test_images(model: LoadedModel, count: int, seed: int) -> list[Item]:
    """``count`` random test images of the checkpoint's dataset, read from its ``data.root``."""
    from cifar_resnets.data.cifar_files import CIFAR_SPECS

    root = _data_root(model)
    if root is None:
        raise FileNotFoundError("the checkpoint's config has no data.root")
    rng = np.random.default_rng(seed)
    name = model.data_name
    if name in CIFAR_SPECS:
        folder = root / CIFAR_SPECS[name].folder
        test_file = folder / CIFAR_SPECS[name].test_files[0]
        if not test_file.is_file():
            raise FileNotFoundError(f"{name} test images not found at {test_file}")
        images, labels, names = _cifar_test_split(str(folder), name, test_file.stat().st_mtime_ns)
        picks = rng.choice(len(labels), size=min(count, len(labels)), replace=False)
        return [
            Item(
                f"{name} test image #{i}",
                _png(images[i].transpose(1, 2, 0)),
                f"{name} test image",
                names[labels[i]],
            )
            for i in picks
        ]
    files = [
        (path, wnid)
        for wnid in model.classes
        if (root / "val" / wnid).is_dir()
        for path in sorted((root / "val" / wnid).iterdir())
        if path.suffix.lower().lstrip(".") in ACCEPTED_EXTENSIONS
    ]
    if not files:
        raise FileNotFoundError(f"no validation images under {root / 'val'} for this checkpoint's classes")
    picks = rng.choice(len(files), size=min(count, len(files)), replace=False)
    return [
        Item(files[i][0].name, files[i][0].read_bytes(), f"{name} validation image", files[i][1])
        for i in picks
    ]


def samples_section(picked: list[Picked]) -> list[Item]:
    model = picked[0].model
    with st.expander(f"Sample test images of {model.data_name} (from data.root = {_data_root(model)})"):
        count = st.number_input("How many", min_value=1, max_value=MAX_SAMPLES, value=4, key="sample_count")
        cols = st.columns(2)
        if cols[0].button("Sample test images", key="sample"):
            st.session_state["sample_seed"] = int(np.random.default_rng().integers(1 << 31))
        if cols[1].button("Clear samples", key="clear_samples"):
            st.session_state.pop("sample_seed", None)
        if "sample_seed" not in st.session_state:
            return []
        try:
            return sample_test_images(model, int(count), st.session_state["sample_seed"])
        except (OSError, ValueError) as err:  # missing or damaged data: say so, keep the page
            st.warning(f"No test images to sample: {err}")
            return []


# ----------------------------------------------------------------------------- results
def top_k(probs: np.ndarray, classes: list[str], k: int = TOP_K) -> list[tuple[str, float]]:
    order = np.argsort(-probs, kind="stable")[: min(k, len(probs))]
    return [(classes[i] if i < len(classes) else str(i), float(probs[i])) for i in order]


def enlarged(view: np.ndarray) -> Image.Image:
    image = Image.fromarray(view)
    if image.width < DISPLAY_SIZE:
        factor = max(1, DISPLAY_SIZE // image.width)
        image = image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    return image


def show_ranked(title: str, ranked: list[tuple[str, float]], truth: str | None) -> None:
    from cifar_resnets.app.charts import top_chart

    best, p = ranked[0]
    mark = "" if truth is None else (" ✓" if best == truth else " ✗")
    st.markdown(f"**{title}**  \ntop-1: **{best}** ({p:.1%}){mark}")
    st.altair_chart(top_chart(ranked), width="stretch")
    st.caption("top-5: " + " · ".join(f"{name} {q:.1%}" for name, q in ranked))


def _size_warnings(width: int, height: int, picked: list[Picked]) -> list[str]:
    from cifar_resnets.inference.preprocess import Preprocess

    found = (Preprocess.for_model(p.model).size_warning(width, height) for p in picked)
    return list(dict.fromkeys(w for w in found if w))


def classify_item(index: int, item: Item, picked: list[Picked], tta: str) -> int:
    """Show one image's results; returns how many predictions it asked for (0 when refused)."""
    pixels, fmt = decode(item.data, item.name)
    if pixels is None:
        st.error(fmt)
        return 0
    st.subheader(item.name if item.truth is None else f"{item.name} (true class: {item.truth})")
    height, width = pixels.shape[:2]
    same_classes = all(p.model.classes == picked[0].model.classes for p in picked)
    results = [predict(item.data, item.name, p.version, tta) for p in picked]
    with st.container(horizontal=True, gap="medium", key=f"item_{index}"):
        with st.container(width=CARD_WIDTH, key=f"card_{index}_image"):
            st.image(pixels, caption=item.caption(fmt, width, height), width=DISPLAY_SIZE)
            for warning in _size_warnings(width, height, picked):
                st.warning(warning)
        for j, (p, (probs, view)) in enumerate(zip(picked, results)):
            with st.container(width=CARD_WIDTH, key=f"card_{index}_{j}"):
                st.image(enlarged(view), caption=f"as the net sees it ({view.shape[1]}x{view.shape[0]})")
                show_ranked(p.label, top_k(probs, p.model.classes), item.truth)
        if len(picked) > 1 and same_classes:
            with st.container(width=CARD_WIDTH, key=f"card_{index}_ensemble"):
                mean = np.mean([probs for probs, _ in results], axis=0)
                show_ranked(
                    f"Ensemble (mean of {len(picked)})", top_k(mean, picked[0].model.classes), item.truth
                )
    if len(picked) > 1 and not same_classes:
        st.caption("No ensemble: the picked checkpoints do not predict the same classes.")
    return len(picked)


def classify_page(picked: list[Picked]) -> None:
    if not picked:
        st.info("Pick at least one checkpoint on the Models page first.")
        return
    tta = st.radio(
        "Test-time augmentation",
        TTA_MODES,
        format_func=TTA_TEXT.get,
        horizontal=True,
        key="tta",
        help="Average the probabilities over mirrored (and shifted) views of each image.",
    )
    items = uploaded_items()
    items += samples_section(picked)
    if not items:
        st.caption("Upload images, or sample test images, to see the predictions.")
        return
    status = st.empty()
    _tally.computed = 0
    asked = sum(classify_item(i, item, picked, tta) for i, item in enumerate(items))
    status.caption(
        f"{asked} prediction{'s' if asked != 1 else ''}: {_tally.computed} computed, "
        f"{asked - _tally.computed} from the cache"
    )
