"""The run's hyper-parameters in TensorBoard's HPARAMS tab, tied to the metrics the run logged."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.tensorboard.summary import hparams


def _short(target: Any) -> str:
    return str(target).rsplit(".", 1)[-1] if target else "none"


def run_hparams(config: dict[str, Any]) -> dict[str, str | float | int | bool]:
    """The few settings that tell runs apart, flattened for TensorBoard's HPARAMS tab."""
    model, data = config.get("model") or {}, config.get("data") or {}
    optim, schedule = config.get("optim") or {}, config.get("schedule") or {}
    trainer, module = config.get("trainer") or {}, config.get("module") or {}
    values = {
        "model": model.get("name"),
        "data": data.get("name"),
        "optim": _short(optim.get("_target_")),
        "lr": optim.get("lr"),
        "weight_decay": optim.get("weight_decay"),
        "batch_size": data.get("batch_size"),
        "max_epochs": trainer.get("max_epochs"),
        "max_steps": trainer.get("max_steps"),
        "schedule": _short(schedule.get("_target_")),
        "label_smoothing": module.get("label_smoothing"),
        "seed": config.get("seed"),
    }
    return {k: v for k, v in values.items() if isinstance(v, (str, int, float, bool))}


def log_hparams(loggers: list[Any], config: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Write the run's hyper-parameters for TensorBoard's HPARAMS tab, tied to its final metrics.

    Lightning's own ``log_hyperparams`` writes the tab only together with new metric values; here
    the session summary names the metric tags the run already logged (``test/acc``, ``val/acc``...),
    so the tab shows their final values without a second copy of them.
    """
    names = {k: 0.0 for k in ("test/acc", "val/acc", "test/loss", "val/loss") if k in metrics}
    for logger in loggers:
        if not isinstance(logger, TensorBoardLogger) or not names:
            continue
        writer = logger.experiment
        file_writer = writer._get_file_writer()  # reopens the event file Lightning closed after test
        for summary in hparams(run_hparams(config), names):
            file_writer.add_summary(summary)
        writer.flush()
        writer.close()
