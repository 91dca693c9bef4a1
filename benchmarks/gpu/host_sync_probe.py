"""GPU check: where a training run through cifar-train's Trainer waits for the GPU, and where its CPU
time per step goes.

A launch-bound net is only fast while the CPU queues work ahead of the GPU; one host read per step
(``.item()``, a device->host copy, ``torch.cuda.synchronize``) makes every step pay the CPU's and the
GPU's time one after the other. The run below trains the default recipe (each step replayed as a CUDA
graph) and, from step ``--warmup`` on, turns on ``torch.cuda.set_sync_debug_mode("warn")`` (on the CPU:
counts Tensor->host conversions instead) and records which steps synchronise and from where. The
steps that should: those that write logs (every ``trainer.log_every_n_steps``) and epoch ends. Then a
second run is profiled with cProfile, for the functions that cost the most host time per step.

    python benchmarks/gpu/host_sync_probe.py --data-root DIR [--model resnet20] [--batch-size 128] [--out DIR]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import tempfile
import traceback
import warnings
from collections import Counter
from pathlib import Path

import lightning as L
import torch

from cifar_resnets.config.compose import compose_train
from cifar_resnets.data.synthetic import write_synthetic_cifar
from cifar_resnets.training.build import build_datamodule, build_module, build_trainer

HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


def build(root: str, workdir: Path, model: str, batch_size: int, steps: int, log_every: int, name: str):
    overrides = [
        f"model={model}",
        f"data.root={root}",
        f"data.batch_size={batch_size}",
        "data.val_size=0",
        f"trainer.max_steps={steps}",
        f"trainer.log_every_n_steps={log_every}",
        "trainer.limit_val_batches=0",
        "data.loader=gpu",
        "model.compile=false",
        "callbacks.checkpoint=null",
        "test_after_fit=false",
    ]
    if not torch.cuda.is_available():
        overrides += ["data.num_train=512", "callbacks.progress_bar=null"]
    cfg = compose_train(overrides, workdir / name)
    L.seed_everything(cfg.seed)
    datamodule = build_datamodule(cfg)
    return build_module(cfg, datamodule.num_classes), datamodule, build_trainer(cfg)


class SyncRecorder(L.Callback):
    """Records (global step, call site) of every host synchronisation from step ``start`` on."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.sites: Counter[tuple[int, str]] = Counter()
        self._trainer: L.Trainer | None = None
        self._patched: dict[str, object] = {}
        self._showwarning: object = None

    def _site(self) -> str:
        frames = [f for f in traceback.extract_stack()[:-2] if "site-packages/torch/" not in f.filename]
        return " <- ".join(f"{Path(f.filename).name}:{f.lineno}:{f.name}" for f in reversed(frames[-4:]))

    def _record(self) -> None:
        assert self._trainer is not None
        self.sites[(self._trainer.global_step, self._site())] += 1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step != self.start or self._trainer is not None:
            return
        self._trainer = trainer
        if torch.cuda.is_available():
            warnings.simplefilter("always")
            self._showwarning = original = warnings.showwarning

            def show(message, category, *args, **kwargs):
                if "synchronizing" in str(message):
                    self._record()
                else:
                    original(message, category, *args, **kwargs)

            warnings.showwarning = show
            torch.cuda.set_sync_debug_mode("warn")
        else:  # no sync debug mode on the CPU: count the Tensor->host conversions
            for name in HOST_READS:
                self._patched[name] = original = getattr(torch.Tensor, name)
                setattr(torch.Tensor, name, self._wrap(original))

    def _wrap(self, original):
        def read(tensor, *args, **kwargs):
            self._record()
            return original(tensor, *args, **kwargs)

        return read

    def on_train_end(self, trainer, pl_module) -> None:
        if torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode(0)
        if self._showwarning is not None:
            warnings.showwarning = self._showwarning
        for name, original in self._patched.items():
            setattr(torch.Tensor, name, original)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default="", help="holds cifar-10-batches-py (empty: small synthetic set)")
    p.add_argument("--model", default="resnet20")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--out", type=Path, default=Path("."))
    args = p.parse_args()
    if not 0 <= args.warmup < args.steps or args.log_every < 1 or args.batch_size < 1:
        p.error("need 0 <= --warmup < --steps, --log-every >= 1 and --batch-size >= 1")
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp())
    if not args.data_root:
        args.data_root = str(workdir / "data")
        write_synthetic_cifar(Path(args.data_root), "cifar10", num_train=512, num_test=64, seed=0)

    module, dm, trainer = build(
        args.data_root, workdir, args.model, args.batch_size, args.steps, args.log_every, "sync"
    )
    recorder = SyncRecorder(args.warmup)
    trainer.callbacks.append(recorder)
    trainer.fit(module, datamodule=dm)
    steps = sorted({step for step, _ in recorder.sites})
    # Expected: the step that logs (it reads at its end, and Lightning copies the logged values when
    # they are written), epoch ends (epoch means, divergence check) and progress-bar refreshes.
    bar = trainer.progress_bar_callback
    refresh = getattr(bar, "refresh_rate", 0) or 0
    per_epoch = dm.steps_per_epoch

    def expected(step: int) -> bool:
        logs = step % args.log_every == 0 or (step + 1) % args.log_every == 0
        return logs or step % per_epoch == 0 or bool(refresh and step % refresh == 0)

    report = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "steps_recorded": trainer.global_step - args.warmup,
        "steps_with_syncs": len(steps),
        "unexpected_steps": [s for s in steps if not expected(s)],
        "sites": [
            {"step": step, "count": n, "site": site} for (step, site), n in sorted(recorder.sites.items())
        ][:60],
    }

    module, dm, trainer = build(
        args.data_root, workdir, args.model, args.batch_size, args.steps, args.log_every, "profile"
    )
    profiler = cProfile.Profile()
    profiler.enable()
    trainer.fit(module, datamodule=dm)
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumtime").print_stats(r"(lightning|cifar_resnets|optim)", 60)
    (args.out / "host_profile.txt").write_text(text.getvalue())
    (args.out / "host_sync_probe.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "sites"}))


if __name__ == "__main__":
    main()
