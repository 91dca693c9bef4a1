"""The cifar-train config a measurement runs: the ``train`` config cifar-train composes, with the
overrides that make a run a measurement (a fixed number of steps, no validation, no disk or
terminal work) and the user's own ``--override`` values on top."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cifar_resnets.config.resources import conf_dir
from cifar_resnets.errors import ConfigError, UserError

if TYPE_CHECKING:  # torch, Hydra and OmegaConf load when a measurement starts: --help answers at once
    from omegaconf import DictConfig

REFERENCE_WARMUP = 20  # untimed steps of the reference loop: its DataLoader workers start there


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


def model_config_names() -> list[str]:
    """The names ``--model`` accepts: the files of ``conf/model``."""
    return sorted(f.stem for f in (conf_dir() / "model").glob("*.yaml"))


def measured_config(
    root: Path, model: str, batch_size: int, total_steps: int, extra: Iterable[str], output_dir: Path
) -> DictConfig:
    """The composed config of one measurement (``extra``: cifar-train overrides on top)."""
    from cifar_resnets.config.compose import compose_train

    return compose_train([*bench_overrides(root, model, batch_size, total_steps), *extra], output_dir)


def checked_config(extra: list[str], base: list[str], output_dir: Path) -> DictConfig:
    """The config with the ``--override`` values, composed and checked as cifar-train checks its own
    (``check_config``) once before any measurement, so that a typo costs no run."""
    from cifar_resnets.config.checks import check_config
    from cifar_resnets.config.compose import compose_train

    try:
        cfg = compose_train([*base, *extra], output_dir)
        check_config(cfg)
    except UserError as err:  # cifar-train's own one-line refusal, said with the overrides it came from
        raise ConfigError(f"{err} (with --override {' '.join(extra)})" if extra else str(err)) from None
    return cfg


def describe_run(cfg: Any, loader: str, step_graph: Any) -> str:
    """The settings a measurement ran with, for the table's notes column."""
    import torch

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


def default_warmup(cfg: Any) -> int:
    """Untimed steps of a cifar-train measurement: past compilation and graph recording, and past the
    first logging step.

    That step's first ``self.log`` builds Lightning's result collection and fills Python's isinstance
    caches: a one-time host cost per process (docs/speed.md has its size), which inside a few hundred
    timed steps of a fast GPU would pass for a per-step cost of Lightning. Later logging steps stay
    inside the timed steps.
    """
    from cifar_resnets.training.build import CUDA_GRAPH_MODES, compile_mode, uses_step_graph

    graphs = uses_step_graph(cfg) or compile_mode(cfg) in CUDA_GRAPH_MODES
    return max(30 if graphs else 20, int(cfg.trainer.log_every_n_steps or 0) + 10)
