"""The LightningModule that trains any classifier net of the suite.

It owns the loss, the metrics and the optimizer/scheduler wiring; the net, the data and the
training loop's mechanics (precision, clipping, devices) come from elsewhere. The hot path
does no host synchronisation: metrics stay on the device and are reduced once per epoch.
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

OptimizerFactory = Callable[[Iterable[Any]], torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


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
        channels_last: store the net's weights in NHWC (faster convolutions on GPUs).
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
        # validate_args=False: the input checks call torch.unique, a host sync on every step.
        self.train_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
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

    def _step_begin(self) -> None:
        if self.cudagraph_steps:
            # Outputs of the previous step's graphs may be overwritten from here on (PITFALLS A8).
            torch.compiler.cudagraph_mark_step_begin()

    def _eval_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of an eval batch; under CUDA graphs a short last batch is zero-padded to the usual
        size and the padded rows dropped (eval-mode BatchNorm treats rows independently), so the split
        needs one graph, not one per batch shape (PITFALLS A5/A6)."""
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

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # Class indices or soft targets (mixup/cutmix): F.cross_entropy takes both.
        return F.cross_entropy(logits.float(), target, label_smoothing=self.hparams.label_smoothing)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self._step_begin()
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        hard = y.argmax(dim=1) if y.ndim == 2 else y
        self.train_acc.update(logits.detach(), hard)
        # Clone: a compiled net may reuse its output buffers on the next step (PITFALLS A8).
        self.log("train/loss", loss.detach().clone(), on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        self._step_begin()
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
        # From the config, not trainer.estimated_stepping_batches (PITFALLS D3).
        steps_per_epoch = self.trainer.datamodule.steps_per_epoch
        max_steps, max_epochs = self.trainer.max_steps, self.trainer.max_epochs
        total_steps = max_steps if max_steps and max_steps > 0 else steps_per_epoch * max_epochs
        scheduler = self.scheduler_factory(
            optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # Lightning does not checkpoint RNG states (PITFALLS D1); without them a resumed run's
    # dropout masks and CPU-side augmentations would differ from an uninterrupted run.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_rng_states = checkpoint.get("rng_states")

    def on_train_start(self) -> None:
        # Restore here, after the model and loaders are built: building them draws random numbers.
        states = getattr(self, "_pending_rng_states", None)
        if states is not None:
            set_rng_states(states)
            self._pending_rng_states = None
