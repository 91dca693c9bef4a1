"""The Models page: the checkpoints found under the outputs folder, which of them load, and the picker.

Every checkpoint found is judged by ``inference.checkpoint.load_model`` once per file version (path,
modification time and size: a checkpoint rewritten by a running job is judged again). The ones that
load are offered, the newest preselected, so the Classify page works on first sight; the others are
listed apart, each with the ``CheckpointError`` message that cifar-eval and cifar-predict print for
that file, word for word.

torch is imported only here, after the sidebar and the tabs are drawn (see ``streamlit_app``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from cifar_resnets.app.text import NOT_TESTED, checkpoint_row, clean_path_text, number, percent
from cifar_resnets.reporting.runs import CheckpointEntry, find_checkpoints

if TYPE_CHECKING:
    from cifar_resnets.inference.checkpoint import CheckpointError, LoadedModel

# A file version: resolved path, modification time (ns) and size; the key of every cache below.
Version = tuple[str, int, int]
LOADED_NETS = 16  # nets kept in memory; judging a checkpoint keeps only its verdict


@dataclass(frozen=True)
class Picked:
    """A loaded checkpoint and the file version it was loaded from (the key of its cached results)."""

    model: LoadedModel
    version: Version

    @property
    def label(self) -> str:
        """Short, distinguishing name: model and the run folder that wrote the checkpoint."""
        path = self.model.path
        run = path.parent.parent.name if path.parent.name == "checkpoints" else path.stem
        return f"{self.model.model_name} · {run}"


def file_version(path: Path) -> Version | None:
    """The cache key of a checkpoint file, or None when there is no file to read."""
    path = path.expanduser()
    if not path.is_file():
        return None
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


@st.cache_resource(max_entries=LOADED_NETS, show_spinner=False)
def load_version(path: str, mtime_ns: int, size: int) -> LoadedModel | CheckpointError:
    """The net of one checkpoint version, or why it cannot be used; a refusal is kept like a net,
    so a broken file is read once per version, not on every click."""
    from cifar_resnets.inference.checkpoint import CheckpointError, load_model

    try:
        return load_model(path)
    except CheckpointError as err:
        return err


@st.cache_data(max_entries=4096, show_spinner=False)
def problem_of(path: str, mtime_ns: int, size: int) -> str | None:
    """None when the checkpoint version loads, else its one-line refusal (kept for every file found,
    while only the picked nets stay in memory)."""
    result = load_version(path, mtime_ns, size)
    return str(result) if isinstance(result, Exception) else None


def load_path(path: Path) -> Picked | CheckpointError:
    """A typed or listed path: its net, or the refusal ``load_model`` gives (missing file, folder...)."""
    version = file_version(path)
    if version is None:
        from cifar_resnets.inference.checkpoint import CheckpointError, load_model

        try:  # no file: load_model says whether it is missing or a folder, without reading anything
            load_model(path.expanduser())
        except CheckpointError as err:
            return err
        version = file_version(path)  # the file appeared meanwhile
        if version is None:
            raise RuntimeError(f"load_model read {path}, which is not a file")
    result = load_version(*version)
    return result if isinstance(result, Exception) else Picked(result, version)


def _key(outputs: Path, entry: CheckpointEntry) -> str:
    return str(entry.path.relative_to(outputs)) if entry.path.is_relative_to(outputs) else str(entry.path)


def _loaded_table(picked: list[Picked]) -> None:
    rows = [
        {
            "checkpoint": p.label,
            "model": p.model.model_name,
            "data": p.model.data_name,
            "classes": number(p.model.num_classes),
            "input": f"{p.model.image_size}x{p.model.image_size}",
            "test acc": percent(p.model.metrics.get("test/acc"), NOT_TESTED),
            "params": number(sum(t.numel() for t in p.model.net.parameters())),
            "path": str(p.model.path),
        }
        for p in picked
    ]
    st.markdown(f"**Loaded {len(picked)} checkpoint{'s' if len(picked) > 1 else ''}**")
    st.dataframe(rows, hide_index=True)


def models_page(outputs: Path | None) -> list[Picked]:
    """Pick checkpoints; returns the ones that loaded (each refusal is shown as its one-line error)."""
    entries = find_checkpoints(outputs) if outputs is not None else []
    usable: dict[str, CheckpointEntry] = {}
    broken: list[tuple[CheckpointEntry, str]] = []
    if entries:
        with st.spinner(f"Checking {len(entries)} checkpoint{'s' if len(entries) > 1 else ''} ..."):
            for entry in entries:
                version = file_version(entry.path)
                if version is None:  # deleted since it was listed
                    continue
                problem = problem_of(*version)
                if problem is None:
                    usable[_key(outputs, entry)] = entry
                else:
                    broken.append((entry, problem))
    if usable:
        st.dataframe([checkpoint_row(e) for e in usable.values()], hide_index=True)
    elif outputs is not None:
        st.info(
            f"No usable checkpoints under `{outputs}`. Train one with `cifar-train` or type a path below."
        )

    def describe(key: str) -> str:
        run = usable[key].run
        return f"{run.model} · {run.data} · {percent(run.test_acc, NOT_TESTED)} · {key}"

    # The newest checkpoint that loads (entries come newest first), so Classify works straight away.
    chosen = st.multiselect(
        "Checkpoints to use",
        options=list(usable),
        default=list(usable)[:1],
        format_func=describe,
        key="checkpoints",
        help="Several checkpoints are compared side by side and averaged into an ensemble.",
    )
    typed = st.text_input(
        "Or type checkpoint paths (comma-separated)", key="typed_paths", placeholder="path/to/last.ckpt"
    )
    paths = [usable[k].path for k in chosen]
    paths += [Path(clean_path_text(p)) for p in typed.split(",") if clean_path_text(p)]

    picked: list[Picked] = []
    for path in dict.fromkeys(paths):
        result = load_path(path)
        if isinstance(result, Picked):
            picked.append(result)
        else:
            st.error(str(result))
    if picked:
        _loaded_table(picked)
    if broken:
        where = f" under `{outputs}`" if outputs is not None else ""
        st.markdown(f"**{len(broken)} checkpoint{'s' if len(broken) > 1 else ''}{where} cannot be used**")
        for _, problem in broken:
            st.error(problem)
    return picked
