"""The run's hyper-parameters and final metrics in every logger: TensorBoard's HPARAMS tab, tied to the
metrics the run logged; for the others (CSV, MLflow) the same few settings as parameters and the final
numbers of ``metrics.json`` the module did not log itself as metrics of the last step."""

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


def provenance_hparams(metrics: dict[str, Any]) -> dict[str, str | float | int | bool]:
    """What produced the run (``metrics.json``'s ``provenance``: versions, device, commit, command,
    times) as ``provenance/<key>`` entries; an absent value (no CUDA, no checkout) reads ``none``."""
    record = metrics.get("provenance") or {}
    return {
        f"provenance/{k}": v if isinstance(v, (str, int, float, bool)) else str(v).lower()
        for k, v in record.items()
    }


def final_numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of ``metrics.json`` (accuracies, losses, sizes, times), as loggers take them."""
    return {
        k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def log_hparams(loggers: list[Any], config: dict[str, Any], metrics: dict[str, Any], step: int = 0) -> None:
    """Write the run's hyper-parameters for TensorBoard's HPARAMS tab, tied to its final metrics.

    Lightning's own ``log_hyperparams`` writes the tab only together with new metric values; here
    the session summary names the metric tags the run already logged (``test/acc``, ``val/acc``...),
    so the tab shows their final values without a second copy of them. Other loggers get the settings
    beside the full config Lightning logged at fit start (``config/...``), under ``hp/`` so no key
    meets one of Lightning's with another value (MLflow refuses to change a parameter), and the rest of
    the final numbers at ``step``, the run's last (a sweep job included: each job's ``train`` calls this).
    """
    names = {k: 0.0 for k in ("test/acc", "val/acc", "test/loss", "val/loss") if k in metrics}
    settings = {**run_hparams(config), **provenance_hparams(metrics)}
    for logger in loggers:
        if not isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams({f"hp/{k}": v for k, v in settings.items()})
            # val/ and test/ numbers are already there: the module logged them (again here, they would
            # add a point to each curve); the rest of metrics.json (sizes, times) is not.
            summary = {k: v for k, v in final_numbers(metrics).items() if not k.startswith(("val/", "test/"))}
            logger.log_metrics(summary, step=step)
            logger.save()
            continue
        if not names:
            continue
        writer = logger.experiment
        file_writer = writer._get_file_writer()  # reopens the event file Lightning closed after test
        for summary in hparams(settings, names):
            file_writer.add_summary(summary)
        writer.flush()
        writer.close()
