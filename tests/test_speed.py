"""The fast path computes what the eager path computes; cifar-bench and the GPU check script run end to end.

No timing assertions: speed is reported by cifar-bench, not asserted.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from train_helpers import tiny_overrides

from cifar_resnets.config.compose import compose_train
from cifar_resnets.errors import ConfigError
from cifar_resnets.models.cifar_resnet import CifarResNet
from cifar_resnets.training import build
from cifar_resnets.training.build import (
    build_datamodule,
    build_module,
    build_optimizer_factory,
    build_trainer,
    compile_mode,
    uses_step_graph,
)
from cifar_resnets.training.callbacks.ema import FastEMA


def _fit(cfg, callbacks=(), **trainer_overrides):
    """Fit a composed config in process; returns the module and the trainer."""
    import lightning as L

    L.seed_everything(cfg.seed)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.num_classes)
    trainer = build_trainer(cfg, **trainer_overrides)
    trainer.callbacks.extend(callbacks)
    trainer.fit(module, datamodule=datamodule)
    return module, trainer


def _tiny(root: Path, tmp_path: Path, **extra):
    overrides = {
        "model.depth": 8,
        "data.num_train": 128,
        "data.val_size": 64,
        "data.batch_size": 32,
        "trainer.max_steps": 3,
        "trainer.deterministic": True,
        "callbacks.checkpoint": None,
        "logger": "none",
        "callbacks.lr_monitor": None,
        "test_after_fit": False,
        **extra,
    }
    return compose_train(tiny_overrides(root, **overrides), output_dir=tmp_path)


def _assert_same_state(
    a: torch.nn.Module, b: torch.nn.Module, atol: float = 1e-5, rtol: float = 1e-4, floats_only: bool = False
) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        if floats_only and not sa[key].is_floating_point():
            continue
        torch.testing.assert_close(sa[key].float(), sb[key].float(), atol=atol, rtol=rtol, msg=key)


# ----- host syncs -----
# Tensor methods that copy a value to the host, and so wait for the GPU to finish everything queued.
_HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


@pytest.mark.parametrize("callbacks", ["default", "ema"])
def test_training_reads_the_gpu_only_on_logging_steps(synthetic_cifar10, tmp_path, monkeypatch, callbacks):
    """Between logging steps nothing may wait for the GPU: one host read per step costs a launch-bound
    net most of its speed. Counted on the CPU by recording every Tensor->host conversion during fit."""
    import lightning as L

    every = 8
    cfg = _tiny(
        synthetic_cifar10,
        tmp_path,
        callbacks=callbacks,
        **{
            "data.num_train": 384,
            "data.val_size": 128,
            "data.batch_size": 16,  # 24 steps per epoch
            "data.loader": "gpu",
            "trainer.max_steps": 48,
            "trainer.max_epochs": 2,
            "trainer.log_every_n_steps": every,
            "trainer.limit_val_batches": 2,
            "callbacks.lr_monitor": "{_target_:lightning.pytorch.callbacks.LearningRateMonitor}",
            "callbacks.progress_bar": (
                "{_target_:cifar_resnets.training.callbacks.progress.TrainProgressBar}"
            ),
            "callbacks.progress_bar.refresh_rate": 3,  # refreshes between logging steps read nothing
            "logger": "tensorboard",
        },
    )
    L.seed_everything(cfg.seed)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule.num_classes)
    trainer = build_trainer(cfg)
    read_at_step: set[int] = set()

    def recording(name):
        original = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):
            if trainer.training:
                read_at_step.add(trainer.global_step)
            return original(self, *args, **kwargs)

        return read

    for name in _HOST_READS:
        monkeypatch.setattr(torch.Tensor, name, recording(name))
    trainer.fit(module, datamodule=datamodule)
    assert trainer.global_step == 48
    # callbacks=ema is the averaging that reads nothing either (Lightning's reads a count every update)
    assert (callbacks == "ema") == any(isinstance(c, FastEMA) for c in trainer.callbacks)
    # A step that logs reads at its end, when global_step has already counted it; epoch ends (24, 48)
    # fall on logging steps here, and step 0 is setup before the first batch.
    assert read_at_step, "the recording saw no host reads at all: the check itself is broken"
    assert read_at_step <= {0} | set(range(every, 49, every)), sorted(read_at_step)
    # The bar still shows the training loss: it reads it itself when it refreshes.
    assert "loss=" in trainer.progress_bar_callback.train_progress_bar.postfix


def test_tensorboard_is_not_flushed_at_every_logging_step(synthetic_cifar10, tmp_path, monkeypatch):
    """Lightning saves the logger after every logging step; the suite's TensorBoard logger leaves the
    flushing to the writer's thread, and the event file still holds every step once the run ends."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    from cifar_resnets.training.loggers import TensorBoardLogger

    flushes: list[int] = []
    original = SummaryWriter.flush
    monkeypatch.setattr(SummaryWriter, "flush", lambda self: flushes.append(1) or original(self))
    steps = 12
    cfg = _tiny(
        synthetic_cifar10,
        tmp_path,
        **{"trainer.max_steps": steps, "trainer.max_epochs": 3, "trainer.log_every_n_steps": 1},
        logger="tensorboard",
    )
    _, trainer = _fit(cfg)
    assert isinstance(trainer.logger, TensorBoardLogger)
    # When fit starts (with hparams.yaml) and when it ends (finalize, then its save), however many steps
    # logged; Lightning's own logger flushes once more per logging step.
    assert len(flushes) <= 3 < steps, len(flushes)
    assert (tmp_path / "hparams.yaml").is_file()
    logged = EventAccumulator(str(tmp_path)).Reload().Scalars("train/loss_step")
    assert [e.step for e in logged] == list(range(steps)), [e.step for e in logged]


