"""Refuse impossible configs in the first second, before any data is read, seed set or folder created.

Every key has a rule in ``RULES`` (``inf`` is no learning rate), then the settings that only fail together
are checked. ``CheckConfigCallback`` runs at Hydra's ``on_run_start``, before the run folder exists, so a
typo leaves nothing on disk. torch is not imported at load time (it takes seconds); only the last checks,
once every cheap one passed, import Lightning and the libraries a ``_target_`` names.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from cifar_resnets.config.milestones import UNITS, WARMUP_MODES, milestone_steps
from cifar_resnets.config.rules import Choice, Either, Flag, ListOf, Number, Rule, Text, among, show
from cifar_resnets.config.stores import folder_problem, sqlite_store_problem
from cifar_resnets.config.targets import check_target_keys, did_you_mean, target_nodes
from cifar_resnets.data.augment_spec import AUGMENT_RANGES, AugmentSpec
from cifar_resnets.data.cifar_files import CIFAR_SPECS, IMAGE_BYTES, IMAGE_SHAPE, missing_cifar
from cifar_resnets.errors import ConfigError

# Training-set sizes of the datasets whose size is known without reading them.
KNOWN_TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000}
# What trainer.profiler may name: Lightning's profilers by their Trainer strings (xla needs a TPU).
LIGHTNING_PROFILERS = ("simple", "advanced", "pytorch")
TRI_STATE = Choice((True, False, "auto"))
# numpy's seed range; Lightning's seed_everything refuses any other seed.
SEED = Number(int, low=0, high=2**32 - 1)
POSITIVE = Number(float, low=0, low_open=True)
POSITIVE_INT = Number(int, low=1)
COUNT = Number(int, low=0)
PROBABILITY = Number(float, low=0, high=1)
FRACTION = Number(float, low=0, high=1, high_open=True)  # dropout, momentum, Adam's betas


def _augment_rules() -> dict[str, Rule]:
    """The ``augment`` group's rules, from the ranges its loaders validate (one table for both)."""
    rules: dict[str, Rule] = {}
    for key, kind in AugmentSpec.kinds().items():
        if kind is bool:
            rules[f"augment.{key}"] = Flag()
        else:
            low, high = AUGMENT_RANGES[key]
            rules[f"augment.{key}"] = Number(kind, low=low, high=high)
    return rules


def _batch_limit(low: int) -> Rule:
    # Lightning's limit_*_batches: an int counts batches, a float is a fraction of the epoch.
    return Either(
        (Number(int, low=low), Number(float, low=0, high=1, low_open=low > 0)), also={None: "all batches"}
    )


