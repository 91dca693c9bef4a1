"""``cifar-bench``: training images/s on this device, the seed projects' way against the suite's.

Paths, all on the same data and the same net (built from ``conf/model``):

- ``seed``:  the seed projects' loop: a torchvision-style Dataset with PIL transforms (RandomCrop 4,
  flip, ToTensor, Normalize) in DataLoader workers, fp32, plain SGD loop.
- ``suite``: ``cifar-train`` as users run it: the real config, datamodule, module and Trainer from
  ``build.py`` (``loader``/``precision``/``compile``/``cuda_graph`` left at their defaults, TensorBoard
  logging into a temporary folder); no checkpoint files or progress bar (disk and terminal, not training).
  On one CUDA GPU that is the fast path below.
- ``fast``:  the fastest the suite offers, inside the Trainer: GPU-resident loader, bf16 on CUDA, each
  training step replayed as one CUDA graph (``module.cuda_graph``) around inductor kernels
  (``model.compile=auto``); on the CPU the GPU-resident loader on CPU tensors, eager.
- ``eager``: the ``fast`` settings without CUDA graphs or compilation: what the graphs buy.
- ``raw``:   the ``fast`` settings in the suite's own plain loop (no Lightning), to show Lightning's share.

Warm-up steps (compilation, graph recording, worker start) are excluded, and so is what the Trainer
does after the last step (once per run; the raw loop has none); the clock is read after a device
sync at both ends. Without ``--data-root`` the data are synthetic (said in the output).

Examples::

    cifar-bench --model resnet20 resnet56 --batch-size 128 512 --paths seed,suite,eager,raw --data-root data
    cifar-bench --model resnet20 --data-root data --time-to-accuracy --epochs 30 --paths fast,eager
    cifar-bench --model resnet56 --batch-size 128 --paths suite,raw --override trainer.benchmark=true
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from cifar_resnets.step_graph import Recorder

PATHS = ("seed", "suite", "fast", "eager", "raw")
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# He et al. 2016 Table 6: ResNet-20/32/44/56/110 and plain-20/32/44/56, 64k iterations at batch 128.
TABLE6_DEPTHS = (20, 32, 44, 56, 110, 20, 32, 44, 56)
TABLE6_STEPS, TABLE6_BATCH = 64_000, 128


class BenchError(ValueError):
    """A cifar-bench argument that cannot work."""


@dataclass
class Result:
    model: str
    batch_size: int
    path: str
    images_per_second: float
    steps: int
    seconds: float
    peak_memory_mib: float | None
    precision: str
    notes: str = ""


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_mib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU ({torch.get_num_threads()} threads)"


# ----- config -----
def compose(overrides: list[str], output_dir: Path) -> Any:
    """The ``train`` config as cifar-train composes it, with ``output_dir`` as the run folder."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


def _path_overrides(path: str, compile_flag: str) -> list[str]:
    if path in ("fast", "raw"):
        flag = {"auto": "auto", "on": "true", "off": "false"}[compile_flag]
        return ["data.loader=gpu", f"model.compile={flag}", "module.cuda_graph=auto"]
    if path == "eager":
        return ["data.loader=gpu", "model.compile=false", "module.cuda_graph=false"]
    return []


def model_config_names() -> list[str]:
    """The names ``--model`` accepts: the files of ``conf/model``."""
    return sorted(f.stem for f in (CONF_DIR / "model").glob("*.yaml"))