def test_tensorboard_keeps_the_logged_steps_of_a_run_that_fails(synthetic_cifar10, tmp_path):
    import lightning as L
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    class FailAtStep6(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 6:
                raise RuntimeError("stop here")

    cfg = _tiny(
        synthetic_cifar10,
        tmp_path,
        **{"trainer.max_steps": 12, "trainer.max_epochs": 3, "trainer.log_every_n_steps": 1},
        logger="tensorboard",
    )
    with pytest.raises(RuntimeError, match="stop here"):
        _fit(cfg, callbacks=[FailAtStep6()])
    logged = EventAccumulator(str(tmp_path)).Reload().Scalars("train/loss_step")
    assert [e.step for e in logged] == list(range(6))


def test_tensorboard_logger_refuses_a_non_positive_flush_interval(tmp_path):
    from cifar_resnets.training.loggers import TensorBoardLogger

    with pytest.raises(ValueError, match="flush_secs=0 must be > 0"):
        TensorBoardLogger(save_dir=tmp_path, flush_secs=0)


# ----- compiled vs eager -----
@pytest.fixture
def aot_eager_compile(monkeypatch):
    """nn.Module.compile with the aot_eager backend: Dynamo + AOTAutograd as inductor uses them, without
    the minutes of C++ code generation inductor needs on a CPU; records the modes asked for."""
    modes: list[str | None] = []
    original = torch.nn.Module.compile

    def compile_(self, *args, mode=None, dynamic=None, **kwargs):
        modes.append(mode)
        return original(self, backend="aot_eager", dynamic=dynamic)

    monkeypatch.setattr(torch.nn.Module, "compile", compile_)
    return modes


def test_compiled_net_trains_like_the_eager_one(synthetic_cifar10, tmp_path, aot_eager_compile):
    eager, _ = _fit(_tiny(synthetic_cifar10, tmp_path / "eager"))
    # reduce-overhead asked for on a CPU: falls back to plain compilation, no CUDA graphs.
    cfg = _tiny(synthetic_cifar10, tmp_path / "compiled", **{"model.compile": True})
    compiled, trainer = _fit(cfg)
    assert aot_eager_compile == ["default"]
    assert not compiled.cudagraph_steps and trainer.global_step == 3
    # Compiled in place: the state dict keeps the eager net's keys (a checkpoint loads into either) and
    # the compiled forward computes the eager one's logits.
    _assert_same_state(eager, compiled)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(compiled.net.eval()(x), eager.net.eval()(x), atol=1e-5, rtol=1e-4)


@pytest.mark.inductor
def test_inductor_compiled_net_trains_like_the_eager_one(synthetic_cifar10, tmp_path):
    """The real inductor backend on the CPU (minutes of compilation on a small machine).

    Inductor fuses and reorders float sums, and 3 SGD steps at lr 0.1 carry that into the weights: the
    largest difference measured was 1.2e-4 (first conv, weights up to 0.38; running variances up to 6e-4
    off values near 1), hence the tolerance. A wrong graph (a missed BN update, a stale weight) is off by
    orders of magnitude more.
    """
    fp32 = {"trainer.precision": "32-true"}  # the tolerance is fp32's: bf16 rounds each op far more
    eager, _ = _fit(_tiny(synthetic_cifar10, tmp_path / "eager", **fp32))
    compiled, _ = _fit(_tiny(synthetic_cifar10, tmp_path / "compiled", **fp32, **{"model.compile": True}))
    _assert_same_state(eager, compiled, atol=3e-4, rtol=1e-3)


def test_padded_eval_batches_give_the_same_logits(synthetic_cifar10, tmp_path):
    cfg = _tiny(synthetic_cifar10, tmp_path)
    module = build_module(cfg, 10).eval()
    x = torch.randn(10, 3, 32, 32)
    with torch.no_grad():
        plain = module._eval_logits(x[:7])
        module.cudagraph_steps = True  # the CUDA-graph path (mark_step_begin is a no-op without graphs)
        module._eval_logits(x)  # the usual eval batch size: 10
        padded = module._eval_logits(x[:7])
    assert padded.shape == (7, 10)
    torch.testing.assert_close(padded, plain)


# ----- compile mode and optimizer choices -----
def test_compile_mode_falls_back_where_graphs_cannot_run(monkeypatch, tmp_path):
    def mode(uses_cuda: bool, **extra):
        monkeypatch.setattr(build, "_uses_cuda", lambda accelerator: uses_cuda)
        return compile_mode(compose_train(tiny_overrides(tmp_path, **extra)))

    # Default: inductor kernels inside the recorded training step on one GPU, eager on the CPU.
    assert mode(False) is None and mode(True) == "default"
    assert mode(True, **{"model.compile": False}) is None
    assert mode(False, **{"model.compile": True}) == "default"
    # Without the recorded step, auto means torch.compile's own CUDA graphs of the net.
    assert mode(True, **{"module.cuda_graph": False}) == "reduce-overhead"
    assert mode(True, **{"model.compile": True, "model.compile_mode": "reduce-overhead"}) == "reduce-overhead"
    assert mode(True, **{"model.compile": True, "trainer": "ddp", "trainer.devices": 2}) == "default"
    assert mode(True, **{"model.compile": True, "model.compile_mode": "max-autotune-no-cudagraphs"}) == (
        "max-autotune-no-cudagraphs"
    )


def test_step_graph_runs_only_where_it_can(monkeypatch, tmp_path, caplog):
    def graphs(uses_cuda: bool, **extra):
        monkeypatch.setattr(build, "_uses_cuda", lambda accelerator: uses_cuda)
        return uses_step_graph(compose_train(tiny_overrides(tmp_path, **extra)))

    assert graphs(True) and not graphs(False)
    assert not graphs(True, **{"module.cuda_graph": False})
    assert not graphs(True, **{"trainer": "ddp", "trainer.devices": 2})
    assert not graphs(True, **{"trainer.precision": "16-mixed"})
    assert not graphs(True, **{"+trainer.accumulate_grad_batches": 2})
    assert not graphs(True, **{"model.compile": True, "model.compile_mode": "reduce-overhead"})
    with caplog.at_level("WARNING"):
        assert not graphs(False, **{"module.cuda_graph": True})
        build_module(compose_train(tiny_overrides(tmp_path, **{"module.cuda_graph": True})), 10)
    assert "CUDA graphs need a CUDA GPU" in caplog.text
    assert caplog.text.count("module.cuda_graph=true") == 1  # said once per run, not per lookup


def test_fused_optimizer_only_on_cuda_and_without_clipping(monkeypatch, tmp_path):
    monkeypatch.setattr(build, "_uses_cuda", lambda accelerator: True)
    fused = build_optimizer_factory(compose_train(tiny_overrides(tmp_path)))
    assert fused.keywords.get("fused") is True
    clipped = build_optimizer_factory(
        compose_train(tiny_overrides(tmp_path, **{"trainer.gradient_clip_val": 1.0}))
    )
    assert "fused" not in clipped.keywords
    monkeypatch.setattr(build, "_uses_cuda", lambda accelerator: False)
    assert "fused" not in build_optimizer_factory(compose_train(tiny_overrides(tmp_path))).keywords


@pytest.mark.parametrize(
    "factory",
    [
        functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True),
        functools.partial(torch.optim.Adam, lr=1e-3, weight_decay=1e-4),
        functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=5e-4),
    ],
    ids=["sgd", "adam", "adamw"],
)
def test_fused_optimizer_step_equals_the_unfused_one(factory):
    torch.manual_seed(0)
    net = CifarResNet(depth=8, num_classes=10)
    twin = copy.deepcopy(net)
    opt_a, opt_b = factory(net.parameters(), foreach=False), factory(twin.parameters(), fused=True)
    sched_a = torch.optim.lr_scheduler.OneCycleLR(
        opt_a, 0.1 if "SGD" in str(factory) else 1e-3, total_steps=5
    )
    sched_b = torch.optim.lr_scheduler.OneCycleLR(
        opt_b, 0.1 if "SGD" in str(factory) else 1e-3, total_steps=5
    )
    for _ in range(4):
        x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
        for model, opt, sched in ((net, opt_a, sched_a), (twin, opt_b, sched_b)):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            sched.step()
    _assert_same_state(net, twin)


