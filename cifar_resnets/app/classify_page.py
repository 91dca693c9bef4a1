"""The Classify page: the picked checkpoints side by side on uploads or sampled test images.

Uploads are judged by content through ``data.images`` (the uploader takes any file), so a refused one is
named with its reason instead of vanishing in the browser's file filter. Each widget change reruns the
page, so decoded uploads and predictions are cached by image digest and checkpoint version: a click
that changes nothing computes nothing. The page is a fragment, so a click reruns it alone.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st
from PIL import Image

from cifar_resnets.app.guard import guarded
from cifar_resnets.app.models_page import Picked
from cifar_resnets.data.images import (
    ACCEPTED_EXTENSIONS,
    ACCEPTED_TEXT,
    decode_image,
    pixel_limit_text,
    recognised_format,
)
from cifar_resnets.errors import InputError
from cifar_resnets.inference.options import TTA_MODES

if TYPE_CHECKING:
    from cifar_resnets.inference.checkpoint import LoadedModel

TOP_K = 5
MAX_SAMPLES = 16
THUMB = 80  # the photo's longer side in a result row, in CSS pixels
VIEW = 52  # the net's view, enlarged pixel for pixel (both fit the narrowest cell side by side)
BATCH = 8  # images per forward while computing missing predictions (the progress bar's step)
KEPT_PREDICTIONS = 4096
KEPT_ROWS = 512
TTA_TEXT = {
    "none": "none",
    "flip": "flip (2 views)",
    "flip_translate": "flip + shifts (10 views)",
}
STYLE = """<style>
.cr-row { display: grid; grid-template-columns: repeat(auto-fill, minmax(138px, 1fr));
  gap: 6px 10px; align-items: start; padding: 8px 0 10px; border-bottom: 1px solid rgba(128,128,128,.3); }