def _path_config(
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
    overrides = bench_overrides(root, model, batch_size, total_steps) + _path_overrides(path, compile_flag)
    return compose([*overrides, *extra], workdir / f"{path}_{model}_{batch_size}")


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


# ----- data -----
def prepare_data(data_root: str | None, synthetic_train: int, workdir: Path) -> tuple[Path, str]:
    """The data root to read and a description of it (synthetic files when no root is given)."""
    if data_root:
        root = Path(data_root)
        if not (root / "cifar-10-batches-py").is_dir():
            raise BenchError(
                f"--data-root {root} holds no cifar-10-batches-py folder; write one with "
                "cifar10_from_jpeg.py or leave --data-root out for synthetic data"
            )
        return root, f"real CIFAR-10 at {root}"
    from cifar_resnets.data.synthetic import write_synthetic_cifar

    root = workdir / "synthetic"
    write_synthetic_cifar(root, "cifar10", num_train=synthetic_train, num_test=max(256, synthetic_train // 5))
    return root, f"SYNTHETIC CIFAR-10-format data ({synthetic_train} train images; no --data-root given)"


def _train_arrays(root: Path) -> tuple[np.ndarray, np.ndarray]:
    from cifar_resnets.data.cifar import CIFARDataModule

    dm = CIFARDataModule(root=str(root), val_size=0)
    dm.setup("fit")
    images, labels = dm.train_arrays()
    return images.numpy(), labels.numpy()


# ----- paths -----
def seed_path(root: Path, model: str, batch_size: int, steps: int, warmup: int, workers: int) -> Result:
    """The seed projects' loop: PIL transforms per image in DataLoader workers, fp32."""
    import torchvision.transforms as T
    from PIL import Image

    from cifar_resnets.build import build_net

    images, labels = _train_arrays(root)
    if images.shape[0] < batch_size:
        raise BenchError(f"batch size {batch_size} is larger than the {images.shape[0]} training images")
    tf = T.Compose(
        [
            T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        ]
    )

    class SeedStyleDataset(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(labels)

        def __getitem__(self, i: int):
            return tf(Image.fromarray(images[i].transpose(1, 2, 0))), int(labels[i])

    device = _device()
    loader = torch.utils.data.DataLoader(
        SeedStyleDataset(),
        batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=workers > 0,
    )
    cfg = compose([f"model={model}"], Path(tempfile.gettempdir()))
    net = build_net(cfg.model, 10).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    _reset_peak()
    it, t0 = iter(loader), 0.0
    for k in range(warmup + steps):
        if k == warmup:
            _sync()
            t0 = time.perf_counter()
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        loss = F.cross_entropy(net(x.to(device, non_blocking=True)), y.to(device, non_blocking=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync()
    seconds = time.perf_counter() - t0
    return Result(
        model, batch_size, "seed", steps * batch_size / seconds, steps, seconds, _peak_mib(), "32-true",
        f"{workers} workers",
    )  # fmt: skip


class _StepTimer(L.Callback):
    """Times optimizer steps ``warmup`` .. the last one, with a device sync at both ends.

    The clock stops when the last step's batch ends, as the raw loop's does after its last step: the
    end-of-fit work that follows (the epoch's closing logs, ``on_train_end`` hooks) happens once per run,
    and inside a few hundred timed steps it would count as a per-step cost. A fit that ends on
    ``max_epochs`` instead stops the clock at ``on_train_end``.
    """

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start: float | None = None
        self.end: float | None = None
        self.steps = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.start is None and trainer.global_step == self.warmup:
            _sync()
            self.start, self.steps = time.perf_counter(), -trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.start is not None and self.end is None and trainer.global_step == trainer.max_steps:
            self._stop(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.start is not None and self.end is None:
            self._stop(trainer)

    def _stop(self, trainer: L.Trainer) -> None:
        _sync()
        self.end = time.perf_counter()
        self.steps += trainer.global_step


def trainer_path(
    root: Path,
    model: str,
    batch_size: int,
    steps: int,
    warmup: int,
    path: str,
    compile_flag: str,
    workdir: Path,
    extra: Iterable[str] = (),
) -> Result:
    """``suite``, ``fast`` or ``eager``: the real Trainer, datamodule and module built by ``build.py``;
    ``extra``: cifar-train overrides on top."""
    from cifar_resnets.build import build_datamodule, build_module, build_trainer

    cfg = _path_config(root, model, batch_size, warmup + steps, path, compile_flag, extra, workdir)
    L.seed_everything(cfg.seed)
    torch._dynamo.reset()
    set_cudnn_benchmark(cfg)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.num_classes)
    timer = _StepTimer(warmup)
    trainer = build_trainer(cfg)
    trainer.callbacks.append(timer)
    _reset_peak()
    trainer.fit(module, datamodule=datamodule)
    if timer.start is None or timer.end is None or timer.steps <= 0:
        raise BenchError(f"{path}: the run ended before the {warmup} warm-up steps were over")
    seconds = timer.end - timer.start
    notes = _notes(cfg, "gpu" if datamodule.use_gpu_loader else "cpu", module.step_graph)
    return Result(
        model, batch_size, path, timer.steps * batch_size / seconds, timer.steps, seconds, _peak_mib(),
        str(trainer.precision), notes,
    )  # fmt: skip


def set_cudnn_benchmark(cfg: Any) -> None:
    """cuDNN autotuning as ``trainer.benchmark`` asks, off when it is null. Lightning sets the flag only
    when the key is given, so without this one path's setting would carry over to the next."""
    torch.backends.cudnn.benchmark = bool(cfg.trainer.get("benchmark") or False)


def _notes(cfg: Any, loader: str, step_graph: Any) -> str:
    from cifar_resnets.build import CUDA_GRAPH_MODES, compile_mode

    graph = "off"
    if step_graph is not None:
        graph = f"step ({step_graph.disabled_reason})" if step_graph.disabled_reason else "step"
    elif compile_mode(cfg) in CUDA_GRAPH_MODES:
        graph = "net (torch.compile)"
    notes = f"loader={loader} compile={compile_mode(cfg) or 'off'} cuda_graph={graph}"
    if torch.backends.cudnn.benchmark and torch.cuda.is_available():
        notes += " cudnn.benchmark"
    return notes


@dataclass
class RawLoop:
    """The ``fast`` settings (same module, loader, optimizer, schedule, precision, compile and recorded
    step) in a plain loop without Lightning: what the Trainer is measured against."""

    module: Any
    loader: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    runner: Any  # the CapturedTrainStep, or None for eager steps
    precision: str

    def steps(self, total: int) -> Iterator[int]:
        """Yields each step's index just before running it, so callers can read clocks in between."""
        k = 0
        while k < total:
            self.loader.set_epoch(k // len(self.loader))
            for x, y in self.loader:
                yield k
                if self.runner is not None:
                    self.runner(x, y)
                else:
                    self.module.mark_step_begin()
                    self.optimizer.zero_grad(set_to_none=True)
                    self.module.train_forward_backward(x, y)
                self.optimizer.step()
                self.scheduler.step()
                k += 1
                if k >= total:
                    return


def build_raw_loop(cfg: Any, total_steps: int, recorder: Recorder | None = None) -> RawLoop:
    """A ``RawLoop`` from a composed ``train`` config; ``recorder`` replaces CUDA graph recording."""
    from hydra.utils import instantiate

    from cifar_resnets.build import build_datamodule, build_module, resolve_precision, uses_step_graph
    from cifar_resnets.data.gpu_loader import GPUBatchLoader
    from cifar_resnets.module import AUTOCAST_DTYPES, parameter_groups
    from cifar_resnets.step_graph import CapturedTrainStep, record_cuda_graph

    L.seed_everything(cfg.seed)
    torch._dynamo.reset()
    set_cudnn_benchmark(cfg)
    device = _device()
    dm = build_datamodule(cfg)
    images, labels = dm.train_arrays()
    loader = GPUBatchLoader(
        images, labels, cfg.data.batch_size, train=True, mean=dm.mean, std=dm.std, seed=cfg.seed,
        augment=dm.augment, device=device, num_classes=dm.num_classes,
    )  # fmt: skip
    module = build_module(cfg, dm.num_classes).to(device).train()
    precision = str(resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator))
    module.autocast_dtype = AUTOCAST_DTYPES.get(precision)
    opt = module.optimizer_factory(parameter_groups(module.net, cfg.module.weight_decay_bn_bias))
    sched = instantiate(cfg.schedule)(opt, total_steps=total_steps, steps_per_epoch=len(loader))
    runner = None
    if recorder is not None or uses_step_graph(cfg):
        runner = CapturedTrainStep(
            module.train_forward_backward, module.net.parameters, recorder=recorder or record_cuda_graph
        )
    return RawLoop(module, loader, opt, sched, runner, precision)


def raw_path(
    root: Path,
    model: str,
    batch_size: int,
    steps: int,
    warmup: int,
    compile_flag: str,
    workdir: Path,
    extra: Iterable[str] = (),
) -> Result:
    """``RawLoop``: the ``fast`` settings without Lightning (``extra``: cifar-train overrides on top)."""
    cfg = _path_config(root, model, batch_size, warmup + steps, "raw", compile_flag, extra, workdir)
    loop = build_raw_loop(cfg, warmup + steps)
    _reset_peak()
    t0 = 0.0
    for k in loop.steps(warmup + steps):
        if k == warmup:
            _sync()
            t0 = time.perf_counter()
    _sync()
    seconds = time.perf_counter() - t0
    return Result(
        model, batch_size, "raw", steps * batch_size / seconds, steps, seconds, _peak_mib(), loop.precision,
        _notes(cfg, "gpu", loop.runner) + " (no Lightning)",
    )  # fmt: skip


# ----- reports -----
def _ratios(results: list[Result]) -> dict[int, float | None]:
    """images/s over the seed-style loop's for the same model (same batch size when measured)."""
    out: dict[int, float | None] = {}
    for i, r in enumerate(results):
        seeds = [s for s in results if s.path == "seed" and s.model == r.model]
        same = [s for s in seeds if s.batch_size == r.batch_size]
        ref = (same or seeds or [None])[0]
        out[i] = r.images_per_second / ref.images_per_second if ref else None
    return out


def format_table(results: list[Result]) -> str:
    ratios = _ratios(results)
    lines = [
        "| model | batch | path | images/s | x seed-style | peak device MiB | precision | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(results):
        ratio = f"{ratios[i]:.2f}" if ratios[i] is not None else "-"
        peak = f"{r.peak_memory_mib:,.0f}" if r.peak_memory_mib is not None else "n/a (CPU)"
        lines.append(
            f"| {r.model} | {r.batch_size} | {r.path} | {r.images_per_second:,.0f} | {ratio} | {peak} "
            f"| {r.precision} | {r.notes} |"
        )
    return "\n".join(lines)


def cifar_depth(model: str) -> int | None:
    """The depth of a CIFAR ResNet/plain net config name (``resnet56`` -> 56), None for other nets."""
    digits = "".join(ch for ch in model if ch.isdigit())
    return int(digits) if digits and model.startswith(("resnet", "plain")) and int(digits) % 6 == 2 else None


def seconds_per_image_in_depth(measured: dict[int, float]) -> Callable[[int], float]:
    """s(d), seconds per training image at batch 128 for a CIFAR depth d, from measured depths: the
    measured value at every depth when there is one, else the least-squares line s(d) = a + b d."""
    if not measured:
        raise ValueError("no measured depth to extrapolate Table 6 from")
    depths = sorted(measured)
    if len(depths) == 1:
        return lambda d: measured[depths[0]]
    b, a = np.polyfit(depths, [measured[d] for d in depths], 1)
    return lambda d: float(a + b * d)


def table6_seconds(seconds_per_image: dict[int, float]) -> tuple[float, str]:
    """Extrapolated wall time of He et al. Table 6 (nine runs x 64k steps x batch 128), and its formula,
    from measured seconds per training image at batch 128, keyed by CIFAR depth.

    T = 64000 x 128 x sum over the nine depths of s(d) (``seconds_per_image_in_depth``): with one
    measured depth every run is costed as that depth; plain nets are costed as residual nets of the same
    depth. Compilation and evaluation excluded.
    """
    s = seconds_per_image_in_depth(seconds_per_image)
    seconds = TABLE6_STEPS * TABLE6_BATCH * sum(s(d) for d in TABLE6_DEPTHS)
    if len(seconds_per_image) == 1:
        (depth,) = seconds_per_image
        return seconds, f"9 x 64000 x 128 / ips(depth {depth}) (every run costed as the measured depth)"
    depth_list = ",".join(str(d) for d in TABLE6_DEPTHS)
    return seconds, f"64000 x 128 x sum_d (a + b d) over depths {depth_list}; 1/ips fitted in depth"


def time_to_table(results: list[Result]) -> dict[str, Any]:
    """``table6_seconds`` for each path measured at batch 128 with a CIFAR depth (repeated measurements
    of one depth are averaged)."""
    out: dict[str, Any] = {}
    for path in PATHS:
        measured: dict[int, list[float]] = {}
        for r in results:
            depth = cifar_depth(r.model)
            if r.path == path and r.batch_size == TABLE6_BATCH and depth:
                measured.setdefault(depth, []).append(1.0 / r.images_per_second)
        if not measured:
            continue
        seconds, formula = table6_seconds({d: float(np.mean(s)) for d, s in measured.items()})
        out[path] = {"seconds": round(seconds, 1), "minutes": round(seconds / 60, 1), "formula": formula}
    return out


def time_to_accuracy(
    root: Path,
    model: str,
    epochs: int,
    paths: Iterable[str],
    compile_flag: str,
    extra: list[str],
    workdir: Path,
) -> list[dict[str, Any]]:
    """The one-cycle recipe (conf/experiment/onecycle_resnet20.yaml) through cifar-train's train(), for
    each of the Trainer paths asked for (``fast`` against ``eager`` shows what CUDA graphs change)."""
    from cifar_resnets.training import train

    rows = []
    for path in paths:
        if path not in ("suite", "fast", "eager"):
            continue
        overrides = [
            "experiment=onecycle_resnet20",
            *([] if model == "resnet20" else [f"model={model}"]),
            f"data.root={root}",
            f"trainer.max_epochs={epochs}",
            "callbacks.progress_bar=null",
            *_path_overrides(path, compile_flag),
            *extra,
        ]
        cfg = compose(overrides, workdir / f"tta_{path}_{model}")
        torch._dynamo.reset()
        _reset_peak()
        start = time.perf_counter()
        metrics = train(cfg)
        wall = time.perf_counter() - start
        row = {
            "path": path,
            "model": model,
            "epochs": metrics["epochs"],
            "test_acc": metrics.get("test/acc"),
            "wall_seconds": round(wall, 1),
            "fit_seconds": metrics["fit_seconds"],
            "train_seconds": metrics["train_seconds"],
            "train_images_per_second": metrics["train_images_per_second"],
            "precision": metrics["precision"],
            "peak_memory_mib": _peak_mib(),
        }
        print(f"time-to-accuracy {path}: {json.dumps(row)}", flush=True)
        rows.append(row)
    return rows


# ----- CLI -----
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="cifar-bench", description=__doc__.splitlines()[0])
    p.add_argument("--model", nargs="+", default=["resnet20"], help="model config names (conf/model)")
    p.add_argument("--batch-size", nargs="+", type=int, default=[128, 512])
    p.add_argument("--paths", default="seed,suite,fast", help=f"comma-separated, from {','.join(PATHS)}")
    p.add_argument("--steps", type=int, default=100, help="timed optimizer steps per measurement")
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed steps first (default: 20 for seed, else past graph recording and the first log)",
    )
    p.add_argument(
        "--data-root", default=None, help="folder holding cifar-10-batches-py (default: synthetic)"
    )
    p.add_argument("--synthetic-train", type=int, default=50_000, help="synthetic training images")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="seed-style workers")
    p.add_argument("--compile", choices=["auto", "on", "off"], default="auto", help="fast/raw paths")
    p.add_argument("--json", type=Path, default=None, help="write all results here")
    p.add_argument(
        "--time-to-accuracy",
        action="store_true",
        help="instead of images/s: train the one-cycle recipe on each suite/fast/eager path, then test",
    )
    p.add_argument("--epochs", type=int, default=30, help="epochs of --time-to-accuracy")
    p.add_argument(
        "--override",
        action="append",
        default=[],
        help="extra cifar-train override for every path but seed (e.g. trainer.benchmark=true); repeatable",
    )
    args = p.parse_args(argv)
    args.path_list = [s.strip() for s in args.paths.split(",") if s.strip()]
    bad = [s for s in args.path_list if s not in PATHS]
    if bad or not args.path_list:
        p.error(f"--paths: unknown {bad}; choose from {','.join(PATHS)}")
    if args.steps < 1 or min(args.batch_size) < 1 or args.epochs < 1:
        p.error("--steps, --batch-size and --epochs must be >= 1")
    model_names = model_config_names()
    unknown = [m for m in args.model if m not in model_names]
    if unknown:
        p.error(f"--model: unknown {unknown}; choose from {', '.join(model_names)}")
    return args


def checked_config(extra: list[str], base: list[str], workdir: Path) -> Any:
    """The config with the ``--override`` values, composed and checked as cifar-train checks its own
    (``check_config``) once before any measurement, so that a typo costs no run."""
    from cifar_resnets.config_checks import ConfigError, check_config

    try:
        cfg = compose([*base, *extra], workdir / "override_check")
    except Exception as err:  # noqa: BLE001 - Hydra and OmegaConf raise several kinds; all mean the same
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BenchError(f"--override {' '.join(extra)}: {first_line}") from None
    try:
        check_config(cfg)
    except ConfigError as err:
        raise BenchError(f"{err} (with --override {' '.join(extra)})" if extra else str(err)) from None
    return cfg


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


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "device": device_name(),
        "torch": torch.__version__,
        "results": [],
    }

    def save() -> None:
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=1) + "\n")

    with tempfile.TemporaryDirectory(prefix="cifar-bench-") as tmp:
        workdir = Path(tmp)
        root, data_note = prepare_data(args.data_root, args.synthetic_train, workdir)
        report["data"] = data_note
        base = checked_config(
            args.override, bench_overrides(root, args.model[0], args.batch_size[0], 1), workdir
        )
        log_every = int(base.trainer.log_every_n_steps or 0)
        print(f"cifar-bench on {report['device']}, torch {torch.__version__}; data: {data_note}", flush=True)
        results: list[Result] = []
        steps, extra = args.steps, args.override
        graphs = torch.cuda.is_available() and args.compile != "off"
        for model in [] if args.time_to_accuracy else args.model:
            for bs in args.batch_size:
                for path in args.path_list:
                    warmup = (
                        args.warmup if args.warmup is not None else default_warmup(path, graphs, log_every)
                    )
                    start = time.perf_counter()
                    if path == "seed":
                        r = seed_path(root, model, bs, args.steps, warmup, args.workers)
                    elif path == "raw":
                        r = raw_path(root, model, bs, steps, warmup, args.compile, workdir, extra)
                    else:
                        r = trainer_path(root, model, bs, steps, warmup, path, args.compile, workdir, extra)
                    results.append(r)
                    report["results"].append(asdict(r))
                    print(
                        f"{model} bs{bs} {path}: {r.images_per_second:,.0f} images/s "
                        f"({time.perf_counter() - start:.1f} s incl. setup and warm-up)",
                        flush=True,
                    )
                    save()
        if results:
            report["table"] = format_table(results)
            report["time_to_table"] = time_to_table(results)
            save()
        if args.time_to_accuracy:
            report["time_to_accuracy"] = time_to_accuracy(
                root, args.model[0], args.epochs, args.path_list, args.compile, args.override, workdir
            )
            save()
    print_report(report)
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"\nDevice: {report['device']} (torch {report['torch']}); data: {report['data']}")
    if report.get("table"):
        print(report["table"])
    for path, t in report.get("time_to_table", {}).items():
        print(
            f"He et al. Table 6 extrapolated ({path} path): {t['minutes']} min for 9 runs x 64k steps x "
            f"batch 128 = {t['formula']}"
        )
    for row in report.get("time_to_accuracy", []):
        acc = row["test_acc"]
        print(
            f"Time to accuracy ({row['path']}, {row['model']}, {row['epochs']} epochs): test acc "
            f"{acc:.4f}, wall {row['wall_seconds']} s (training {row['train_seconds']} s)"
            if acc is not None
            else f"Time to accuracy ({row['path']}): {row}"
        )
    ttas = report.get("time_to_accuracy", [])
    if len(ttas) == 2 and all(r["test_acc"] is not None for r in ttas):
        delta = 100 * (ttas[1]["test_acc"] - ttas[0]["test_acc"])
        print(f"Accuracy {ttas[1]['path']} - {ttas[0]['path']}: {delta:+.2f} points")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        run(args)
    except (BenchError, ValueError, FileNotFoundError) as err:
        print(f"cifar-bench: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
