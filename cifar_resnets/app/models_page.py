"""The Models page: which checkpoints and named models load, and the picker.

Each checkpoint is judged once per file version (path, mtime, size), and one that does not load is
listed with the same ``CheckpointError`` line cifar-eval prints. The selection is kept by name, apart
from the widget, so a mistyped folder or a file gone for a moment does not lose it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import streamlit as st

from cifar_resnets.app.scan import Scan
from cifar_resnets.app.text import NOT_TESTED, clean_path_text, number, percent, shortened, started
from cifar_resnets.errors import CheckpointError
from cifar_resnets.reporting.runs import Run

if TYPE_CHECKING:
    from cifar_resnets.inference.checkpoint import LoadedModel

# A source version: resolved path, modification time (ns) and size of a file, or (the named model or
# missing path, 0, 0); the key of every cache below.
Version = tuple[str, int, int]
LOADED_NETS = 16  # nets kept in memory; judging a checkpoint keeps only its verdict
WANTED = "wanted_checkpoints"  # the names the user picked, kept apart from the widget


@dataclass(frozen=True)
class Choice:
    """A picker entry: its unique name and what ``load_model`` reads (a path, or a named model)."""

    name: str
    source: str
    run: Run | None = field(default=None, compare=False)
    same_as: tuple[str, ...] = ()  # other files of the run that hold the same weights


@dataclass(frozen=True)
class Verdict:
    """What judging a source found: None for ``problem`` when it loads, with the facts the table shows."""

    problem: str | None
    digest: str = ""
    model: str = ""
    data: str = ""
    classes: int = 0
    input: str = ""
    params: int = 0
    test_acc: float | None = None


@dataclass(frozen=True)
class Picked:
    """A loaded net under its choice's name, and the source version it came from (its results' key)."""

    name: str
    model: LoadedModel
    version: Version


def source_version(source: str) -> Version:
    """The cache key of a source: a file's version, else the text itself (a named or a missing one)."""
    path = Path(source).expanduser()
    try:
        if path.is_file():
            stat = path.stat()
            return str(path.resolve()), stat.st_mtime_ns, stat.st_size
    except OSError:  # a name the system refuses (over 255 bytes...): load_model says so below
        pass
    return source, 0, 0


@st.cache_resource(max_entries=LOADED_NETS, show_spinner=False)
def load_version(source: str, mtime_ns: int, size: int) -> LoadedModel | CheckpointError:
    """The net of one source version, or why it cannot be used; a refusal is kept like a net, so a
    broken file is read once per version, not on every click."""
    from cifar_resnets.inference.checkpoint import load_model

    try:
        return load_model(source)
    except CheckpointError as err:
        return err
    except OSError as err:  # the system refuses the name itself (a component over 255 bytes...)
        return CheckpointError(
            f"{shortened(source)} cannot be read ({err.strerror or err}); "
            "type the path of a checkpoint file, e.g. RUN/checkpoints/last.ckpt",
            "missing",
        )


@st.cache_data(max_entries=4096, show_spinner=False)
def judge(source: str, mtime_ns: int, size: int) -> Verdict:
    """The verdict on one source version (kept for every file found, while only picked nets stay)."""
    result = load_version(source, mtime_ns, size)
    if isinstance(result, Exception):
        return Verdict(str(result))
    digest = hashlib.sha1(repr(result.classes).encode())  # the same weights naming other classes differ
    for name, tensor in result.net.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return Verdict(
        None,
        digest.hexdigest(),
        result.model_name,
        result.data_name,
        result.num_classes,
        f"{result.image_size}x{result.image_size}",
        sum(t.numel() for t in result.net.parameters()),
        _float(result.metrics.get("test/acc")),
    )


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# ----------------------------------------------------------------------------- what is offered
def _run_label(run: Run, clash: bool, outputs: Path) -> str:
    if not clash:
        return run.name
    return str(run.path.relative_to(outputs)) if run.path.is_relative_to(outputs) else str(run.path)


