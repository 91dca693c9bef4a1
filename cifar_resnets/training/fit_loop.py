"""Lightning's fit loop, with resuming from an epoch-end checkpoint counted right when a step limit is set.

An epoch-end checkpoint (``ModelCheckpoint`` saves in ``on_train_epoch_end``) is written after the fit
loop has counted the epoch as *processed* and before it counts it as *completed*. On resume, Lightning
decides from those two counters whether the run stopped inside the epoch-end hooks. With only
``max_epochs`` it sees a finished epoch and starts the next one. With ``max_steps`` set, its
``restarting`` setter forces ``restarting=True`` whatever the counters say (for runs cut short by the
step limit in the middle of an epoch), so the checkpoint reads as "stopped inside the epoch-end hooks":
the loop runs the epoch end a second time and counts the epoch as processed again. From then on the
processed count is one ahead of the epochs trained, and ``max_epochs`` stops the run one epoch early
(a run of 8 epochs of 8 steps limited to 60 steps, resumed after epoch 3, stopped at 56 steps).
Lightning's own restart tests cover epoch limits only; the closest upstream report is
https://github.com/Lightning-AI/pytorch-lightning/issues/19617 (resuming at a step limit that falls on
an epoch end).

``ExactResumeFitLoop`` takes Lightning's epoch-limit path for a checkpoint saved after the last batch of
its epoch whatever the limits: the epoch is completed and the next one starts from its first batch. A
checkpoint from an epoch that the step limit cut short keeps Lightning's handling.
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
