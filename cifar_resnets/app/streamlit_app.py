"""Streamlit app: classify images with trained checkpoints, compare and ensemble them, browse runs.

Start it with ``cifar-app --outputs outputs`` (or ``streamlit run cifar_resnets/app.py -- --outputs
outputs``). Three pages (tabs):

- **Models**: the checkpoints found under the outputs folder (model, dataset, test accuracy, date);
  pick one or several, or type a path. Each loads once (cached on path + modification time) with the
  safe loader: ``torch.load(weights_only=True)``, so nothing in a checkpoint file can run code.
- **Classify**: upload images (or sample test images of the checkpoint's dataset when it is on
  disk); each picked checkpoint shows the image as its net sees it and its top-5 classes, side by
  side, plus the ensemble (mean of the probabilities) when the checkpoints share their classes.
- **Runs**: runs and sweeps with their metrics, and training curves from the TensorBoard scalars.

Bad input (a file that is not an image, a truncated image, a decompression bomb, an unusable
checkpoint) shows one error message in the page; the app keeps serving.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
import torch
from PIL import Image

from cifar_resnets.data.images import ACCEPTED_EXTENSIONS as EXTENSIONS
from cifar_resnets.data.images import ImageDecodeError, decode_image
from cifar_resnets.inference.checkpoint import CheckpointError, LoadedModel, load_model
from cifar_resnets.inference.predict import views_probs
from cifar_resnets.inference.preprocess import Preprocess, view_to_pil
from cifar_resnets.reporting.runs import (
    CheckpointEntry,
    Run,
    find_checkpoints,
    find_runs,
    group_sweeps,
    read_scalars,
)

TOP_K = 5
MAX_SAMPLES = 16
DISPLAY_SIZE = 128  # small model inputs (32x32) are shown enlarged, pixel for pixel
PREFERRED_CURVES = ("val/acc", "val/loss", "train/loss_epoch", "train/acc")
OUTPUTS_ENV = "CIFAR_APP_OUTPUTS"

# An image to classify: display name, decoded RGB image, true class name when known.
Item = tuple[str, Image.Image, "str | None"]


# ----------------------------------------------------------------------------- helpers
def default_outputs() -> str:
    """``--outputs`` after the ``--`` of ``streamlit run``, else $CIFAR_APP_OUTPUTS, else ``outputs``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--outputs")
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args.outputs or os.environ.get(OUTPUTS_ENV, "outputs")


def one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


@st.cache_resource(max_entries=16, show_spinner="Loading checkpoint ...")
def _load_cached(path: str, mtime_ns: int, size: int) -> LoadedModel:
    # mtime and size are part of the cache key: a checkpoint rewritten by a running job reloads.
    return load_model(path)


