"""Config -> objects: the one place that knows how the Hydra config maps onto the pieces.

The CLIs (train, evaluate, predict, the app) all build through here, so a checkpoint's stored
config rebuilds exactly the net that wrote it.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from lightning.pytorch.plugins.io import CheckpointIO
from omegaconf import DictConfig, OmegaConf

from cifar_resnets.config.compose import run_config
from cifar_resnets.hardware import cpu_has_native_bf16, set_cpu_threads
from cifar_resnets.models.build import build_net
from cifar_resnets.training.checkpoint_io import AtomicCheckpointIO
from cifar_resnets.training.fit_loop import use_exact_resume_fit_loop
from cifar_resnets.training.module import ClassifierModule
from cifar_resnets.training.step_graph import CapturedTrainStep

log = logging.getLogger(__name__)


class _NoServiceTips(logging.Filter):
    """Drops Lightning's tips that advertise its cloud services (litlogger, litmodels): a run prints what
    the suite has to say, and Lightning offers no switch for them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in str(record.msg)


# rank_zero_info's logger (lightning/pytorch/utilities/rank_zero.py); addFilter keeps one copy.
_LIGHTNING_RANK_ZERO_LOG = logging.getLogger("lightning.pytorch.utilities.rank_zero")
_NO_SERVICE_TIPS = _NoServiceTips()
# Lightning's warnings about itself, which a user can do nothing about: its model summary cannot size
# bf16 weights, and its own code uses a torch API that torch deprecated.
_LIGHTNING_SELF_WARNINGS = (
    r"Precision .* is not supported by the model summary",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)


def _container(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)


def build_datamodule(cfg: DictConfig) -> L.LightningDataModule:
    return instantiate(cfg.data, augment=_container(cfg.augment), _convert_="all")


# torch optimizers with a fused CUDA step (one kernel for all parameters instead of a foreach chain).
FUSED_OPTIMIZERS = ("torch.optim.SGD", "torch.optim.Adam", "torch.optim.AdamW")
# torch.compile modes that record CUDA graphs.
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def _multi_device(trainer_cfg: DictConfig) -> bool:
    strategy = str(trainer_cfg.get("strategy", "auto"))
    devices = trainer_cfg.get("devices", 1)
    return "ddp" in strategy or str(devices) not in ("1", "[0]") or int(trainer_cfg.get("num_nodes", 1)) > 1


def step_graph_blocker(cfg: DictConfig) -> str | None:
    """Why this run cannot record its training step as a CUDA graph, or None if it can."""
    if not _uses_cuda(cfg.trainer.accelerator):
        return "CUDA graphs need a CUDA GPU"
    if _multi_device(cfg.trainer):
        # Recording DDP's all-reduce needs DDP built on a side stream and NCCL settings that Lightning's
        # strategy does not provide (https://pytorch.org/docs/stable/notes/cuda.html#usage-with-distributeddataparallel).
        return "recording under DDP is not supported"
    if str(cfg.trainer.precision) in ("16-mixed", "16", "16-true"):
        return "float16 needs a GradScaler, whose step cannot be recorded; use bf16"
    if int(cfg.trainer.get("accumulate_grad_batches") or 1) > 1:
        return "gradient accumulation adds gradients across batches; a recorded step rewrites them"
    if cfg.model.get("compile", False) and cfg.model.get("compile_mode", "auto") in CUDA_GRAPH_MODES:
        return f"model.compile_mode={cfg.model.compile_mode} records its own CUDA graphs"
    return None


def uses_step_graph(cfg: DictConfig) -> bool:
    """``module.cuda_graph``: true | false | auto (= on wherever it can run: one CUDA GPU, bf16 or fp32).

    ``true`` where it cannot run trains eagerly (``build_module`` says why), so one config serves a laptop
    and a GPU node.
    """
    return cfg.module.get("cuda_graph", "auto") is not False and step_graph_blocker(cfg) is None


