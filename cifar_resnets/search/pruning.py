"""Report each epoch's validation score to the Optuna trial and stop a trial the pruner gives up on.

Not optuna-integration's ``PyTorchLightningPruningCallback``: it raises ``TrialPruned`` inside
Lightning's fit loop, so ``train`` would record the run folder as failed and skip what it writes at the
end of a run (``metrics.json`` of the reached state, the training history). This callback only asks the
Trainer to stop (``trainer.should_stop``), so the run ends as any run does, with its checkpoint and
metrics; the objective then marks it pruned and raises ``TrialPruned`` itself, outside Lightning.
"""

from __future__ import annotations

from typing import Any

import lightning as L


class ValidationPruning(L.Callback):
    """At every validation end: report ``metric`` with the epoch as step, stop if the trial should prune."""

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self.pruned_at_epoch: int | None = None
        self.validated_at_step: int | None = None  # global step of the last validation that was reported

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.metric)
        if value is None:  # the objective names the metrics the run does log
            return
        epoch = trainer.current_epoch
        self.trial.report(float(value), step=epoch)
        self.validated_at_step = trainer.global_step
        if self.pruned_at_epoch is None and self.trial.should_prune():
            self.pruned_at_epoch = epoch
            trainer.should_stop = True