def checkpoint_choices(scan: Scan) -> tuple[list[Choice], list[tuple[Choice, str]]]:
    """(usable choices newest first, [(broken choice, its refusal)]), judged once per scan."""
    if scan.folder is None:
        return [], []
    memo = st.session_state.get("choices")
    if memo is not None and memo[0] is scan:
        return memo[1], memo[2]
    counts: dict[str, int] = {}
    for run in scan.runs:
        counts[run.name] = counts.get(run.name, 0) + 1
    usable: list[tuple[float, Choice]] = []
    broken: list[tuple[Choice, str]] = []
    files = [(run, path) for run in scan.runs for path in run.checkpoints]
    with st.spinner(f"Checking {len(files)} checkpoint{'s' if len(files) != 1 else ''} ..."):
        for run in scan.runs:
            by_digest: dict[str, list[Path]] = {}
            newest: dict[str, float] = {}
            for path in run.checkpoints:
                version = source_version(str(path))
                if version[1] == 0:  # gone since the scan
                    continue
                label = f"{_run_label(run, counts[run.name] > 1, scan.folder)} · {path.name}"
                verdict = judge(*version)
                if verdict.problem is not None:
                    broken.append((Choice(label, str(path), run), verdict.problem))
                    continue
                by_digest.setdefault(verdict.digest, []).append(path)
                newest[verdict.digest] = max(newest.get(verdict.digest, 0.0), version[1])
            for digest, paths in by_digest.items():
                # last.ckpt is the name a user knows; the epoch file of the same weights is noted
                paths.sort(key=lambda p: (p.name != "last.ckpt", p.name))
                label = f"{_run_label(run, counts[run.name] > 1, scan.folder)} · {paths[0].name}"
                same = tuple(p.name for p in paths[1:])
                usable.append((newest[digest], Choice(label, str(paths[0]), run, same)))
    usable.sort(key=lambda pair: pair[0], reverse=True)
    choices = [choice for _, choice in usable]
    st.session_state["choices"] = (scan, choices, broken)
    return choices, broken


def pretrained_choices() -> list[Choice]:
    """The published nets (``pretrained:<source>/<net>``), offered beside the checkpoints found, so the
    app is usable before any training. One is read (downloaded into the torch hub cache once) only when
    it is picked."""
    from cifar_resnets.models.pretrained import pretrained_names

    return [Choice(name, name) for name in pretrained_names()]


def _first_pick(found: list[Choice]) -> list[str]:
    """What the picker starts with: the newest checkpoint that loads. A published net is never picked
    unasked: reading it may download it."""
    return [found[0].name] if found else []


def typed_choices(typed: str, listed: list[Choice]) -> list[Choice]:
    """The typed paths (comma-separated) as choices; a file already listed is that entry, not a second."""
    by_file = {source_version(c.source)[0]: c for c in listed}
    names = {c.name for c in listed}
    found: list[Choice] = []
    for text in (clean_path_text(part) for part in typed.split(",")):
        if not text:
            continue
        version = source_version(text)
        if version[0] in by_file:
            found.append(by_file[version[0]])
            continue
        path = Path(text)
        name = f"{path.parent.parent.name} · {path.name}" if path.parent.name == "checkpoints" else text
        if name in names:
            name = version[0]
        names.add(name)
        found.append(Choice(name, text))
    return found


def _keep_selection() -> None:
    st.session_state[WANTED] = list(st.session_state["checkpoints"])


def _selection(options: list[str], first: list[str]) -> None:
    """The picker's value: what the user picked that is offered now, else ``first`` (``_first_pick``)."""
    if st.session_state.get(WANTED) is None and first:  # the first pick is kept like a user's
        st.session_state[WANTED] = first
    wanted = st.session_state.get(WANTED)
    kept = [name for name in wanted or [] if name in options]
    if wanted == [] or kept:  # an empty choice made on purpose stays empty
        st.session_state["checkpoints"] = kept
    else:
        st.session_state["checkpoints"] = first


