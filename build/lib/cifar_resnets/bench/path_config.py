"""What each timed path runs: the ``train`` config cifar-train would compose, with the path's settings.

Every path but ``seed`` is a composed config, so a measurement is of what users run, and any
cifar-train override (``--override``) reaches the Trainer paths and the raw loop alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from cifar_resnets.config.compose import compose_train
from cifar_resnets.config.resources import conf_dir

COMPILE_FLAGS = {"auto": "auto", "on": "true", "off": "false"}  # --compile -> model.compile


def bench_overrides(root: Path, model: str, batch_size: int, steps: int) -> list[str]:
    """cifar-train's config for timing ``steps`` training steps: no validation, checkpoint files,
    progress bar or test pass (disk and terminal work, not training)."""
    return [
        f"model={model}",
        f"data.root={root}",
        f"data.batch_size={batch_size}",
        "data.val_size=0",
        f"trainer.max_steps={steps}",
        "trainer.limit_val_batches=0",
        "trainer.enable_model_summary=false",
        "callbacks.checkpoint=null",
        "callbacks.progress_bar=null",
        "test_after_fit=false",
    ]


def path_overrides(path: str, compile_flag: str) -> list[str]:
    """The settings that make a path what it is (``suite`` keeps cifar-train's defaults)."""
    if path in ("fast", "raw"):
        return ["data.loader=gpu", f"model.compile={COMPILE_FLAGS[compile_flag]}", "module.cuda_graph=auto"]
    if path == "eager":
        return ["data.loader=gpu", "model.compile=false", "module.cuda_graph=false"]
    return []


def model_config_names() -> list[str]:
    """The names ``--model`` accepts: the files of ``conf/model``."""
    return sorted(f.stem for f in (conf_dir() / "model").glob("*.yaml"))


def path_config(
    root: Path,
    model: str,
    batch_size: int,
    total_steps: int,
    path: str,
    compile_flag: str,
    extra: Iterable[str],
    workdir: Path,
) -> Any:
    """The composed config one timed path runs (``extra``: cifar-train overrides on top)."""
    overrides = bench_overrides(root, model, batch_size, total_steps) + path_overrides(path, compile_flag)
    return compose_train([*overrides, *extra], workdir / f"{path}_{model}_{batch_size}")


def describe_path(cfg: Any, loader: str, step_graph: Any) -> str:
    """The settings a measurement ran with, for the table's notes column."""
    from cifar_resnets.training.build import CUDA_GRAPH_MODES, compile_mode

    graph = "off"
    if step_graph is not None:
        graph = f"step ({step_graph.disabled_reason})" if step_graph.disabled_reason else "step"
    elif compile_mode(cfg) in CUDA_GRAPH_MODES:
        graph = "net (torch.compile)"
    notes = f"loader={loader} compile={compile_mode(cfg) or 'off'} cuda_graph={graph}"
    if torch.backends.cudnn.benchmark and torch.cuda.is_available():
        notes += " cudnn.benchmark"
    return notes


def default_warmup(path: str, graphs: bool, log_every: int) -> int:
    """Untimed steps before the clock starts: past compilation and graph recording and, for every path
    but ``seed``, past the first logging step (the raw loop waits as long, for the same timed steps).

    That step's first ``self.log`` builds Lightning's result collection and fills Python's isinstance
    caches: about 0.19 s of host time on a 2-core CPU, once per process. The GPU idles through it, and
    inside 200 timed steps (0.4 s for ResNet-20 at batch 128 on an H100) it would pass for a per-step cost
    of Lightning. Later logging steps stay inside the timed steps.
    """
    if path == "seed":
        return 20
    return max(30 if graphs else 20, log_every + 10)