# ----- EMA -----
def test_fast_ema_averages_like_lightnings_ema(synthetic_cifar10, tmp_path):
    cfg = _tiny(synthetic_cifar10, tmp_path / "a", **{"trainer.max_steps": 6})
    lightning_ema, _ = _fit(cfg, [EMAWeightAveraging(decay=0.8)])
    fast_ema, _ = _fit(
        _tiny(synthetic_cifar10, tmp_path / "b", **{"trainer.max_steps": 6}), [FastEMA(decay=0.8)]
    )
    raw, _ = _fit(_tiny(synthetic_cifar10, tmp_path / "c", **{"trainer.max_steps": 6}))
    # The average ends up in the model at the end of fit. Integer buffers (BatchNorm's batch counts) are
    # copied by FastEMA; Lightning's averages them in float and truncates, which means nothing.
    _assert_same_state(lightning_ema, fast_ema, floats_only=True)
    assert torch.equal(fast_ema.net.bn1.num_batches_tracked, raw.net.bn1.num_batches_tracked)
    assert not torch.allclose(raw.net.fc.weight, fast_ema.net.fc.weight)


def test_fast_ema_every_n_steps_uses_decay_to_the_n():
    ema = FastEMA(decay=0.9, update_every_n_steps=3)
    assert [s for s in range(10) if ema.should_update(step_idx=s)] == [0, 3, 6, 9]
    assert not ema.should_update(epoch_idx=0)

    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(3))
            self.register_buffer("count", torch.zeros((), dtype=torch.long))

    model = Holder()
    from torch.optim.swa_utils import AveragedModel

    ema._average_model = AveragedModel(model, use_buffers=True)
    ema.update_average(model)  # first update copies
    with torch.no_grad():
        model.w.fill_(1.0)
        model.count.fill_(5)
    ema.update_average(model)
    torch.testing.assert_close(ema._average_model.module.w, torch.full((3,), 1 - 0.9**3))
    assert int(ema._average_model.module.count) == 5 and int(ema._average_model.n_averaged) == 2