def compile_mode(cfg: DictConfig) -> str | None:
    """The ``torch.compile`` mode of the run's net, or None to run it eagerly.

    ``model.compile``: true | false | auto (= on when training on CUDA). ``model.compile_mode``: auto =
    ``default`` (inductor kernels) when the training step is recorded as a CUDA graph
    (``module.cuda_graph``), else ``reduce-overhead`` (torch.compile's own CUDA graphs of the net) on one
    CUDA device and ``default`` elsewhere. CUDA-graph modes fall back where graphs cannot be used: on the
    CPU to ``default`` (inductor records no graphs there), under DDP to ``max-autotune-no-cudagraphs``
    (graph pools crash there when train and eval alternate: https://github.com/pytorch/pytorch/issues/128218).
    """
    on_cuda = _uses_cuda(cfg.trainer.accelerator)
    wanted = cfg.model.get("compile", False)
    if wanted == "auto":
        wanted = on_cuda
    if not wanted:
        return None
    mode = cfg.model.get("compile_mode", "default")
    if mode == "auto" and uses_step_graph(cfg):
        return "default"
    graphs = mode in ("auto", *CUDA_GRAPH_MODES)
    if not graphs:
        return mode
    if not on_cuda:
        return "default"
    if _multi_device(cfg.trainer):
        return "max-autotune-no-cudagraphs" if mode == "max-autotune" else "default"
    return "reduce-overhead" if mode == "auto" else mode


def build_optimizer_factory(cfg: DictConfig) -> Any:
    """``instantiate(cfg.optim)``, with ``fused=True`` on CUDA for SGD/Adam/AdamW unless the config says
    ``fused``/``foreach`` itself. Not with gradient clipping: Lightning refuses to clip for optimizers
    that unscale inside ``step`` (fused ones), so those runs keep the foreach step."""
    factory = instantiate(cfg.optim)
    if (
        _uses_cuda(cfg.trainer.accelerator)
        and cfg.optim.get("_target_") in FUSED_OPTIMIZERS
        and "fused" not in cfg.optim
        and "foreach" not in cfg.optim
        and not cfg.trainer.get("gradient_clip_val")
    ):
        factory = functools.partial(factory, fused=True)
    return factory


def build_module(cfg: DictConfig, num_classes: int) -> ClassifierModule:
    net = build_net(cfg.model, num_classes)
    mode = compile_mode(cfg)
    if mode is not None:
        # In place, so state-dict keys keep their names (``torch.compile(net)`` would add ``_orig_mod.``:
        # https://github.com/Lightning-AI/pytorch-lightning/issues/17415); only the net is compiled, so
        # self.log in the step methods stays eager. Static shapes with CUDA graphs: each batch shape
        # (train, eval) compiles and records once; a dynamic-shape compile would re-record per size anyway.
        net.compile(mode=mode, dynamic=False if mode in CUDA_GRAPH_MODES else None)
    module = ClassifierModule(
        net,
        num_classes=num_classes,
        optimizer=build_optimizer_factory(cfg),
        scheduler=instantiate(cfg.schedule) if cfg.get("schedule") else None,
        label_smoothing=cfg.module.label_smoothing,
        weight_decay_bn_bias=cfg.module.weight_decay_bn_bias,
        channels_last=cfg.model.get("channels_last", False),
        config=run_config(cfg),
    )
    module.cudagraph_steps = mode in CUDA_GRAPH_MODES
    if uses_step_graph(cfg):
        module.step_graph_factory = CapturedTrainStep
    elif cfg.module.get("cuda_graph", "auto") is True:
        log.warning("module.cuda_graph=true but %s: training steps run eagerly", step_graph_blocker(cfg))
    return module


def _uses_cuda(accelerator: str) -> bool:
    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def resolve_precision(precision: str | int, accelerator: str) -> str | int:
    """``auto`` means bf16 mixed precision where the hardware runs bf16 natively (a CUDA GPU with bf16,
    a CPU with AVX-512 BF16 or AMX), full precision elsewhere, so that no device trains slower than in
    fp32; accuracy at the same recipe is measured in docs/speed.md."""
    if precision != "auto":
        return precision
    if _uses_cuda(accelerator):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    if _runs_on_cpu(accelerator) and cpu_has_native_bf16():
        return "bf16-mixed"
    return "32-true"


