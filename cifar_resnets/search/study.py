"""The Optuna study of ``cifar-search``: its storage, sampler and pruner, the objective, and the loop.

One trial is one training run. The study lives in an SQL database, so the same command resumes a stopped
search or shares it between processes. A dead worker's trial is failed through Optuna's heartbeat
(``fail_stale_trials``) rather than a lock file or pid, which could only tell on one host.
"""

from __future__ import annotations

import copy
import logging
import warnings
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from cifar_resnets.errors import ConfigError
from cifar_resnets.search.dependency import import_optuna
from cifar_resnets.search.pruning import ValidationPruning
from cifar_resnets.search.report import describe_trial, write_report
from cifar_resnets.search.settings import SearchSettings, check_params_are_values
from cifar_resnets.search.space import parse_space, suggest
from cifar_resnets.training.run_folder import write_json
from cifar_resnets.training.train import train

log = logging.getLogger(__name__)


def finished_states(optuna: Any) -> tuple[Any, ...]:
    """The trials that count towards ``search.n_trials``: all that ended, however they ended."""
    states = optuna.trial.TrialState
    return (states.COMPLETE, states.PRUNED, states.FAIL)


def open_storage(settings: SearchSettings) -> Any:
    optuna = import_optuna()
    from sqlalchemy.exc import SQLAlchemyError

    engine_kwargs: dict[str, Any] = {}
    if settings.storage.startswith("sqlite"):
        settings.folder.mkdir(parents=True, exist_ok=True)
        # Parallel workers take turns at SQLite's one write lock; wait for it rather than fail.
        engine_kwargs["connect_args"] = {"timeout": 60}
    try:
        return optuna.storages.RDBStorage(
            settings.storage,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=settings.heartbeat_interval,
            grace_period=settings.grace_period,
        )
    except (SQLAlchemyError, ModuleNotFoundError) as err:  # a bad URL, a database driver not installed
        reason = str(err).strip().splitlines()[0]
        raise ConfigError(f"search.storage={settings.storage} cannot be opened: {reason}") from None


def _build(node: DictConfig, key: str, **overrides: Any) -> Any:
    spec = OmegaConf.to_container(node, resolve=True)
    spec.update(overrides)
    try:
        return instantiate(spec)
    except InstantiationException as err:
        raise ConfigError(f"{key} cannot be built: {str(err).strip().splitlines()[0]}") from None


def open_study(cfg: DictConfig, settings: SearchSettings) -> Any:
    """Create the study, or load it when the storage has it (a resumed search, another worker)."""
    optuna = import_optuna()
    storage = open_storage(settings)
    study = optuna.create_study(
        study_name=settings.study_name,
        storage=storage,
        sampler=None,
        pruner=_build(cfg.search.pruner, "search.pruner"),
        direction=settings.direction,
        load_if_exists=True,
    )
    if study.direction.name.lower() != settings.direction:
        raise ConfigError(
            f"search.direction={settings.direction}, but the study {settings.study_name} in "
            f"{settings.storage} was made to {study.direction.name.lower()}: use another search.study_name"
        )
    # The seed moves on with the trials already in the study, so a resumed search does not draw its
    # first values again (the same seed in a new process would replay them).
    seed = cfg.search.sampler.get("seed")
    overrides = {} if seed is None else {"seed": int(seed) + len(study.get_trials(deepcopy=False))}
    study.sampler = _build(cfg.search.sampler, "search.sampler", **overrides)
    return study


def trial_config(cfg: DictConfig, values: dict[str, Any], folder: str) -> DictConfig:
    """The search's config with the trial's values, and the trial's folder as its run folder."""
    trial_cfg = copy.deepcopy(cfg)
    with open_dict(trial_cfg):
        for key, value in values.items():
            OmegaConf.update(trial_cfg, key, value, merge=False)
        trial_cfg.paths.output_dir = folder
    return trial_cfg


class Objective:
    """One trial: sample, train, score on validation; pruned trials end as runs and then raise."""

    def __init__(self, cfg: DictConfig, settings: SearchSettings, space: dict[str, Any]) -> None:
        self.cfg, self.settings, self.space = cfg, settings, space

    def __call__(self, trial: Any) -> float:
        optuna = import_optuna()
        folder = self.settings.trials_dir / str(trial.number)
        folder.mkdir(parents=True, exist_ok=True)  # so that train records there why a refused trial failed
        trial.set_user_attr("folder", str(folder))
        values = {key: suggest(trial, key, distribution) for key, distribution in self.space.items()}
        pruning = ValidationPruning(trial, self.settings.metric)
        try:
            metrics = train(trial_config(self.cfg, values, str(folder)), extra_callbacks=[pruning])
        except Exception as err:
            text = str(err).strip()
            trial.set_user_attr("error", f"{type(err).__name__}: {text.splitlines()[0] if text else ''}")
            raise
        value = metrics.get(self.settings.metric)
        if value is None:
            logged = ", ".join(sorted(k for k in metrics if k.startswith("val/")))
            raise ConfigError(
                f"search.metric={self.settings.metric} is not a metric of the run: use one of {logged}"
            )
        if pruning.validated_at_step != metrics["steps"]:
            raise RuntimeError(
                f"the last validation ran at step {pruning.validated_at_step}, training ended at step "
                f"{metrics['steps']}: the score would not be of the final weights"
            )
        if pruning.pruned_at_epoch is not None:
            metrics["status"] = "pruned"
            write_json(folder / "metrics.json", metrics)
            trial.set_user_attr("status", "pruned")
            raise optuna.TrialPruned(f"stopped after epoch {pruning.pruned_at_epoch}")
        trial.set_user_attr("status", "completed")
        return float(value)


def run_search(cfg: DictConfig, settings: SearchSettings) -> dict[str, Any]:
    """Run trials until the study holds ``n_trials`` finished ones, then write the report; returns where
    it is (``report.write_report``)."""
    optuna = import_optuna()
    space = parse_space(settings.params)
    choices = dict(HydraConfig.get().runtime.choices)
    check_params_are_values(cfg, list(space), choices)
    # Optuna's warnings (a failed trial's traceback among them) go to the search's log, not a second handler.
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    study = open_study(cfg, settings)
    optuna.storages.fail_stale_trials(study)
    finished = len(study.get_trials(deepcopy=False, states=finished_states(optuna)))
    remaining = settings.n_trials - finished
    log.info(
        "study %s in %s: %d of %d trials finished, %d to run here",
        settings.study_name,
        settings.storage,
        finished,
        settings.n_trials,
        max(remaining, 0),
    )
    if remaining > 0:

        def log_trial(study: Any, trial: Any) -> None:
            log.info("%s", describe_trial(trial, settings.metric))

        study.optimize(
            Objective(cfg, settings, space),
            n_trials=remaining,
            catch=(Exception,),
            # Other workers finish trials too: stop when the study, not this process, has enough.
            callbacks=[
                optuna.study.MaxTrialsCallback(settings.n_trials, states=finished_states(optuna)),
                log_trial,
            ],
            gc_after_trial=True,
        )
    return write_report(study, settings, choices)
