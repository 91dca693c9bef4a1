"""Gradual unfreezing (Lightning's ``BackboneFinetuning``) that works with the suite's per-step LR schedules.

``BackboneFinetuning`` adds a parameter group mid-run, but torch's schedulers keep per-group state and
fail at the next step ("zip() argument 2 is shorter than argument 1"). Here the new group is registered
with every scheduler, its lr a ratio of the head's scheduled lr that Lightning's unfreezing sets.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import BackboneFinetuning
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["ScheduledBackboneFinetuning"]


def _sub_schedulers(scheduler: LRScheduler) -> list[LRScheduler]:
    """The scheduler and, for SequentialLR/ChainedScheduler (warm-up), the ones inside it."""
    inner = getattr(scheduler, "_schedulers", [])
    return [scheduler, *[s for child in inner for s in _sub_schedulers(child)]]


def _sync_backbone_group(scheduler: LRScheduler, optimizer: Optimizer, ratio: float) -> None:
    """Give the last param group (the backbone) ``ratio`` x the first group's per-group schedule state."""
    head, backbone = optimizer.param_groups[0], optimizer.param_groups[-1]
    n_groups = len(optimizer.param_groups)
    for key, value in head.items():  # OneCycleLR keeps initial_lr/max_lr/min_lr (and momenta) per group
        if key != "params" and (key not in backbone or key in ("initial_lr", "max_lr", "min_lr")):
            backbone[key] = value * ratio if key in ("initial_lr", "max_lr", "min_lr") else value
    backbone["lr"] = head["lr"] * ratio
    for sched in _sub_schedulers(scheduler):
        if hasattr(sched, "base_lrs"):
            if len(sched.base_lrs) < n_groups:
                sched.base_lrs.append(sched.base_lrs[0] * ratio)
            else:
                sched.base_lrs[-1] = sched.base_lrs[0] * ratio
        lambdas = getattr(sched, "lr_lambdas", None)
        if lambdas is not None and len(lambdas) < n_groups:
            lambdas.append(lambdas[0])
        if hasattr(sched, "_last_lr"):
            sched._last_lr = [group["lr"] for group in optimizer.param_groups]


class ScheduledBackboneFinetuning(BackboneFinetuning):
    """``BackboneFinetuning`` whose backbone group follows the run's LR schedule (see module docstring).

    Same arguments as Lightning's class; ``backbone_initial_ratio_lr`` is the backbone's lr relative to
    the head's at unfreezing.
    """

    def finetune_function(self, pl_module: L.LightningModule, epoch: int, optimizer: Optimizer) -> None:
        super().finetune_function(pl_module, epoch, optimizer)
        if epoch < self.unfreeze_backbone_at_epoch or len(optimizer.param_groups) < 2:
            return
        head_lr = optimizer.param_groups[0]["lr"]
        ratio = optimizer.param_groups[-1]["lr"] / head_lr if head_lr else self.backbone_initial_ratio_lr
        for config in pl_module.trainer.lr_scheduler_configs:
            if config.scheduler.optimizer is optimizer:
                _sync_backbone_group(config.scheduler, optimizer, ratio)