# Every value a run reads, by key, in the order of the config groups. A key that is not in the
# composed config (another model's keys, a dropped callback) is skipped.
RULES: dict[str, Rule] = {
    "seed": SEED,
    "ckpt_path": Text(also={None: "start from scratch"}),
    "test_after_fit": Flag(),
    # data: CIFAR-10/100 and the ImageNet subset
    "data.name": Choice(tuple(CIFAR_SPECS)),
    "data.root": Text(),
    "data.classes": Either(
        (
            Number(int, low=2),  # the ImageNet subset's first N classes
            ListOf(Number(int, low=0)),  # CIFAR class indices
            ListOf(Text()),  # ImageNet wnids
        ),
        also={None: "all classes"},
    ),
    "data.image_size": Number(int, low=8),
    "data.resize_size": Number(int, low=8),
    "data.download": Flag(),
    "data.val_size": COUNT,
    "data.num_train": Number(int, low=1, also={None: "all images"}),
    "data.per_class": Number(int, low=1, also={None: "all images"}),
    "data.batch_size": POSITIVE_INT,
    "data.eval_batch_size": POSITIVE_INT,
    "data.num_workers": COUNT,
    "data.split_seed": SEED,
    "data.seed": SEED,
    # model: CIFAR ResNet/plain, the attention ResNet, torchvision ResNets
    "model.name": Text(),
    "model.depth": Number(int, low=8),
    "model.residual": Flag(),
    "model.zero_init_residual": Flag(),
    "model.weights_path": Text(also={None: "no local weights"}),
    "model.weights": Text(also={None: "fresh weights"}),  # torchvision's name, or pretrained:<source>/<net>
    "model.unit": Choice(("basic", "bottleneck")),  # pre-activation ResNets
    "model.widen": POSITIVE_INT,  # Wide ResNets' k
    "model.compile": TRI_STATE,
    "model.channels_last": Flag(),
    "model.stem_width": POSITIVE_INT,
    "model.widths": ListOf(POSITIVE_INT),
    "model.strides": ListOf(POSITIVE_INT),
    "model.blocks_per_stage": POSITIVE_INT,
    "model.reduction": POSITIVE_INT,
    "model.kernel_size": POSITIVE_INT,
    "model.dropout": FRACTION,
    "model.head_dropout": FRACTION,
    # optim: torch.optim's SGD, Adam, AdamW, RMSprop
    "optim.lr": POSITIVE,
    "optim.momentum": FRACTION,
    "optim.nesterov": Flag(),
    "optim.weight_decay": Number(float, low=0),
    "optim.betas": ListOf(FRACTION, length=2),
    "optim.eps": POSITIVE,
    "optim.alpha": FRACTION,  # RMSprop's smoothing constant (Keras' rho)
    # schedule
    "schedule.milestones": ListOf(POSITIVE),
    "schedule.unit": Choice(UNITS),
    "schedule.gamma": POSITIVE,
    "schedule.warmup_steps": COUNT,
    "schedule.warmup_mode": Choice(WARMUP_MODES),
    "schedule.eta_min": Number(float, low=0),
    "schedule.max_lr": Number(float, low=0, low_open=True, also={None: "the optimizer's lr"}),
    "schedule.pct_start": Number(float, low=0, high=1, low_open=True, high_open=True),
    "schedule.anneal_strategy": Choice(("linear", "cos")),  # torch's OneCycleLR
    "schedule.div_factor": POSITIVE,
    "schedule.final_div_factor": POSITIVE,
    "schedule.three_phase": Flag(),
    "schedule.cycle_momentum": Flag(),
    # augment: the ranges the loaders themselves validate
    **_augment_rules(),
    # trainer: Lightning's Trainer arguments
    "trainer.devices": Either((Number(int, low=1), ListOf(COUNT)), also={-1: "all", "auto": "all visible"}),
    "trainer.num_nodes": POSITIVE_INT,
    "trainer.sync_batchnorm": Flag(),
    "trainer.max_epochs": Number(int, low=1, also={-1: "no limit"}),
    "trainer.max_steps": Number(int, low=1, also={-1: "no limit"}),
    "trainer.gradient_clip_val": Number(float, low=0, low_open=True, also={None: "no clipping"}),
    "trainer.gradient_clip_algorithm": Choice(("norm", "value")),
    "trainer.log_every_n_steps": POSITIVE_INT,
    "trainer.check_val_every_n_epoch": POSITIVE_INT,
    "trainer.num_sanity_val_steps": Number(int, low=0, also={-1: "all"}),
    "trainer.deterministic": Choice((True, False, "warn", None)),
    "trainer.benchmark": Flag(also={None: "off, torch's default"}),
    "trainer.limit_train_batches": _batch_limit(1),
    "trainer.limit_val_batches": _batch_limit(0),
    "trainer.limit_test_batches": _batch_limit(0),
    "trainer.enable_model_summary": Flag(),
    "trainer.profiler": Choice(LIGHTNING_PROFILERS, also={None: "none"}),
    # callbacks (each can be dropped with callbacks.<name>=null)
    "callbacks.checkpoint.save_last": Choice((True, False, "link")),
    "callbacks.checkpoint.save_top_k": Number(int, low=0, also={-1: "keep all"}),
    "callbacks.checkpoint.every_n_epochs": Number(int, low=0, also={None: "Lightning's default"}),
    "callbacks.checkpoint.auto_insert_metric_name": Flag(),
    "callbacks.checkpoint.enable_version_counter": Flag(),
    "callbacks.mid_epoch_checkpoint.every_n_train_steps": POSITIVE_INT,
    "callbacks.divergence.check_every_n_steps": Number(
        int, low=1, also={None: "every trainer.log_every_n_steps"}
    ),
    "callbacks.lr_monitor.logging_interval": Choice(("step", "epoch"), also={None: "both"}),
    "callbacks.progress_bar.refresh_rate": POSITIVE_INT,
    "callbacks.ema.decay": PROBABILITY,
    "callbacks.ema.update_every_n_steps": POSITIVE_INT,
    "callbacks.ema.update_starting_at_step": Number(int, low=0, also={None: "from the first step"}),
    "callbacks.finetune.unfreeze_backbone_at_epoch": COUNT,
    "callbacks.finetune.backbone_initial_ratio_lr": POSITIVE,
    "callbacks.finetune.should_align": Flag(),
    "callbacks.finetune.train_bn": Flag(),
    "callbacks.finetune.verbose": Flag(),
    # logger
    "logger.tensorboard.flush_secs": POSITIVE,
    "logger.tensorboard.default_hp_metric": Flag(),
    "logger.csv.flush_logs_every_n_steps": POSITIVE_INT,
    "logger.mlflow.log_model": Choice((False, True, "all")),
    # module: the LightningModule
    "module.label_smoothing": FRACTION,
    "module.weight_decay_bn_bias": Flag(),
    "module.cuda_graph": TRI_STATE,
    # search: cifar-search's Optuna study (conf/hparams_search/)
    "search.study_name": Text(),
    "search.storage": Text(also={None: "sqlite:///<search.dir>/study.db"}),
    "search.n_trials": POSITIVE_INT,
    "search.direction": Choice(("maximize", "minimize")),
    "search.metric": Text(),
    "search.heartbeat_interval": POSITIVE_INT,
    "search.grace_period": POSITIVE_INT,
    "search.sampler.seed": Number(int, low=0, high=2**32 - 1, also={None: "a fresh seed per worker"}),
    "search.sampler.n_startup_trials": COUNT,
    "search.pruner.n_startup_trials": COUNT,
    "search.pruner.n_warmup_steps": COUNT,
}

