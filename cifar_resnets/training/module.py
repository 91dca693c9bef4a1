"""The LightningModule that trains any classifier net of the suite.

It owns the loss, metrics and optimizer wiring. The hot path does no host sync: training metrics are
summed on the device and logged every ``log_every_n_steps``, and on one CUDA GPU the step replays as one
CUDA graph (``step_graph``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from cifar_resnets.models.build import model_fingerprint
from cifar_resnets.training.schedules import planned_steps
from cifar_resnets.training.step_graph import CapturedTrainStep

OptimizerFactory = Callable[[Iterable[Any]], torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]
StepGraphFactory = Callable[..., CapturedTrainStep]

# Autocast dtype of the training step for Lightning's precision settings (None: no autocast).
AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def rng_states() -> dict[str, Any]:
    """The global RNG states, as tensors and plain values so ``torch.load(weights_only=True)`` reads them."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def parameter_groups(net: nn.Module, weight_decay_bn_bias: bool) -> list[dict[str, Any]]:
    """Split parameters so BatchNorm weights and biases can skip weight decay.

    One-dimensional tensors are exactly the BN scales/shifts and the biases in these nets.
    """
    params = [p for p in net.parameters() if p.requires_grad]
    if weight_decay_bn_bias:
        return [{"params": params}]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


