"""Learning-rate schedules, all stepped once per optimizer step.

Step counts come from the config (``planned_steps``), never ``trainer.estimated_stepping_batches``:
reading it in ``configure_optimizers`` drops the loader state a mid-epoch resume needs
(https://github.com/Lightning-AI/pytorch-lightning/issues/20550). The schedules themselves are torch's.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    SequentialLR,
)

from cifar_resnets.config.milestones import WARMUP_MODES, milestone_steps
from cifar_resnets.errors import ConfigError


def planned_steps(max_steps: int | None, max_epochs: int | None, steps_per_epoch: int | None) -> int | None:
    """The optimizer steps a run takes: Lightning stops at whichever of ``max_steps`` and ``max_epochs``
    comes first (-1 or None: no limit). None when neither limits the run."""
    limits = []
    if max_steps is not None and max_steps > 0:
        limits.append(int(max_steps))
    if steps_per_epoch and max_epochs is not None and max_epochs > 0:
        limits.append(int(steps_per_epoch) * int(max_epochs))
    return min(limits) if limits else None


def _with_warmup(
    optimizer: Optimizer, main: LRScheduler, warmup_steps: int, warmup_mode: str = "linear"
) -> LRScheduler:
    """``main`` after ``warmup_steps``: a linear ramp from lr/warmup_steps, or (``constant``) lr/10
    throughout, as He et al. warmed ResNet-110 up at 0.01. ``main`` starts counting after the warm-up."""
    if warmup_mode not in WARMUP_MODES:
        raise ConfigError(f"schedule.warmup_mode must be one of {WARMUP_MODES}, got {warmup_mode!r}")
    if warmup_steps <= 0:
        return main
    if warmup_mode == "constant":
        warmup: LRScheduler = ConstantLR(optimizer, factor=0.1, total_iters=warmup_steps)
    else:
        warmup = LinearLR(
            optimizer, start_factor=1.0 / warmup_steps, end_factor=1.0, total_iters=warmup_steps
        )
    return SequentialLR(optimizer, [warmup, main], milestones=[warmup_steps])


def multistep(
    optimizer: Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: int,
    milestones: Sequence[float],
    gamma: float = 0.1,
    unit: str = "fraction",
    warmup_steps: int = 0,
    warmup_mode: str = "linear",
) -> LRScheduler:
    """Multiply the lr by ``gamma`` at each milestone (He et al. 2016: /10 at 32k and 48k of 64k).

    ``unit`` says what the milestones count: ``step``, ``epoch``, or ``fraction`` of the run
    (so one config serves any run length: He et al.'s 32k/48k of 64k is [0.5, 0.75]).
    """
    steps = milestone_steps(milestones, unit, total_steps=total_steps, steps_per_epoch=steps_per_epoch)
    # The decay schedule counts from the end of the warm-up: shift so milestones stay global steps.
    main = MultiStepLR(optimizer, milestones=[max(s - max(warmup_steps, 0), 1) for s in steps], gamma=gamma)
    return _with_warmup(optimizer, main, warmup_steps, warmup_mode)


def cosine(
    optimizer: Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: int,
    eta_min: float = 0.0,
    warmup_steps: int = 0,
) -> LRScheduler:
    """Cosine annealing from the optimizer's lr to ``eta_min`` over the whole run."""
    if warmup_steps >= total_steps:
        raise ConfigError(f"schedule.warmup_steps={warmup_steps} must be below the run's {total_steps} steps")
    main = CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps, eta_min=eta_min)
    return _with_warmup(optimizer, main, warmup_steps)


def onecycle(
    optimizer: Optimizer,
    *,
    total_steps: int,
    steps_per_epoch: int,
    max_lr: float | None = None,
    pct_start: float = 0.15,
    anneal_strategy: str = "linear",
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    three_phase: bool = False,
    cycle_momentum: bool = True,
) -> LRScheduler:
    """Smith's one-cycle policy; ``max_lr`` defaults to the optimizer's configured lr.

    ``cycle_momentum`` (torch's default) cycles SGD momentum / Adam beta1 between 0.85 and 0.95
    against the lr, as the reference one-cycle recipe does.
    """
    peak = max_lr if max_lr is not None else [g["lr"] for g in optimizer.param_groups]
    return OneCycleLR(
        optimizer,
        max_lr=peak,
        total_steps=total_steps,
        pct_start=pct_start,
        anneal_strategy=anneal_strategy,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        three_phase=three_phase,
        cycle_momentum=cycle_momentum,
    )


def constant(
    optimizer: Optimizer, *, total_steps: int, steps_per_epoch: int, warmup_steps: int = 0
) -> LRScheduler:
    """The optimizer's lr throughout (the Keras optimizer-and-depth grid), with optional warm-up."""
    return _with_warmup(optimizer, LambdaLR(optimizer, lambda _: 1.0), warmup_steps)
