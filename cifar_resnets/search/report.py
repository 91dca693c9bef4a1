"""What a search leaves behind: the best trial as a Hydra experiment, a summary, and Optuna's plots.

``experiment/best.yaml`` is an experiment file, so ``cifar-train --config-dir <search folder>
experiment=best`` trains the best trial. Plots use matplotlib's Agg backend: no display needed.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from cifar_resnets.search.dependency import import_optuna
from cifar_resnets.search.settings import SearchSettings
from cifar_resnets.training.run_folder import write_json

log = logging.getLogger(__name__)

# Groups a best.yaml does not override: Hydra's own, and the experiment and search groups themselves
# (best.yaml is an experiment; the search space has no say in a plain training run).
NOT_OVERRIDDEN = ("hydra", "experiment", "hparams_search")


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def describe_trial(trial: Any, metric: str) -> str:
    """One line: number, state, score (or the last one reported and the error), values, folder."""
    params = ", ".join(f"{k}={_show(v)}" for k, v in trial.params.items())
    state = trial.state.name
    if state == "PRUNED" and trial.intermediate_values:  # its value: the last one it reported
        step = max(trial.intermediate_values)
        outcome = f"{metric}={trial.intermediate_values[step]:.4f} at epoch {step}"
    elif trial.value is not None:
        outcome = f"{metric}={trial.value:.4f}"
    else:
        outcome = trial.user_attrs.get("error", "")
    return f"trial {trial.number} {state}: {outcome} [{params}] {trial.user_attrs.get('folder', '')}".rstrip()


def group_overrides(choices: dict[str, Any]) -> list[dict[str, str]]:
    """``override /group: option`` for each group chosen in the search (Hydra's runtime choices)."""
    return [
        {f"override /{group}": option}
        for group, option in choices.items()
        if option is not None and group.split("/")[0] not in NOT_OVERRIDDEN
    ]


def best_experiment(best: Any, settings: SearchSettings, choices: dict[str, Any]) -> str:
    """The text of ``experiment/best.yaml``."""
    values = OmegaConf.create({})
    for key, value in best.params.items():
        OmegaConf.update(values, key, value, force_add=True)
    body = OmegaConf.to_yaml(OmegaConf.create({"defaults": group_overrides(choices)}))
    header = [
        "# @package _global_",
        f"# The best trial ({best.number}, {settings.metric}={best.value:.4f}) of the Optuna study "
        f"{settings.study_name} ({settings.storage}).",
        f"# Train it: cifar-train --config-dir {settings.folder} experiment=best",
        "# It holds the config groups of the search and the values it chose; the search's other settings "
        "(budget, validation split) are not repeated.",
    ]
    if choices.get("experiment"):
        header.append(
            f"# The search started from experiment={choices['experiment']}: add its values to this file, or "
            "pass them on the command line."
        )
    return "\n".join(header) + "\n" + body + OmegaConf.to_yaml(values)


def _plot(name: str, draw: Any, study: Any, folder: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    ax = draw(study)
    path = folder / f"{name}.png"
    ax.figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(ax.figure)
    return path


def write_report(study: Any, settings: SearchSettings, choices: dict[str, Any]) -> dict[str, Any]:
    """Write best.yaml, best.json, trials.csv and the plots; print where they are; returns the paths."""
    optuna = import_optuna()
    from optuna.visualization import matplotlib as optuna_plots

    folder = settings.folder
    folder.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in optuna.trial.TrialState}
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    written: dict[str, Any] = {"folder": folder}

    with open(folder / "trials.csv", "w", newline="") as out:
        keys = sorted({k for t in trials for k in t.params})
        writer = csv.writer(out)
        writer.writerow(["number", "state", settings.metric, *keys, "folder", "error"])
        for t in trials:
            value = "" if t.value is None else t.value
            row = [t.params.get(k, "") for k in keys]
            writer.writerow(
                [
                    t.number,
                    t.state.name,
                    value,
                    *row,
                    t.user_attrs.get("folder", ""),
                    t.user_attrs.get("error", ""),
                ]
            )
    written["trials"] = folder / "trials.csv"

    summary: dict[str, Any] = {
        "study_name": settings.study_name,
        "storage": settings.storage,
        "metric": settings.metric,
        "direction": settings.direction,
        "n_trials": settings.n_trials,
        "trials": counts,
    }
    if completed:
        best = study.best_trial
        summary["best"] = {
            "number": best.number,
            "value": best.value,
            "params": best.params,
            "folder": best.user_attrs.get("folder"),
        }
        experiment = folder / "experiment" / "best.yaml"
        experiment.parent.mkdir(exist_ok=True)
        experiment.write_text(best_experiment(best, settings, choices))
        written["best_yaml"] = experiment
    else:
        log.info("no trial completed: no best.yaml")
    write_json(folder / "best.json", summary)
    written["best_json"] = folder / "best.json"

    finite = [t for t in completed if t.value is not None and math.isfinite(t.value)]
    if finite:
        written["history_png"] = _plot(
            "optimization_history", optuna_plots.plot_optimization_history, study, folder
        )
    if len(finite) >= 2:
        written["importances_png"] = _plot(
            "param_importances", optuna_plots.plot_param_importances, study, folder
        )
    else:
        log.info(
            "param_importances.png skipped: importances need at least 2 completed trials, %d did", len(finite)
        )

    states = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print(f"search {settings.study_name}: {states} ({settings.storage})")
    if completed:
        print(f"best: {describe_trial(study.best_trial, settings.metric)}")
        print(f"train it: cifar-train --config-dir {folder} experiment=best")
    for name, path in written.items():
        if name != "folder":
            print(f"  {name}: {path}")
    return written