def get_model(path: str | Path) -> LoadedModel:
    """The checkpoint's net, loaded once per file version; raises ``CheckpointError``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist; pick one on the list or fix the path", "missing"
        )
    stat = path.stat()
    return _load_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def model_label(model: LoadedModel) -> str:
    """Short, distinguishing name: model and the run folder that wrote the checkpoint."""
    run = model.path.parent.parent.name if model.path.parent.name == "checkpoints" else model.path.stem
    return f"{model.model_name} · {run}"


@torch.inference_mode()
def predict(model: LoadedModel, views: list[torch.Tensor]) -> np.ndarray:
    """Class probabilities [N, num_classes] for uint8 views already resized/cropped for this net."""
    return views_probs(model, torch.stack(views), device="cpu").numpy()


def top_k(probs: np.ndarray, classes: list[str], k: int = TOP_K) -> list[tuple[str, float]]:
    order = np.argsort(-probs, kind="stable")[: min(k, len(probs))]
    return [(classes[i] if i < len(classes) else str(i), float(probs[i])) for i in order]


def top_chart(ranked: list[tuple[str, float]]) -> alt.Chart:
    frame = pd.DataFrame(ranked, columns=["class", "probability"])
    base = alt.Chart(frame).encode(
        y=alt.Y("class:N", sort=None, title=None),
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title=None),
        tooltip=["class", alt.Tooltip("probability:Q", format=".2%")],
    )
    bars = base.mark_bar()
    text = base.mark_text(align="left", dx=3).encode(text=alt.Text("probability:Q", format=".1%"))
    return (bars + text).properties(height=28 * len(frame) + 10)


def enlarged(view: torch.Tensor) -> Image.Image:
    image = view_to_pil(view)
    if image.width < DISPLAY_SIZE:
        factor = max(1, DISPLAY_SIZE // image.width)
        image = image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    return image


def show_ranked(title: str, ranked: list[tuple[str, float]], truth: str | None) -> None:
    best, p = ranked[0]
    mark = "" if truth is None else (" ✓" if best == truth else " ✗")
    st.markdown(f"**{title}**  \ntop-1: **{best}** ({p:.1%}){mark}")
    st.altair_chart(top_chart(ranked))
    st.caption("top-5: " + " · ".join(f"{name} {q:.1%}" for name, q in ranked))


# ----------------------------------------------------------------------------- Models page
def _checkpoint_choices(outputs: Path, entries: list[CheckpointEntry]) -> dict[str, CheckpointEntry]:
    def key(entry: CheckpointEntry) -> str:
        return str(entry.path.relative_to(outputs)) if entry.path.is_relative_to(outputs) else str(entry.path)

    return {key(e): e for e in entries}


def models_page(outputs: Path) -> list[LoadedModel]:
    """Pick checkpoints; returns the ones that loaded (each failure is shown as an error)."""
    entries = find_checkpoints(outputs)
    choices = _checkpoint_choices(outputs, entries)
    if entries:
        st.dataframe(pd.DataFrame([e.row() for e in entries]), hide_index=True)
    else:
        st.info(f"No checkpoints found under `{outputs}`. Train one with `cifar-train` or type a path below.")

    def describe(key: str) -> str:
        run = choices[key].run
        acc = f"{run.test_acc:.2%}" if run.test_acc is not None else "no test acc"
        return f"{run.model} · {run.data} · {acc} · {key}"

    # Preselect the newest run's last.ckpt, so the Classify page works straight away.
    newest = [key for key, entry in choices.items() if entry.path.name == "last.ckpt"][:1]
    picked = st.multiselect(
        "Checkpoints to use",
        options=list(choices),
        default=newest or list(choices)[:1],
        format_func=describe,
        key="checkpoints",
        help="Several checkpoints are compared side by side and averaged into an ensemble.",
    )
    typed = st.text_input(
        "Or type checkpoint paths (comma-separated)", key="typed_paths", placeholder="path/to/last.ckpt"
    )
    paths = [choices[k].path for k in picked]
    paths += [Path(p.strip()) for p in typed.split(",") if p.strip()]

    models: list[LoadedModel] = []
    for path in dict.fromkeys(paths):
        try:
            models.append(get_model(path))
        except CheckpointError as err:
            st.error(f"Cannot use this checkpoint: {one_line(err)}")
        except Exception as err:  # noqa: BLE001 - any other failure of a bad file is still one message
            st.error(
                f"Cannot use checkpoint {path}: it is not a readable checkpoint of this suite "
                f"({type(err).__name__}: {one_line(err)})"
            )
    if models:
        rows = [
            {
                "checkpoint": model_label(m),
                "model": m.model_name,
                "data": m.data_name,
                "classes": m.num_classes,
                "input": f"{m.image_size}x{m.image_size}",
                "test acc": m.metrics.get("test/acc"),
                "params": sum(p.numel() for p in m.net.parameters()),
                "path": str(m.path),
            }
            for m in models
        ]
        st.markdown(f"**Loaded {len(models)} checkpoint{'s' if len(models) > 1 else ''}**")
        st.dataframe(pd.DataFrame(rows), hide_index=True)
    return models


# ----------------------------------------------------------------------------- test-image samples
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


def _imagenet_val_files(root: Path, classes: list[str]) -> list[tuple[Path, str]]:
    files = []
    for wnid in classes:
        folder = root / "val" / wnid
        if folder.is_dir():
            names = sorted(folder.iterdir())
            files += [(p, wnid) for p in names if p.suffix.lower().lstrip(".") in EXTENSIONS]
    return files


def sample_test_images(model: LoadedModel, count: int, seed: int) -> list[Item]:
    """``count`` random test images of the checkpoint's dataset, read from its ``data.root``."""
    from cifar_resnets.data.cifar_files import CIFAR_SPECS

    root = _data_root(model)
    if root is None:
        raise FileNotFoundError("the checkpoint's config has no data.root")
    rng = np.random.default_rng(seed)
    name = str((model.config.get("data") or {}).get("name", ""))
    if name in CIFAR_SPECS:
        folder = root / CIFAR_SPECS[name].folder
        test_file = folder / CIFAR_SPECS[name].test_files[0]
        if not test_file.is_file():
            raise FileNotFoundError(f"{name} test images not found at {test_file}")
        images, labels, names = _cifar_test_split(str(folder), name, test_file.stat().st_mtime_ns)
        picks = rng.choice(len(labels), size=min(count, len(labels)), replace=False)
        return [
            (f"{name} test image #{i}", Image.fromarray(images[i].transpose(1, 2, 0)), names[labels[i]])
            for i in picks
        ]
    files = _imagenet_val_files(root, model.classes)
    if not files:
        raise FileNotFoundError(f"no validation images under {root / 'val'} for this checkpoint's classes")
    picks = rng.choice(len(files), size=min(count, len(files)), replace=False)
    items: list[Item] = []
    for i in picks:
        path, wnid = files[i]
        try:
            items.append((path.name, decode_image(path.read_bytes(), path.name), wnid))
        except (ImageDecodeError, OSError) as err:
            st.warning(f"Skipped a test image: {one_line(err)}")
    return items


