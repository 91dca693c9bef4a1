"""The recorded training step (step_graph.CapturedTrainStep) trains exactly like Lightning's eager step.

There is no GPU here, so recording is emulated: ``EmulatedGraph`` keeps what a CUDA graph keeps (static
input, output and ``.grad`` tensors, rewritten in place by every replay; recording itself runs nothing)
and replays by running the step again. What these tests check is everything around the graph: that
the module hands zero_grad and backward to the recorded step, that warm-up steps are real steps and no
batch is seen twice, that clipping, one-cycle momentum, EMA and logging are unchanged, and when a new
graph is recorded. benchmarks/gpu/bench.sh checks the real CUDA graph against eager on a GPU.
"""

from __future__ import annotations

import functools
import logging

import lightning as L
import pytest
import torch
from train_helpers import tiny_overrides

from cifar_resnets.config.compose import compose_train
from cifar_resnets.training.build import build_datamodule, build_module, build_trainer
from cifar_resnets.training.callbacks.ema import FastEMA
from cifar_resnets.training.step_graph import CapturedTrainStep


class EmulatedGraph:
    """A CUDA graph's semantics on the CPU: replay recomputes into the recorded tensors."""

    def __init__(self, step_fn, x, y, outputs, module: torch.nn.Module) -> None:
        self.step_fn, self.x, self.y, self.outputs, self.module = step_fn, x, y, outputs, module
        self.replays = 0

    def replay(self) -> None:
        params = [p for p in self.module.parameters() if p.requires_grad]
        static_grads = [p.grad for p in params]
        for p in params:
            p.grad = None
        fresh = self.step_fn(self.x, self.y)
        for p, grad in zip(params, static_grads, strict=True):
            grad.copy_(p.grad)  # the recorded backward writes into the same .grad storage every time
            p.grad = grad
        for out, new in zip(self.outputs, fresh, strict=True):
            out.copy_(new)
        self.replays += 1


def emulated_recorder(module: torch.nn.Module, graphs: list[EmulatedGraph]):
    def record(step_fn, x, y, stream):
        buffers = [b.clone() for b in module.buffers()]
        outputs = step_fn(x, y)  # allocates outputs and .grad tensors, as recording does...
        with torch.no_grad():
            for b, saved in zip(module.buffers(), buffers, strict=True):
                b.copy_(saved)  # ...but runs no kernels: BatchNorm statistics stay untouched
        graph = EmulatedGraph(step_fn, x, y, outputs, module)
        graphs.append(graph)
        return graph, outputs

    return record


def _cfg(root, tmp_path, **extra):
    overrides = {
        "model.depth": 8,
        "data.num_train": 192,
        "data.val_size": 64,
        "data.batch_size": 32,
        "trainer.max_steps": 8,
        "trainer.max_epochs": 2,
        "trainer.deterministic": True,
        "trainer.log_every_n_steps": 3,
        "callbacks.checkpoint": None,
        "callbacks.lr_monitor": None,
        "logger": "none",
        "test_after_fit": False,
        **extra,
    }
    return compose_train(tiny_overrides(root, **overrides), output_dir=tmp_path)