_ABSENT = object()


def _get(cfg: DictConfig, key: str, default: Any = None) -> Any:
    """The resolved value at ``key`` as plain Python (lists and dicts too); ``default`` when absent."""
    try:
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
    except MissingMandatoryValue as err:
        raise ConfigError(f"{err.full_key or key}=??? has no value: set one") from None
    except InterpolationResolutionError as err:
        reason = str(err).strip().splitlines()[0]
        raise ConfigError(f"{err.full_key or key} cannot be resolved: {reason}") from None
    return default if value is _ABSENT else value


def _check_resolves(cfg: DictConfig) -> None:
    """Every value resolves (``${...}`` names something that exists), Hydra's own section aside.

    Only within a Hydra run (or a config composed with its run folder): elsewhere the ``${hydra:...}``
    values (the run folder, the run name) have nothing to resolve against yet.
    """
    if not HydraConfig.initialized():
        return
    for key in cfg:
        if key != "hydra":
            _get(cfg, str(key))


def _check_rules(cfg: DictConfig) -> None:
    for key, rule in RULES.items():
        value = _get(cfg, key, _ABSENT)
        if value is _ABSENT:
            continue
        problem = rule.problem(value)
        if problem is not None:
            raise ConfigError(f"{key}={show(value)} must be {problem}")


def _train_images_on_disk(cfg: DictConfig) -> int | None:
    """An upper bound on the training images in ``data.root``, from file sizes alone (nothing is read).

    Every image takes 3072 bytes of pixels in the pickles, so a smaller copy (a subset, synthetic
    files) is caught here too; the exact count is checked when the data is loaded.
    """
    spec = CIFAR_SPECS.get(str(_get(cfg, "data.name")))
    root = _get(cfg, "data.root")
    if spec is None or root is None or _get(cfg, "data.classes") is not None:
        return None
    files = [Path(str(root)) / spec.folder / name for name in spec.train_files]
    try:
        return sum(f.stat().st_size for f in files) // IMAGE_BYTES
    except OSError:  # missing files: the data layer says where and how to get them
        return None