.cr-cell { min-width: 0; font-size: 12px; line-height: 1.35; }
.cr-images { display: flex; flex-wrap: wrap; gap: 6px; align-items: flex-end; }
.cr-images img { display: block; }
.cr-view { image-rendering: pixelated; }
.cr-name { font-weight: 600; overflow-wrap: anywhere; }
.cr-note { opacity: .75; overflow-wrap: anywhere; }
.cr-warn { color: #9a6700; overflow-wrap: anywhere; }
.cr-title { font-weight: 600; overflow-wrap: anywhere; margin-bottom: 2px; }
.cr-bar { display: grid; grid-template-columns: minmax(0, 5.6em) 1fr 3.3em; gap: 4px; align-items: center; }
.cr-label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.cr-track { height: 10px; background: rgba(128,128,128,.18); border-radius: 2px; }
.cr-fill { height: 10px; background: #4c78a8; border-radius: 2px; }
.cr-truth .cr-label { font-weight: 700; }
.cr-truth .cr-fill { background: #54a24b; }
.cr-p { text-align: right; font-variant-numeric: tabular-nums; }
</style>"""


class _RunTally(threading.local):
    """Predictions computed on the current rerun; each session's script runs in a thread of its own."""

    computed = 0


_tally = _RunTally()


@dataclass(frozen=True)
class Item:
    """An image to classify: ``data`` is its file (an upload, or a test image as PNG)."""

    name: str
    data: bytes
    source: str  # "uploaded", "cifar10 test image", ...
    truth: str | None = None

    @cached_property
    def digest(self) -> str:
        """The content's digest, the key of everything kept for it (hashed once per rerun)."""
        return _digest(self.data)


@dataclass(frozen=True)
class Decoded:
    """An image as the page uses it, or ``refusal`` (the decoder's one line) when it is not one."""

    pixels: np.ndarray | None
    caption: str
    thumbnail: str = ""  # a data: URI
    refusal: str | None = None


class _Kept(OrderedDict):
    """The newest ``limit`` entries (predictions, drawn rows) of this process, shared by its sessions."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.lock = limit, threading.Lock()

    def put(self, key: tuple, value: object) -> None:
        with self.lock:
            self[key] = value
            while len(self) > self.limit:
                self.popitem(last=False)


@st.cache_resource(show_spinner=False)
def _predictions() -> _Kept:
    return _Kept(KEPT_PREDICTIONS)


def _digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


# ----------------------------------------------------------------------------- cached work
def _data_uri(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def _frames(data: bytes) -> int:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(getattr(image, "n_frames", 1))
    except Exception:  # noqa: BLE001 - only a caption's detail; the decoder has judged the file
        return 1


@st.cache_resource(max_entries=256, show_spinner=False)
def decode(digest: str, name: str, source: str, _data: bytes) -> Decoded:
    """An image file decoded once per content (``digest``), with its caption and thumbnail."""
    try:
        image = decode_image(_data, name)
    except InputError as err:
        return Decoded(None, "", refusal=str(err))
    width, height = image.size
    if source == "uploaded":
        fmt = recognised_format(_data) or "?"
        caption = f"uploaded {fmt}{_named_as(name, fmt)}, {width}x{height}"
        frames = _frames(_data) if fmt in ("GIF", "PNG", "WEBP") else 1
        if frames > 1:
            caption += f", first of its {frames} frames"
    else:  # a test image's PNG is only how the app passes it on
        caption = f"{source}, {width}x{height}"
    thumb = image.copy()
    thumb.thumbnail((THUMB * 2, THUMB * 2))
    return Decoded(np.asarray(image), caption, _data_uri(thumb, "JPEG" if thumb.width > 64 else "PNG"))


def _missing(
    items: list[tuple[Item, Decoded]], picked: list[Picked], tta: str
) -> list[tuple[int, list[int]]]:
    """(checkpoint index, indices of its images without a kept prediction) for each checkpoint."""
    kept = _predictions()
    todo = []
    for j, p in enumerate(picked):
        rows = [i for i, (item, _) in enumerate(items) if (item.digest, p.version, tta) not in kept]
        if rows:
            todo.append((j, rows))
    return todo


def compute_missing(items: list[tuple[Item, Decoded]], picked: list[Picked], tta: str) -> None:
    """Every prediction not kept yet, one checkpoint at a time in batches, under a counting progress bar."""
    todo = _missing(items, picked, tta)
    total = sum(len(rows) for _, rows in todo)
    if not total:
        return
    import torch

    from cifar_resnets.inference.predict import views_probs
    from cifar_resnets.inference.preprocess import Preprocess

    kept, done = _predictions(), 0
    bar = st.progress(0.0, text=f"Predicting 0 of {total} ...")
    for j, rows in todo:
        p = picked[j]
        pre = Preprocess.for_model(p.model)
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            bar.progress(
                done / total,
                text=f"Predicting {done + 1}-{done + len(chunk)} of {total}: {p.name}"
                + (f", {TTA_TEXT[tta]}" if tta != "none" else ""),
            )
            views = torch.stack([pre.view(Image.fromarray(items[i][1].pixels)) for i in chunk])
            probs = views_probs(p.model, views, tta=tta, device="cpu").numpy()
            for i, view, prob in zip(chunk, views, probs):
                kept.put((items[i][0].digest, p.version, tta), (prob, view.permute(1, 2, 0).numpy()))
            _tally.computed += len(chunk)
            done += len(chunk)
    bar.empty()


def predict(item: Item, p: Picked, tta: str) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [C], the view the net sees [S, S, 3]), computed by ``compute_missing``."""
    return _predictions()[(item.digest, p.version, tta)]


# ----------------------------------------------------------------------------- inputs
def _named_as(name: str, fmt: str) -> str:
    """`` (named .png)`` when the file's name suggests another format than its content."""
    suffix = Path(name).suffix.lower()
    expected = Image.registered_extensions().get(suffix)
    return f" (named {suffix})" if expected and expected != fmt else ""


def uploaded_items() -> list[Item]:
    limit = st.get_option("server.maxUploadSize")
    files = st.file_uploader(
        f"Images to classify ({ACCEPTED_TEXT}; up to {limit} MB and {pixel_limit_text()} each)",
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
    """The data package's test split and class names, kept while the test file is unchanged (``mtime_ns``)."""
    from cifar_resnets.data.cifar_files import read_class_names, read_split

    return (*read_split(folder, name, "test"), read_class_names(folder, name))


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


def _view_uri(view: np.ndarray) -> str:
    return _data_uri(Image.fromarray(view))


def _size_warnings(width: int, height: int, picked: list[Picked]) -> list[str]:
    from cifar_resnets.inference.preprocess import Preprocess

    found = (Preprocess.for_model(p.model).size_warning(width, height) for p in picked)
    return list(dict.fromkeys(w for w in found if w))


def ranked_html(title: str, ranked: list[tuple[str, float]], truth: str | None) -> str:
    """One checkpoint's card: its name, its top-1, and a bar per class of its top-5, each labelled."""
    best, p = ranked[0]
    mark = "" if truth is None else (" ✓" if best == truth else " ✗")
    bars = "".join(
        f'<div class="cr-bar{" cr-truth" if name == truth else ""}">'
        f'<span class="cr-label" title="{html.escape(name)}">{html.escape(name)}</span>'
        f'<span class="cr-track"><span class="cr-fill" style="display:block;width:{q:.1%}"></span></span>'
        f'<span class="cr-p">{q:.1%}</span></div>'
        for name, q in ranked
    )
    return (
        f'<div class="cr-cell cr-model"><div class="cr-title">{html.escape(title)}</div>'
        f'<div class="cr-top1">top-1: <b>{html.escape(best)}</b> {p:.1%}{mark}</div>{bars}</div>'
    )


@dataclass(frozen=True)
class Row:
    """One image's results: the drawn row and its summary (model name -> (top-1, confidence))."""

    html: str
    summary: dict[str, tuple[str, float]]


@st.cache_resource(show_spinner=False)
def _rows() -> _Kept:
    return _Kept(KEPT_ROWS)


def _kept_row(item: Item, decoded: Decoded, picked: list[Picked], tta: str) -> Row:
    """``image_row``, drawn once per (image, its name and truth, checkpoints, augmentation)."""
    key = (item.digest, item.name, item.source, item.truth, tuple((p.name, p.version) for p in picked), tta)
    kept = _rows()
    if key not in kept:
        kept.put(key, image_row(item, decoded, picked, tta))
    return kept[key]


def image_row(item: Item, decoded: Decoded, picked: list[Picked], tta: str) -> Row:
    """The photo and the net's view, then each checkpoint's top-5 and the ensemble's."""
    height, width = decoded.pixels.shape[:2]
    results = [predict(item, p, tta) for p in picked]
    views = list(dict.fromkeys(_view_uri(view) for _, view in results))
    sizes = sorted({f"{v.shape[1]}x{v.shape[0]}" for _, v in results})
    name = item.name if item.truth is None else f"{item.name} (true class: {item.truth})"
    warnings = "".join(
        f'<div class="cr-warn">⚠ {html.escape(w)}</div>' for w in _size_warnings(width, height, picked)
    )
    seen = "".join(
        f'<img class="cr-view" src="{uri}" width="{VIEW}" height="{VIEW}" alt="as the net sees it">'
        for uri in views
    )
    cells = [
        f'<div class="cr-cell cr-photo"><div class="cr-name">{html.escape(name)}</div>'
        f'<div class="cr-images"><img src="{decoded.thumbnail}" alt="{html.escape(item.name)}" '
        f'style="max-width:{THUMB}px;max-height:{THUMB}px">{seen}</div>'
        f'<div class="cr-note">{html.escape(decoded.caption)}; as the net sees it: {", ".join(sizes)}</div>'
        f"{warnings}</div>"
    ]
    summary: dict[str, tuple[str, float]] = {}
    for p, (probs, _) in zip(picked, results):
        ranked = top_k(probs, p.model.classes)
        summary[p.name] = ranked[0]
        cells.append(ranked_html(p.name, ranked, item.truth))
    if len(picked) > 1 and all(p.model.classes == picked[0].model.classes for p in picked):
        ranked = top_k(np.mean([probs for probs, _ in results], axis=0), picked[0].model.classes)
        title = f"Ensemble (mean of {len(picked)})"
        summary[title] = ranked[0]
        cells.append(ranked_html(title, ranked, item.truth))
    return Row(f'<div class="cr-row">{"".join(cells)}</div>', summary)


def summary_table(items: list[Item], rows: list[Row]) -> list[dict[str, str]]:
    """Image x model -> "top-1 confidence", one row per image (the true class when known)."""
    table = []
    for item, row in zip(items, rows):
        line = {"image": item.name}
        if any(i.truth for i in items):
            line["true class"] = item.truth or ""
        line.update({model: f"{best} {p:.1%}" for model, (best, p) in row.summary.items()})
        table.append(line)
    return table


def summary_csv(items: list[Item], rows: list[Row]) -> str:
    """The summary in long form (image, true class, model, top-1, confidence), for a spreadsheet."""
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["image", "true class", "model", "top-1", "confidence"])
    for item, row in zip(items, rows):
        for model, (best, p) in row.summary.items():
            writer.writerow([item.name, item.truth or "", model, best, f"{p:.4f}"])
    return buffer.getvalue()


@st.fragment
def classify_page(picked: list[Picked]) -> None:
    guarded("Classify", _classify_page, picked)


def _classify_page(picked: list[Picked]) -> None:
    st.subheader("Classify")
    if not picked:
        st.info(
            "Pick at least one checkpoint on the Models page first (or type a checkpoint's path there); "
            "then upload images here or sample test images."
        )
        return
    st.html(STYLE)
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
    decoded = [(item, decode(item.digest, item.name, item.source, item.data)) for item in items]
    for _, d in decoded:
        if d.refusal:
            st.error(d.refusal)
    usable = [(item, d) for item, d in decoded if d.refusal is None]
    if not usable:
        return
    status = st.empty()
    _tally.computed = 0
    compute_missing(usable, picked, tta)
    rows = [_kept_row(item, d, picked, tta) for item, d in usable]
    asked = len(usable) * len(picked)
    status.caption(
        f"{asked} prediction{'s' if asked != 1 else ''}: {_tally.computed} computed, "
        f"{asked - _tally.computed} from the cache"
    )
    if len(picked) > 1 and any(p.model.classes != picked[0].model.classes for p in picked):
        st.caption("No ensemble: the picked checkpoints do not predict the same classes.")
    shown = [item for item, _ in usable]
    plural = "s" if len(shown) != 1 else ""
    label = f"Summary table: the top-1 of every model for {len(shown)} image{plural} (CSV)"
    with st.expander(label, key="summary_open", on_change="rerun") as box:
        if box.open:  # built only when it is on screen
            st.dataframe(summary_table(shown, rows), hide_index=True, width="stretch")
            st.download_button(
                "Download as CSV",
                summary_csv(shown, rows),
                file_name="predictions.csv",
                mime="text/csv",
                on_click="ignore",
                key="download_summary",
            )
    for row in rows:
        st.html(row.html)
