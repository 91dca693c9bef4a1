"""Lightning's fit loop, with resuming from an epoch-end checkpoint counted right when a step limit is set.

With ``max_steps`` set, Lightning treats an epoch-end checkpoint as stopped inside the epoch-end hooks,
counts the epoch twice and stops the run one epoch early (closest upstream report:
https://github.com/Lightning-AI/pytorch-lightning/issues/19617). ``ExactResumeFitLoop`` takes the
epoch-limit path for a checkpoint saved after its epoch's last batch; an epoch cut short keeps Lightning's.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loops import _Loop
from lightning.pytorch.loops.fit_loop import _FitLoop


class ExactResumeFitLoop(_FitLoop):
    """``_FitLoop`` that resumes an epoch-end checkpoint at the next epoch under any limits."""

    def _saved_after_the_last_batch(self) -> bool:
        """Restored from a checkpoint written in the epoch-end hooks of an epoch that ran all its batches."""
        total = self.epoch_progress.total
        in_epoch_end_hooks = total.ready == total.started == total.processed == total.completed + 1
        return in_epoch_end_hooks and self.epoch_loop._num_ready_batches_reached()

    def reset(self) -> None:
        # Here, not in the ``restarting`` setter: the number of batches per epoch that tells whether the
        # epoch ran to its end is known only once ``setup_data`` has run, just before this.
        if self.restarting and self._saved_after_the_last_batch():
            # The base class's setter would turn False back into True under a step limit.
            _Loop.restarting.fset(self, False)
        super().reset()


def use_exact_resume_fit_loop(trainer: L.Trainer) -> None:
    """Replace the trainer's fit loop by an ``ExactResumeFitLoop`` with the same limits and epoch loop."""
    old = trainer.fit_loop
    loop = ExactResumeFitLoop(trainer, min_epochs=old.min_epochs, max_epochs=old.max_epochs)
    loop.epoch_loop = old.epoch_loop
    trainer.fit_loop = loop