def _steps_per_epoch(cfg: DictConfig) -> int | None:
    available = KNOWN_TRAIN_SIZES.get(str(_get(cfg, "data.name")))
    if available is None:
        return None
    on_disk = _train_images_on_disk(cfg)
    if on_disk is not None:
        available = min(available, on_disk)
    train_size = available - (_get(cfg, "data.val_size") or 0)
    num_train = _get(cfg, "data.num_train")
    if num_train is not None:
        if num_train > train_size:
            raise ConfigError(
                f"data.num_train={num_train} is larger than the {train_size} training images left after "
                f"data.val_size={_get(cfg, 'data.val_size')}; lower it or set data.num_train=null"
            )
        train_size = num_train
    devices = _get(cfg, "trainer.devices")
    world = len(devices) if isinstance(devices, list) else devices if isinstance(devices, int) else 1
    world = max(world, 1)  # -1 = all GPUs: at least one
    return max(train_size // (_get(cfg, "data.batch_size") * world), 0)


def _check_data(cfg: DictConfig) -> int | None:
    val_size = _get(cfg, "data.val_size")
    available = KNOWN_TRAIN_SIZES.get(str(_get(cfg, "data.name")))
    on_disk = _train_images_on_disk(cfg) if available is not None else None
    if on_disk is not None and on_disk < available:
        available = on_disk
    if val_size is not None and available is not None and not val_size < available:
        root = _get(cfg, "data.root")
        where = f" (the at most {available} images in {root})" if available == on_disk else ""
        raise ConfigError(f"data.val_size={val_size} must be between 0 and {available - 1}{where}")
    image_size, resize_size = _get(cfg, "data.image_size"), _get(cfg, "data.resize_size")
    if resize_size is not None and image_size is not None and image_size > resize_size:
        raise ConfigError(
            f"data.image_size={image_size} must be <= data.resize_size={resize_size} "
            "(the centre crop is cut from the resized image)"
        )
    steps = _steps_per_epoch(cfg)
    if steps == 0:
        raise ConfigError(
            f"data.batch_size={_get(cfg, 'data.batch_size')} is larger than the training set; "
            "lower it or raise data.num_train"
        )
    return steps


def _check_classes(cfg: DictConfig) -> None:
    spec = CIFAR_SPECS.get(str(_get(cfg, "data.name")))
    classes = _get(cfg, "data.classes")
    if spec is None or classes is None:
        return
    ids = classes if isinstance(classes, list) and all(isinstance(c, int) for c in classes) else None
    if ids is None or len(ids) < 2 or len(set(ids)) != len(ids) or max(ids) >= spec.num_classes:
        raise ConfigError(
            f"data.classes={show(classes)} must be a list of at least two distinct class indices in "
            f"0..{spec.num_classes - 1} (e.g. [5,6,7,8,9]), or null for all classes"
        )


def _check_augment(cfg: DictConfig) -> None:
    augment = _get(cfg, "augment")
    if augment is None:
        return
    spec = AugmentSpec.from_config(augment)  # unknown keys and mixup + cutmix > 1
    if _get(cfg, "data.name") in CIFAR_SPECS and spec.crop_padding >= IMAGE_SHAPE[-1]:
        side = IMAGE_SHAPE[-1]
        raise ConfigError(
            f"augment.crop_padding={spec.crop_padding} must be smaller than the {side}x{side} CIFAR images "
            "(the padding reflects them)"
        )


def _check_model(cfg: DictConfig) -> None:
    target = str(_get(cfg, "model._target_", ""))
    depth = _get(cfg, "model.depth")
    if target.endswith("CifarResNet") and depth is not None and (depth - 2) % 6:
        raise ConfigError(
            f"model.depth={depth} is not 6n+2 (n >= 1): use 20, 32, 44, 56, 110 or another 6n+2"
        )
    widths, strides = _get(cfg, "model.widths"), _get(cfg, "model.strides")
    four_stages = widths is None or strides is None or len(widths) == len(strides) == 4
    if target.endswith("AttentionResNet") and not four_stages:
        raise ConfigError(
            f"model.widths={show(widths)} and model.strides={show(strides)} must give the 4 stages "
            "(layer1..layer4) one value each"
        )
    kernel = _get(cfg, "model.kernel_size")
    if kernel is not None and kernel % 2 == 0:
        raise ConfigError(
            f"model.kernel_size={kernel} must be odd (the spatial-attention conv keeps the map size)"
        )
    weights_path = _get(cfg, "model.weights_path")
    if weights_path is not None and not Path(weights_path).expanduser().is_file():
        raise ConfigError(f"model.weights_path={weights_path} is not a file; fix the path or set it to null")


def _check_optim(cfg: DictConfig) -> None:
    if _get(cfg, "optim.nesterov") and not _get(cfg, "optim.momentum", 0) > 0:
        raise ConfigError(
            f"optim.nesterov=true needs momentum: optim.momentum={_get(cfg, 'optim.momentum')} must be > 0"
        )


def _check_schedule(cfg: DictConfig, steps_per_epoch: int | None) -> None:
    max_steps = _get(cfg, "trainer.max_steps", -1)
    max_epochs = _get(cfg, "trainer.max_epochs", -1)
    if max_steps == -1 and max_epochs == -1:
        raise ConfigError(
            "trainer.max_epochs=-1 and trainer.max_steps=-1 set no end: give one of them a positive value"
        )
    milestones = _get(cfg, "schedule.milestones")
    if not milestones or steps_per_epoch is None:
        return
    total = max_steps if max_steps > 0 else steps_per_epoch * max_epochs
    milestone_steps(
        milestones,
        _get(cfg, "schedule.unit", "fraction"),
        total_steps=total,
        steps_per_epoch=steps_per_epoch,
    )


def _check_gpus(cfg: DictConfig) -> None:
    accelerator = str(_get(cfg, "trainer.accelerator", "auto"))
    if accelerator not in ("gpu", "cuda"):
        return
    import torch  # only here: importing it takes seconds, and CPU/auto runs need no GPU count

    if not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={accelerator} but no CUDA GPU is visible; use trainer.accelerator=cpu"
        )
    devices = _get(cfg, "trainer.devices")
    if isinstance(devices, int) and devices > torch.cuda.device_count():
        raise ConfigError(
            f"trainer.devices={devices} but only {torch.cuda.device_count()} CUDA GPUs are visible; "
            "lower trainer.devices"
        )