def test_validation_before_the_first_ema_update_sees_the_trained_weights(synthetic_cifar10, tmp_path):
    # Lightning's callback would swap in the untrained copy here (Lightning issue #21724).
    cfg = _tiny(synthetic_cifar10, tmp_path, **{"trainer.max_steps": 4, "+trainer.val_check_interval": 2})
    initial: list[torch.Tensor] = []
    seen: list[torch.Tensor] = []

    import lightning as L

    class Spy(L.Callback):
        def on_train_start(self, trainer, pl_module):
            initial.append(pl_module.net.fc.weight.detach().clone())

        def on_validation_epoch_start(self, trainer, pl_module):
            seen.append(pl_module.net.fc.weight.detach().clone())

    module, _ = _fit(cfg, [FastEMA(decay=0.9, update_starting_at_step=100), Spy()])
    assert len(seen) == 2
    assert not any(torch.equal(w, initial[0]) for w in seen)
    assert not torch.equal(module.net.fc.weight, initial[0])


def test_fast_ema_refuses_bad_settings():
    with pytest.raises(ConfigError, match="decay"):
        FastEMA(decay=1.5)
    with pytest.raises(ConfigError, match="update_every_n_steps"):
        FastEMA(update_every_n_steps=0)


def test_every_trainer_sets_cudnn_autotuning_from_its_config_only(tmp_path):
    """A second fit in one process (cifar-reproduce --in-process, cifar-bench's paths) must not inherit
    the first one's autotuning: Lightning leaves the flag as it finds it when trainer.benchmark is null."""
    build.build_trainer(compose_train(["trainer.benchmark=true", "trainer.accelerator=cpu"], tmp_path / "a"))
    assert torch.backends.cudnn.benchmark
    build.build_trainer(compose_train(["trainer.accelerator=cpu"], tmp_path / "b"))  # null: off again
    assert not torch.backends.cudnn.benchmark