def samples_section(models: list[LoadedModel]) -> list[Item]:
    model = models[0]
    root = _data_root(model)
    with st.expander(f"Sample test images of {model.data_name} (from data.root = {root})"):
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
        except Exception as err:  # noqa: BLE001 - missing or damaged data: say so, keep the page
            st.warning(f"No test images to sample: {one_line(err)}")
            return []


# ----------------------------------------------------------------------------- Classify page
def uploaded_items() -> list[Item]:
    files = st.file_uploader(
        "Images to classify (PNG, JPEG, WebP, BMP, GIF; any size)",
        type=list(EXTENSIONS),
        accept_multiple_files=True,
        key="uploads",
    )
    items: list[Item] = []
    for file in files or []:
        try:
            items.append((file.name, decode_image(file.getvalue(), file.name), None))
        except ImageDecodeError as err:
            st.error(str(err))
    return items


def classify_item(item: Item, models: list[LoadedModel]) -> None:
    name, image, truth = item
    st.subheader(name if truth is None else f"{name} (true class: {truth})")
    same_classes = all(m.classes == models[0].classes for m in models)
    ensemble = len(models) > 1 and same_classes
    cols = st.columns([1] + [2] * (len(models) + int(ensemble)))
    with cols[0]:
        st.image(image, caption=f"uploaded, {image.width}x{image.height}", width=DISPLAY_SIZE)
    all_probs = []
    for col, model in zip(cols[1:], models):
        with col:
            preprocess = Preprocess.for_model(model)
            view = preprocess.view(image)
            probs = predict(model, [view])[0]
            all_probs.append(probs)
            st.image(enlarged(view), caption=f"as the net sees it ({view.shape[2]}x{view.shape[1]})")
            show_ranked(model_label(model), top_k(probs, model.classes), truth)
    if ensemble:
        with cols[-1]:
            mean = np.mean(all_probs, axis=0)
            show_ranked(f"Ensemble (mean of {len(models)})", top_k(mean, models[0].classes), truth)
    elif len(models) > 1:
        st.caption("No ensemble: the picked checkpoints do not predict the same classes.")