def _check_trainer_flags(cfg: DictConfig) -> None:
    """``trainer.accelerator``, ``devices``, ``strategy`` and ``precision`` as Lightning's Trainer reads
    them: asked of Lightning's own registries, its accelerators' device parsers and the precision parser
    its Trainer calls, so the two never disagree. (``gpu``/``cuda`` and the GPU count: ``_check_gpus``.)"""
    if _get(cfg, "trainer") is None:
        return
    from lightning.fabric.connector import _convert_precision_to_unified_args  # the Trainer's parser
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    accelerator = _get(cfg, "trainer.accelerator", "auto")
    names = sorted(AcceleratorRegistry.available_accelerators())
    if not among(accelerator, ["auto", "gpu", *names]):
        raise ConfigError(
            f"trainer.accelerator={show(accelerator)} must be one of auto, gpu, {', '.join(names)}"
        )
    present = accelerator not in names or AcceleratorRegistry[accelerator]["accelerator"].is_available()
    if accelerator != "cuda" and not present:
        raise ConfigError(
            f"trainer.accelerator={accelerator} but this machine has no {accelerator} device; "
            "use trainer.accelerator=auto or cpu"
        )
    devices = _get(cfg, "trainer.devices", "auto")
    if accelerator in names and not among(devices, ["auto", -1]):  # auto/gpu: Lightning picks at run time
        try:
            AcceleratorRegistry[accelerator]["accelerator"].parse_devices(devices)
        except Exception as err:  # noqa: BLE001 - Lightning's TypeError/ValueError/MisconfigurationException
            reason = str(err).strip().splitlines()[0]
            raise ConfigError(
                f"trainer.devices={show(devices)} does not fit trainer.accelerator={accelerator}: {reason}"
            ) from None
    strategy = _get(cfg, "trainer.strategy", "auto")
    strategies = StrategyRegistry.available_strategies()
    if not (isinstance(strategy, str) and strategy.lower() in ("auto", *strategies)):
        hint = did_you_mean(str(strategy), "", ["auto", *strategies]).replace("the keys there are", "e.g.")
        raise ConfigError(f"trainer.strategy={show(strategy)} is not a strategy of Lightning; {hint}")
    precision = _get(cfg, "trainer.precision", "auto")
    if precision != "auto":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a discouraged alias ('bf16') is still valid
                _convert_precision_to_unified_args(precision)
        except ValueError as err:
            raise ConfigError(f"trainer.precision={show(precision)}: {err} (or auto)") from None


def _check_targets(cfg: DictConfig) -> None:
    # build_net reads the training-only keys of a model config itself (models.build).
    from cifar_resnets.models.build import TRAINING_MODEL_KEYS

    for path, node in target_nodes(cfg):
        check_target_keys(path, node, TRAINING_MODEL_KEYS if path == "model" else ())


