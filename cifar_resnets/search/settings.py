"""What ``cifar-search`` reads from the composed config, refused in one line before any study or trial.

Nothing here imports torch or Optuna, so a search that cannot work says so within a second. What makes
a search impossible while a single run would be fine: no ``search`` node, no validation split to score
trials on (the test set never scores a trial), a metric that is not a validation metric, and a budget
given in steps (``trainer.max_steps`` may end mid-epoch, after the last validation, so the score would
not be of the final weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cifar_resnets.config.resources import conf_dir
from cifar_resnets.errors import ConfigError

STUDY_FILE = "study.db"


@dataclass(frozen=True)
class SearchSettings:
    study_name: str
    folder: Path  # absolute: trial folders and best.yaml are recorded by this path
    storage: str  # an SQLAlchemy URL
    n_trials: int
    direction: str
    metric: str
    heartbeat_interval: int
    grace_period: int
    params: dict[str, Any]

    @property
    def trials_dir(self) -> Path:
        return self.folder / "trials"


def search_options() -> list[str]:
    return sorted(p.stem for p in (conf_dir() / "hparams_search").glob("*.yaml"))


def search_settings(cfg: DictConfig) -> SearchSettings:
    """The search's settings, or a ``ConfigError`` that says what to change."""
    if cfg.get("search") is None:
        raise ConfigError(
            "no search space: choose one with hparams_search=NAME "
            f"({', '.join(search_options())}) or add a search: node of your own (docs/search.md)"
        )
    val_size = OmegaConf.select(cfg, "data.val_size", default=0)
    if not val_size:
        raise ConfigError(
            f"data.val_size={val_size} holds out no validation images, and trials are never scored on the "
            "test set: set data.val_size > 0 (He et al. held out 5000)"
        )
    if OmegaConf.select(cfg, "trainer.limit_val_batches") == 0:
        raise ConfigError("trainer.limit_val_batches=0 runs no validation to score trials on: set it to null")
    search = cfg.search
    if not str(search.metric).startswith("val/"):
        raise ConfigError(
            f"search.metric={search.metric} must be a validation metric (val/acc, val/loss): trials are "
            "scored on the validation split, never on the test set"
        )
    max_steps = OmegaConf.select(cfg, "trainer.max_steps", default=-1)
    if max_steps != -1:
        raise ConfigError(
            f"trainer.max_steps={max_steps} can end a trial mid-epoch, after its last validation: give the "
            "budget in epochs (trainer.max_steps=-1 trainer.max_epochs=N), so trials score final weights"
        )
    max_epochs = OmegaConf.select(cfg, "trainer.max_epochs", default=1)
    every = OmegaConf.select(cfg, "trainer.check_val_every_n_epoch", default=1) or 1
    if max_epochs % every:
        raise ConfigError(
            f"trainer.max_epochs={max_epochs} is not a multiple of trainer.check_val_every_n_epoch={every}: "
            "the last epochs would go unvalidated and the score would not be of the final weights"
        )
    folder = Path(str(search.dir)).expanduser().absolute()
    storage = search.storage if search.storage is not None else f"sqlite:///{folder / STUDY_FILE}"
    params = OmegaConf.to_container(search.params, resolve=True) if search.get("params") else {}
    return SearchSettings(
        study_name=str(search.study_name),
        folder=folder,
        storage=str(storage),
        n_trials=int(search.n_trials),
        direction=str(search.direction),
        metric=str(search.metric),
        heartbeat_interval=int(search.heartbeat_interval),
        grace_period=int(search.grace_period),
        params=params,
    )


def check_params_are_values(cfg: DictConfig, keys: list[str], groups: dict[str, Any]) -> None:
    """Every searched key is a value of the config (not a group, not a node, not a typo)."""
    missing = object()
    for key in keys:
        if key in groups:
            raise ConfigError(
                f"search.params.{key} names a config group: a trial changes values, not groups; search its "
                f"keys ({key}.lr, ...) or run one search per {key} option ({key}=...)"
            )
        value = OmegaConf.select(cfg, key, default=missing)
        if value is missing:
            raise ConfigError(f"search.params.{key}: the config has no key {key}; check its spelling")
        if OmegaConf.is_config(value):
            raise ConfigError(
                f"search.params.{key} names a whole node of the config; search one of its values"
            )