def classify_page(models: list[LoadedModel]) -> None:
    if not models:
        st.info("Pick at least one checkpoint on the Models page first.")
        return
    items = uploaded_items()
    items += samples_section(models)
    if not items:
        st.caption("Upload images, or sample test images, to see the predictions.")
    for item in items:
        try:
            classify_item(item, models)
        except Exception as err:  # noqa: BLE001 - one odd image or net must not hide the others
            st.error(f"Could not classify {item[0]}: {type(err).__name__}: {one_line(err)}")


# ----------------------------------------------------------------------------- Runs page
def _events_signature(run: Run) -> tuple[tuple[str, int, int], ...]:
    files = sorted(run.path.glob("events.out.tfevents.*"))
    return tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)


@st.cache_data(max_entries=256, show_spinner=False)
def _cached_scalars(run_dir: str, signature: tuple) -> dict[str, list[tuple[int, float]]]:
    # The signature (event files' names, sizes, times) is the cache key: a running job's new
    # scalars show up on the next rerun.
    return read_scalars(run_dir)


def runs_page(outputs: Path) -> None:
    runs = find_runs(outputs)
    if not runs:
        st.info(f"No runs found under `{outputs}`.")
        return
    table = pd.DataFrame([r.row() for r in runs if r.sweep is None])
    st.markdown(f"**Runs** ({len(table)})")
    if len(table):
        st.dataframe(table, hide_index=True)
    for sweep, jobs in group_sweeps(runs).items():
        where = sweep.relative_to(outputs) if sweep.is_relative_to(outputs) else sweep
        st.markdown(f"**Sweep** `{where}` ({len(jobs)} jobs)")
        st.dataframe(pd.DataFrame([j.row() for j in jobs]), hide_index=True)

    by_name = {r.name: r for r in runs}
    picked = st.multiselect("Runs to plot", options=list(by_name), default=list(by_name)[:3], key="plot_runs")
    curves: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for name in picked:
        run = by_name[name]
        curves[name] = _cached_scalars(str(run.path), _events_signature(run))
    tags = sorted({tag for scalars in curves.values() for tag in scalars})
    if not tags:
        st.caption("The picked runs logged no scalars (logger=none, or still starting).")
        return
    default_tags = [t for t in PREFERRED_CURVES if t in tags] or tags[:2]
    shown = st.multiselect("Curves", options=tags, default=default_tags, key="plot_tags")
    for tag in shown:
        rows = [
            {"run": name, "step": step, tag: value}
            for name, scalars in curves.items()
            for step, value in scalars.get(tag, [])
        ]
        if not rows:
            continue
        chart = (
            alt.Chart(pd.DataFrame(rows))
            .mark_line(point=len(rows) < 60)
            .encode(x="step:Q", y=alt.Y(f"{tag}:Q", scale=alt.Scale(zero=False)), color="run:N")
            .properties(title=tag, height=260)
        )
        st.altair_chart(chart)


# ----------------------------------------------------------------------------- page layout
def guarded(page: str, func: Any, *args: Any) -> Any:
    """Run one page; an unexpected failure becomes a message in that page, never a dead app."""
    try:
        return func(*args)
    except Exception as err:  # noqa: BLE001
        st.error(f"The {page} page hit a problem: {type(err).__name__}: {one_line(err)}")
        return None


def main() -> None:
    st.set_page_config(page_title="cifar_resnets", page_icon="🔎", layout="wide")
    with st.sidebar:
        st.title("cifar_resnets")
        outputs = Path(st.text_input("Outputs folder", value=default_outputs(), key="outputs")).expanduser()
        if not outputs.is_dir():
            st.warning(f"`{outputs}` is not a folder; no runs to list.")
        st.caption("Runs and checkpoints written by `cifar-train` below this folder are listed.")
    models_tab, classify_tab, runs_tab = st.tabs(["Models", "Classify", "Runs"])
    with models_tab:
        models = guarded("Models", models_page, outputs) or []
    with classify_tab:
        guarded("Classify", classify_page, models)
    with runs_tab:
        guarded("Runs", runs_page, outputs)


main()
