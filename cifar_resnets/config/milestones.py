"""Learning-rate milestones as optimizer steps, and the schedule settings' choices, without torch.

Kept apart from ``training/schedules.py`` so the config checks can refuse impossible milestones and
unknown choices before the training stack (torch, Lightning) is even imported.
"""

from __future__ import annotations

from collections.abc import Sequence

from cifar_resnets.errors import ConfigError

# What ``schedule.unit`` may count the milestones in, and how a warm-up ramps (``schedule.warmup_mode``).
UNITS = ("fraction", "epoch", "step")
WARMUP_MODES = ("linear", "constant")


def milestone_steps(
    milestones: Sequence[float], unit: str, *, total_steps: int, steps_per_epoch: int
) -> list[int]:
    """Milestones as optimizer-step indices; refuses ones that never happen or are out of order."""
    per_unit = {"fraction": total_steps, "epoch": steps_per_epoch, "step": 1}
    if unit not in UNITS:
        raise ConfigError(f"schedule.unit must be one of {', '.join(UNITS)}, got {unit!r}")
    if unit == "fraction" and not all(0 < m < 1 for m in milestones):
        raise ConfigError(
            f"schedule.milestones {list(milestones)} are fractions of the run: use values in (0, 1)"
        )
    steps = [round(m * per_unit[unit]) for m in milestones]
    if list(milestones) != sorted(milestones) or any(m <= 0 for m in milestones):
        raise ConfigError(f"schedule.milestones must be positive and increasing, got {list(milestones)}")
    late = [m for m, s in zip(milestones, steps) if s >= total_steps]
    if late and unit != "fraction":  # a fraction is inside the run by definition, however short it is
        raise ConfigError(
            f"schedule.milestones {late} ({unit}) fall at or after the end of the run ({total_steps} steps = "
            f"{total_steps / steps_per_epoch:g} epochs); lower them or train longer"
        )
    return steps