def _runs_on_cpu(accelerator: str) -> bool:
    """``cpu``, or ``auto`` on a machine where Lightning finds no accelerator (no CUDA, no Apple MPS)."""
    if accelerator == "cpu":
        return True
    mps = getattr(torch.backends, "mps", None)
    return accelerator == "auto" and not torch.cuda.is_available() and not (mps and mps.is_available())


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    if not group:
        return []
    return [instantiate(node, _convert_="all") for node in group.values() if node is not None]


def build_callbacks(cfg: DictConfig) -> list[L.Callback]:
    return _instantiate_all(cfg.get("callbacks"))


def build_loggers(cfg: DictConfig) -> list[Any]:
    return _instantiate_all(cfg.get("logger"))


def build_plugins(cfg: DictConfig) -> list[Any]:
    """``trainer.plugins`` (a list of ``_target_`` nodes, none by default) plus the suite's own.

    Checkpoints go through ``AtomicCheckpointIO`` (temp file in their own folder, then renamed: see
    ``checkpoint_io``) unless the config names a ``CheckpointIO`` itself. On SLURM, submitit owns
    requeueing and the rerun resumes with ``ckpt_path=auto``; Lightning's auto-requeue is switched off so
    a job is not requeued twice (https://github.com/Lightning-AI/pytorch-lightning/issues/14610).
    """
    plugins = [instantiate(node, _convert_="all") for node in cfg.trainer.get("plugins") or []]
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    if SLURMEnvironment.detect() and not TorchElasticEnvironment.detect():
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return plugins


def cudnn_benchmark(cfg: DictConfig) -> bool:
    """``trainer.benchmark`` with null read as off, torch's default.

    Lightning leaves cuDNN's flag as it finds it when the key is null, so a second fit in one process
    (``cifar-reproduce --in-process``, ``cifar-bench``'s paths) would inherit the autotuning of the first.
    """
    return bool(cfg.trainer.get("benchmark") or False)


def build_trainer(
    cfg: DictConfig, *, extra_callbacks: Sequence[L.Callback] = (), **overrides: Any
) -> L.Trainer:
    """The run's Trainer; ``extra_callbacks`` join the configured ones (``cifar-search`` adds its pruning
    callback, which holds a live Optuna trial and so cannot come from the config)."""
    callbacks = [*build_callbacks(cfg), *extra_callbacks]
    loggers = build_loggers(cfg)
    if not loggers:  # logger=none: LearningRateMonitor refuses to run without a logger
        callbacks = [c for c in callbacks if not isinstance(c, L.pytorch.callbacks.LearningRateMonitor)]
    kwargs: dict[str, Any] = {
        "precision": resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator),
        "callbacks": callbacks,
        "logger": loggers or False,
        "default_root_dir": cfg.paths.output_dir,
        "enable_progress_bar": any(isinstance(c, L.pytorch.callbacks.ProgressBar) for c in callbacks),
        "plugins": build_plugins(cfg),
        "benchmark": cudnn_benchmark(cfg),
    }
    if compile_mode(cfg) is not None:
        # A compiled submodule under inference_mode fails in eval: "Inference tensors do not track version
        # counter" (https://github.com/Lightning-AI/pytorch-lightning/issues/17175).
        kwargs["inference_mode"] = False
    if cfg.data.get("val_size") == 0 and cfg.trainer.get("limit_val_batches") is None:
        kwargs["limit_val_batches"] = 0  # no validation split: no loop (Lightning warns of an empty one)
    kwargs.update(overrides)
    _LIGHTNING_RANK_ZERO_LOG.addFilter(_NO_SERVICE_TIPS)
    for message in _LIGHTNING_SELF_WARNINGS:
        warnings.filterwarnings("ignore", message=message)  # an identical filter replaces the last one
    trainer = instantiate(cfg.trainer, **kwargs, _convert_="all")
    if trainer.strategy.root_device.type == "cpu":
        set_cpu_threads()
    use_exact_resume_fit_loop(trainer)  # an epoch-end checkpoint resumes at the next epoch under any limits
    return trainer