def _check_logger_store(cfg: DictConfig) -> None:
    """An MLflow store that is a file (SQLite, or a file store's folder) is opened: it must be a
    readable database and take writes, or be creatable. A server URI is left to MLflow."""
    uri = _get(cfg, "logger.mlflow.tracking_uri")
    if not isinstance(uri, str):
        return
    key = f"logger.mlflow.tracking_uri={uri}"
    scheme, sep, rest = uri.partition(":")
    if sep and scheme == "sqlite":
        problem = sqlite_store_problem(Path(rest.removeprefix("///")))
    elif not sep or scheme == "file" or len(scheme) == 1:  # a path (a Windows drive letter included)
        problem = folder_problem(Path(uri.removeprefix("file://")))
    else:
        return
    if problem is not None:
        raise ConfigError(f"{key}: {problem}; fix or move the store, or set logger.mlflow.tracking_uri")


def _check_resume(cfg: DictConfig) -> None:
    # An interpolation (the reproduce runner's ${hydra:runtime.output_dir}/...) names the run folder,
    # which does not exist before the run starts.
    if "ckpt_path" not in cfg or OmegaConf.is_interpolation(cfg, "ckpt_path"):
        return
    ckpt_path = _get(cfg, "ckpt_path")
    if ckpt_path not in (None, "auto") and not Path(ckpt_path).is_file():
        raise ConfigError(
            f"ckpt_path={ckpt_path} does not exist; use a checkpoints/last.ckpt or ckpt_path=auto"
        )


def _check_output(cfg: DictConfig, key: str = "hydra.run.dir") -> None:
    out = _get(cfg, key) if HydraConfig.initialized() else None
    if out is None:
        return
    parent = Path(str(out)).absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot create the run folder {out}: {parent} is not writable; set {key}")


def check_config(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` for the first impossible setting found."""
    _check_resolves(cfg)
    _check_rules(cfg)
    steps = _check_data(cfg)
    _check_classes(cfg)
    _check_augment(cfg)
    _check_model(cfg)
    _check_optim(cfg)
    _check_schedule(cfg, steps)
    _check_gpus(cfg)
    _check_resume(cfg)
    _check_logger_store(cfg)
    # Last: they import Lightning and the targets' libraries (seconds), after every cheap check passed.
    _check_trainer_flags(cfg)
    _check_targets(cfg)


def check_data_files(cfg: DictConfig) -> None:
    """Refuse a run whose CIFAR files are not where ``data.root`` points (and will not be downloaded).

    Apart from ``check_config``, which judges values only: composing a config (tests, ``cifar-bench``)
    must not need the dataset on disk, but a run must know it is there before it makes its folder.
    """
    name, root = str(_get(cfg, "data.name")), _get(cfg, "data.root")
    if name in CIFAR_SPECS and root is not None and not _get(cfg, "data.download", False):
        problem = missing_cifar(str(root), name)
        if problem is not None:
            raise ConfigError(problem)


def command_name(config: DictConfig) -> str:
    """The command a Hydra callback's refusal names: the config's (``hydra.help.app_name``; cifar-search
    sets its own), cifar-train's by default."""
    return OmegaConf.select(config, "hydra.help.app_name") or "cifar-train"


class CheckConfigCallback(Callback):
    """Runs ``check_config`` before Hydra creates any folder (single runs and sweeps alike); a refusal
    names the command, as the config names it (``hydra.help.app_name``: cifar-search sets its own)."""

    def _check(
        self, config: DictConfig, output_key: str = "hydra.run.dir", swept: tuple[str, ...] = ()
    ) -> None:
        HydraConfig.instance().set_config(config)
        prog = command_name(config)
        try:
            check_config(config)
        except ConfigError as err:
            # The base config of a sweep lacks the swept values; a mistake they may fix (a swept key,
            # or a key of a swept group) is left to each job's own check (which records it in the job's
            # folder).
            if not any(f"{key}=" in str(err) or str(err).startswith(f"{key}.") for key in swept):
                print(f"{prog}: error: {err}", file=sys.stderr)
                sys.exit(2)
        try:
            _check_output(config, output_key)
            if not {"data", "data.root", "data.name", "data.download", "paths.data_dir"} & set(swept):
                check_data_files(config)
        except ConfigError as err:
            print(f"{prog}: error: {err}", file=sys.stderr)
            sys.exit(2)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # The sweep's own overrides are checked per job by train(); this catches shared mistakes.
        overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
        swept = tuple(o.key_or_group for o in overrides if o.is_sweep_override())
        self._check(config, "hydra.sweep.dir", swept)