class ClassifierModule(L.LightningModule):
    """Cross-entropy classification with top-1 (and top-5) accuracy.

    Args:
        net: any ``nn.Module`` mapping images to logits.
        num_classes: number of classes (metrics need it).
        optimizer: ``params -> Optimizer``, a Hydra ``_partial_`` of a torch optimizer.
        scheduler: ``(optimizer, total_steps=, steps_per_epoch=) -> LRScheduler`` or None;
            stepped every optimizer step.
        label_smoothing: cross-entropy label smoothing.
        weight_decay_bn_bias: False excludes BatchNorm parameters and biases from weight decay.
        channels_last: store the net's weights in NHWC (faster convolutions on GPUs and CPUs).
        config: the resolved run config, stored in checkpoints so tools can rebuild the net.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        label_smoothing: float = 0.0,
        weight_decay_bn_bias: bool = True,
        channels_last: bool = False,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net.to(memory_format=torch.channels_last) if channels_last else net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.top5 = num_classes > 10
        if self.top5:
            self.val_acc5 = MulticlassAccuracy(num_classes, top_k=5, average="micro")
            self.test_acc5 = MulticlassAccuracy(num_classes, top_k=5, average="micro")
        # Set by build_module when the net is compiled with CUDA graphs (mode="reduce-overhead"): each
        # step then starts a new graph generation, and eval batches are padded to one shape.
        self.cudagraph_steps = False
        self._eval_batch_size = 0
        # Set by build_module on one CUDA GPU: builds the CapturedTrainStep that runs forward, loss and
        # backward of every training step (then this module skips Lightning's zero_grad and backward).
        self.step_graph_factory: StepGraphFactory | None = None
        self.step_graph: CapturedTrainStep | None = None
        # Autocast dtype of train_forward_backward, from the trainer's precision (set at train start).
        self.autocast_dtype: torch.dtype | None = None
        # Training loss and accuracy, summed on the device. Why not torchmetrics: MeanMetric checks every
        # update for NaN (a host sync per step), and logging a Metric object each step makes Lightning walk
        # its state (most of a small net's step time on the CPU side). Not registered buffers: Lightning's
        # WeightAveraging (EMA) averages and swaps every buffer of the module together with the weights.
        # Rows: this epoch, the current logging window; columns: summed batch losses, correct predictions.
        self._train_sums: torch.Tensor | None = None
        self._train_counts = {"epoch_steps": 0, "epoch_images": 0, "window_steps": 0, "window_images": 0}

    def mark_step_begin(self) -> None:
        if self.cudagraph_steps:
            # Outputs of the previous step's graphs may be overwritten from here on: a new step must be
            # marked, or torch refuses to replay (https://pytorch.org/docs/stable/torch.compiler_cudagraph_trees.html).
            torch.compiler.cudagraph_mark_step_begin()

    def _eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of an eval batch; under CUDA graphs a short last batch is zero-padded to the usual
        size and the padded rows dropped (eval-mode BatchNorm treats rows independently), so the split
        needs one graph, not one per batch shape: each new shape records another graph and its memory pool
        (https://pytorch.org/docs/stable/torch.compiler_cudagraph_trees.html, "Dynamic Shape Support")."""
        n = x.shape[0]
        if not self.cudagraph_steps:
            return self(x)
        self._eval_batch_size = max(self._eval_batch_size, n)
        if n == self._eval_batch_size:
            return self(x)
        channels_last = x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last)
        padded = x.new_zeros((self._eval_batch_size, *x.shape[1:]))
        padded = padded.contiguous(memory_format=torch.channels_last) if channels_last else padded
        padded[:n] = x
        return self(padded)[:n]

    @property
    def backbone(self) -> nn.Module:
        """The net without its head, for ``BackboneFinetuning`` (torchvision nets expose it)."""
        return self.net.backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def on_fit_start(self) -> None:
        # Stored in every checkpoint so evaluation tools and the app preprocess images and name
        # classes exactly as training did, without the dataset at hand.
        dm = self.trainer.datamodule
        self.hparams["data_info"] = {
            "name": getattr(dm, "name", type(dm).__name__),
            "classes": list(getattr(dm, "classes", [])),
            "mean": [float(v) for v in dm.mean],
            "std": [float(v) for v in dm.std],
            "image_size": int(dm.image_size),
            "resize_size": int(getattr(dm, "resize_size", dm.image_size)),
        }
        if self.hparams.config:  # tells a stored config edited to another net of the same shapes
            self.hparams["model_fingerprint"] = model_fingerprint(self.hparams.config["model"])

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # Class indices or soft targets (mixup/cutmix): F.cross_entropy takes both.
        return F.cross_entropy(logits.float(), target, label_smoothing=self.hparams.label_smoothing)

    def _loss_and_stats(
        self, logits: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss, and [loss, correct predictions] for the training metrics (soft targets count as
        their dominant class)."""
        loss = self.loss(logits, target)
        hard = target.argmax(dim=1) if target.ndim == 2 else target
        correct = (logits.detach().argmax(dim=1) == hard).sum()
        return loss, torch.stack([loss.detach(), correct.float()])

    def train_forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the CUDA graph records. Autocast without its weight-cast cache, which graph capture
        cannot use (``torch.cuda.make_graphed_callables`` refuses it); the cache only saves recasting a
        weight used twice in one step."""
        dtype = self.autocast_dtype
        with torch.autocast(
            x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None, cache_enabled=False
        ):
            logits = self(x)
        loss, stats = self._loss_and_stats(logits, y)
        loss.backward()
        return loss.detach(), stats

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        if self.step_graph is not None:
            loss, stats = self.step_graph(x, y)  # backward done
        else:
            self.mark_step_begin()
            loss, stats = self._loss_and_stats(self(x), y)
        self._track_train_stats(stats, x.shape[0])
        return loss

    # The captured step owns the gradients: it rewrites the same .grad tensors on every replay and has
    # run backward itself, so Lightning's zero_grad (set_to_none, also before validation) and backward
    # must not run.
    def on_validation_model_zero_grad(self) -> None:
        if self.step_graph is None:
            super().on_validation_model_zero_grad()

    def backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        if self.step_graph is None:
            super().backward(loss, *args, **kwargs)

    def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer: torch.optim.Optimizer) -> None:
        if self.step_graph is None:
            super().optimizer_zero_grad(epoch, batch_idx, optimizer)

    def on_train_start(self) -> None:
        # Restore here, after the model and loaders are built: building them draws random numbers.
        states = getattr(self, "_pending_rng_states", None)
        if states is not None:
            set_rng_states(states)
            self._pending_rng_states = None
        if self.step_graph_factory is not None and self.step_graph is None:
            self.autocast_dtype = AUTOCAST_DTYPES.get(str(self.trainer.precision))
            self.step_graph = self.step_graph_factory(self.train_forward_backward, self.net.parameters)

    # ----- training loss/accuracy: device sums, logged every log_every_n_steps and per epoch -----
    def _track_train_stats(self, stats: torch.Tensor, images: int) -> None:
        """Add a step's [loss, correct] to both rows (one kernel); write the window's means every
        log_every_n_steps."""
        if self._train_sums is None:
            self._train_sums = torch.zeros(2, 2, device=stats.device)
        elif self._train_sums.device != stats.device:  # restored from a checkpoint on the CPU
            self._train_sums = self._train_sums.to(stats.device)
        self._train_sums.add_(stats)
        counts = self._train_counts
        counts["epoch_steps"] += 1
        counts["window_steps"] += 1
        counts["epoch_images"] += images
        counts["window_images"] += images
        every = self.trainer.log_every_n_steps
        # The step Lightning writes logs at: global_step counts this step's optimizer step from 0 here.
        if every and (self.global_step + 1) % every == 0:
            # Means over the steps since the last write (less noisy than one batch's loss); divided by
            # host numbers, as a host->device tensor copy would wait for the GPU.
            # Not prog_bar: Lightning converts progress-bar values to Python numbers after every batch
            # for as long as they stay logged (a host sync per step); TrainProgressBar reads the loss
            # once per logging step.
            loss_sum, correct = self._train_sums[1]
            self.log("train/loss_step", loss_sum / counts["window_steps"], on_step=True, on_epoch=False)
            self.log("train/acc_step", correct / counts["window_images"], on_step=True, on_epoch=False)
            self._train_sums[1].zero_()
            counts["window_steps"] = counts["window_images"] = 0

    def on_train_epoch_end(self) -> None:
        counts = self._train_counts
        if self._train_sums is not None and counts["epoch_steps"]:
            loss_sum, correct = self._train_sums[0]
            self.log("train/loss_epoch", loss_sum / counts["epoch_steps"], sync_dist=True)
            self.log("train/acc", correct / counts["epoch_images"], sync_dist=True, prog_bar=True)
            self._train_sums[0].zero_()
        counts["epoch_steps"] = counts["epoch_images"] = 0

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        self.mark_step_begin()
        x, y = batch
        logits = self._eval_logits(x)
        self.log(f"{stage}/loss", self.loss(logits, y), on_epoch=True, batch_size=y.shape[0], sync_dist=True)
        acc = getattr(self, f"{stage}_acc")
        acc.update(logits, y)
        self.log(f"{stage}/acc", acc, on_epoch=True, prog_bar=stage == "val")
        if self.top5:
            acc5 = getattr(self, f"{stage}_acc5")
            acc5.update(logits, y)
            self.log(f"{stage}/acc_top5", acc5, on_epoch=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer_factory(parameter_groups(self.net, self.hparams.weight_decay_bn_bias))
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        # From the limits and the data, not trainer.estimated_stepping_batches: reading that here drops the
        # loader state of a mid-epoch resume (https://github.com/Lightning-AI/pytorch-lightning/issues/20550).
        steps_per_epoch = self.trainer.datamodule.steps_per_epoch
        total_steps = planned_steps(self.trainer.max_steps, self.trainer.max_epochs, steps_per_epoch)
        scheduler = self.scheduler_factory(
            optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # Lightning does not checkpoint RNG states; without them a resumed run's dropout masks and
    # CPU-side augmentations would differ from an uninterrupted run.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = rng_states()
        # A run resumed mid-epoch reports the same epoch means as an uninterrupted one.
        if self._train_sums is not None:
            checkpoint["train_stats"] = {"sums": self._train_sums.cpu(), "counts": dict(self._train_counts)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_rng_states = checkpoint.get("rng_states")
        stats = checkpoint.get("train_stats")
        if stats is not None:
            self._train_sums = stats["sums"]
            self._train_counts = dict(stats["counts"])