# ----------------------------------------------------------------------------- the page
def _table(choices: list[Choice], verdicts: dict[str, Verdict], picked: set[str]) -> None:
    rows = []
    for choice in choices:
        verdict, run = verdicts[choice.name], choice.run
        same = f" (same weights: {', '.join(choice.same_as)})" if choice.same_as else ""
        rows.append(
            {  # what tells entries apart first: a narrow window scrolls the rest
                "checkpoint": choice.name,
                "picked": "✓" if choice.name in picked else "",
                "status": run.status if run else "—",
                "test acc": percent(verdict.test_acc, NOT_TESTED),
                "path": choice.source + same,
                "model": verdict.model,
                "data": verdict.data,
                "started": started(run) if run else "—",
                "input": verdict.input,
                "params": number(verdict.params),
            }
        )
    st.dataframe(rows, hide_index=True, width="stretch")


def models_page(scan: Scan, named: list[Choice]) -> list[Picked]:
    """Pick models; returns the ones that loaded, once each (each refusal shown as its one line)."""
    st.subheader("Models")
    st.caption(
        "Pick the checkpoints to classify with: several are compared side by side on the Classify page "
        "and averaged into an ensemble. The newest checkpoint that loads is picked to start with."
    )
    found, broken = checkpoint_choices(scan)
    listed = [*found, *named]
    if not found:
        if scan.problem:
            st.info(scan.problem)
        st.info(
            "No checkpoints to pick yet. Train one, e.g. `cifar-train experiment=he2016/resnet20` "
            f"(it writes to `{scan.typed or 'outputs'}`), then press *Look again* in the sidebar; "
            "or type the path of a checkpoint below"
            + ("; or pick a published net (`pretrained:...`), which needs no training." if named else ".")
        )
    options = [c.name for c in listed]
    _selection(options, _first_pick(found))
    chosen = st.multiselect(
        "Checkpoints to use",
        options=options,
        key="checkpoints",
        on_change=_keep_selection,
        placeholder="Pick checkpoints" if options else "Nothing found: type a path below",
        help="Several checkpoints are compared side by side and averaged into an ensemble.",
    )
    typed = st.text_input(
        "Or type checkpoint paths (comma-separated)", key="typed_paths", placeholder="path/to/last.ckpt"
    )
    by_name = {c.name: c for c in listed}
    wanted = [by_name[name] for name in chosen] + typed_choices(typed, listed)

    picked: list[Picked] = []
    verdicts: dict[str, Verdict] = {}
    seen: dict[str, str] = {}  # weights digest -> the name that brought them first
    for choice in dict.fromkeys(wanted):
        version = source_version(choice.source)
        with st.spinner(
            f"Loading {choice.name} (a published net is fetched into the torch hub cache once) ..."
        ):
            verdict = judge(*version)
        verdicts[choice.name] = verdict
        if verdict.problem is not None:
            st.error(verdict.problem)
            continue
        if verdict.digest in seen:
            st.caption(f"{choice.name} holds the same weights as {seen[verdict.digest]}: counted once.")
            continue
        model = load_version(*version)
        if isinstance(model, Exception):  # changed on disk since it was judged
            st.error(str(model))
            continue
        seen[verdict.digest] = choice.name
        picked.append(Picked(choice.name, model, version))
    for choice in found:  # a published net is read only when picked
        if choice.name not in verdicts:
            verdicts[choice.name] = judge(*source_version(choice.source))
    shown = [c for c in dict.fromkeys([*found, *wanted]) if verdicts[c.name].problem is None]
    if shown:
        st.markdown(f"**{len(picked)} of {len(shown)} checkpoint{'s' if len(shown) != 1 else ''} picked**")
        _table(shown, verdicts, {p.name for p in picked})
    if broken:
        where = f" under `{scan.folder}`" if scan.folder is not None else ""
        st.markdown(f"**{len(broken)} checkpoint{'s' if len(broken) > 1 else ''}{where} cannot be used**")
        for _, problem in broken:
            st.error(problem)
    return picked