def _fit(cfg, graphed: bool, callbacks=(), warmup_steps: int = 2, recorder=None):
    L.seed_everything(cfg.seed)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.num_classes)
    graphs: list[EmulatedGraph] = []
    if graphed:
        module.step_graph_factory = functools.partial(
            CapturedTrainStep,
            warmup_steps=warmup_steps,
            recorder=recorder or emulated_recorder(module, graphs),
        )
    trainer = build_trainer(cfg)
    trainer.callbacks.extend(callbacks)
    trainer.fit(module, datamodule=datamodule)
    return module, trainer, graphs


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], atol=1e-6, rtol=1e-5, msg=key)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {
            "experiment": "onecycle_resnet20",  # one-cycle lr and momentum, nesterov, label smoothing
            "model.depth": 8,
            "data.val_size": 64,
            "data.batch_size": 32,
            "data.eval_batch_size": 64,
            "trainer.max_epochs": 2,
            "trainer.gradient_clip_val": 0.5,
        },
        {"augment": "strong", "data.val_size": 64},  # mixup/cutmix soft targets
    ],
    ids=["he2016-sgd", "onecycle-clipped", "mixup-cutmix"],
)
def test_recorded_step_trains_like_the_eager_step(synthetic_cifar10, tmp_path, extra):
    cfg = functools.partial(_cfg, synthetic_cifar10, **extra)
    ema = functools.partial(FastEMA, decay=0.9)
    eager, eager_trainer, _ = _fit(cfg(tmp_path / "eager"), graphed=False, callbacks=[ema()])
    graphed, trainer, graphs = _fit(cfg(tmp_path / "graphed"), graphed=True, callbacks=[ema()])
    assert trainer.global_step == eager_trainer.global_step == 8
    # 2 eager warm-up steps, then one recording whose replays run the remaining 6 steps.
    assert len(graphs) == 1 and graphs[0].replays == 6 and graphed.step_graph.recordings == 1
    _assert_same_state(eager, graphed)  # weights (EMA) and BatchNorm statistics: each batch seen once
    for key in ("train/loss_step", "train/acc_step", "train/loss_epoch", "train/acc", "val/acc"):
        torch.testing.assert_close(
            trainer.callback_metrics[key], eager_trainer.callback_metrics[key], msg=key
        )


def test_training_metrics_are_window_and_epoch_means(synthetic_cifar10, tmp_path):
    losses: list[float] = []

    class Spy(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    _, trainer, _ = _fit(
        _cfg(synthetic_cifar10, tmp_path, **{"trainer.max_steps": 6, "data.num_train": 128}),
        graphed=True,
        callbacks=[Spy()],
    )
    # 4 steps per epoch, logs every 3 steps: the last window holds steps 4 and 5 (the 2nd epoch's first two)
    metrics = trainer.callback_metrics
    torch.testing.assert_close(float(metrics["train/loss_step"]), sum(losses[3:6]) / 3, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(float(metrics["train/loss_epoch"]), sum(losses[4:6]) / 2, rtol=1e-5, atol=1e-6)
    assert 0.0 <= float(metrics["train/acc"]) <= 1.0


def test_a_new_graph_is_recorded_when_trainable_parameters_change(synthetic_cifar10, tmp_path):
    class FreezeHead(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 4:
                pl_module.net.fc.requires_grad_(False)

    module, _, graphs = _fit(_cfg(synthetic_cifar10, tmp_path), graphed=True, callbacks=[FreezeHead()])
    # steps 0-1 warm up, 2 records, 3 replays; the frozen head: 4-5 warm up, 6 records, 7 replays
    assert module.step_graph.recordings == 2 and [g.replays for g in graphs] == [2, 2]
    assert module.net.fc.weight.grad is None


def test_a_failed_recording_falls_back_to_eager_steps(synthetic_cifar10, tmp_path, caplog):
    def broken_recorder(step_fn, x, y, stream):
        raise RuntimeError("operation not permitted when stream is capturing")

    eager, _, _ = _fit(_cfg(synthetic_cifar10, tmp_path / "eager"), graphed=False)
    with caplog.at_level(logging.WARNING):
        fallback, _, _ = _fit(
            _cfg(synthetic_cifar10, tmp_path / "fb"), graphed=True, recorder=broken_recorder
        )
    assert "training continues eagerly" in caplog.text
    assert "operation not permitted" in fallback.step_graph.disabled_reason
    _assert_same_state(eager, fallback)


def test_captured_step_refuses_zero_warmup():
    with pytest.raises(ValueError, match="warmup_steps"):
        CapturedTrainStep(lambda x, y: (x,), lambda: [], warmup_steps=0)
