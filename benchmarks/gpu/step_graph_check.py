"""GPU check: a run whose training steps replay as one CUDA graph ends with the weights of an eager run.

Same config, seed and batches; ``module.cuda_graph`` true vs false, no compilation, in fp32 and bf16.
cuDNN's backward kernels are not bitwise deterministic, so two eager runs differ a little as well: the
graphed run passes when its distance to the eager run is within a small multiple of that noise.
Prints one JSON line per precision and writes them to ``$OUT/step_graph_check.json``.

    python benchmarks/gpu/step_graph_check.py --data-root DIR [--steps 60] [--num-train 10000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import lightning as L
import torch

from cifar_resnets.config.compose import compose_train
from cifar_resnets.training.build import build_datamodule, build_module, build_trainer


def fit(
    root: str, workdir: Path, graph: bool, precision: str, steps: int, num_train: int
) -> tuple[dict, dict]:
    overrides = [
        f"data.root={root}",
        "data.val_size=0",
        f"data.num_train={num_train}",
        f"trainer.max_steps={steps}",
        f"trainer.precision={precision}",
        "trainer.limit_val_batches=0",
        "trainer.log_every_n_steps=10",
        "callbacks.checkpoint=null",
        "callbacks.progress_bar=null",
        "logger=none",
        "model.compile=false",
        f"module.cuda_graph={str(graph).lower()}",
        "test_after_fit=false",
    ]
    cfg = compose_train(overrides, workdir / f"{precision}_{graph}_{len(list(workdir.iterdir()))}")
    L.seed_everything(cfg.seed)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.num_classes)
    trainer = build_trainer(cfg)
    trainer.fit(module, datamodule=datamodule)
    recorded = module.step_graph is not None and module.step_graph.recordings > 0
    if torch.cuda.is_available():  # on the CPU (a smoke run of this script) nothing is recorded
        assert recorded == graph, f"cuda_graph={graph} but recorded={recorded}"
    state = {k: v.detach().float().cpu() for k, v in module.state_dict().items() if v.is_floating_point()}
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return state, metrics


def distance(a: dict, b: dict) -> float:
    """Largest difference over all float tensors, relative to the tensor's scale."""
    return max(float((a[k] - b[k]).abs().max() / (b[k].abs().max() + 1e-12)) for k in a)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--num-train", type=int, default=10000)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("32-true", "bf16-mixed"):
            eager, m_eager = fit(args.data_root, Path(tmp), False, precision, args.steps, args.num_train)
            eager2, _ = fit(args.data_root, Path(tmp), False, precision, args.steps, args.num_train)
            graph, m_graph = fit(args.data_root, Path(tmp), True, precision, args.steps, args.num_train)
            noise, diff = distance(eager2, eager), distance(graph, eager)
            row = {
                "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                "precision": precision,
                "steps": args.steps,
                "eager_vs_eager": noise,
                "graph_vs_eager": diff,
                "train_loss_eager": m_eager.get("train/loss_step"),
                "train_loss_graph": m_graph.get("train/loss_step"),
                "ok": diff <= 10 * noise + 1e-4,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "step_graph_check.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
