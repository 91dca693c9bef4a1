"""``cifar-train``: train one model (or, with ``-m``, sweep many) from the Hydra config in ``conf/``.

Examples::

    cifar-train                                   # ResNet-20 on CIFAR-10, He et al.'s recipe
    cifar-train model=resnet56 optim=adam trainer.max_epochs=30
    cifar-train -m model=resnet20,resnet56 optim=sgd,adam
    cifar-train ckpt_path=auto hydra.run.dir=outputs/runs/...   # continue a stopped run

This module imports only Hydra at load time: the config checks (a Hydra callback) then refuse a
bad config within a second, before torch and Lightning are loaded for the run itself
(``cifar_resnets.training.train``).
"""

from __future__ import annotations

import hashlib
import logging
import os

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from cifar_resnets.cli.common import user_errors
from cifar_resnets.config.resources import CONF_SEARCH_PATH


def short_name(text: str, limit: int = 120) -> str:
    """``text`` if short enough for a folder name, else its start plus a hash of the whole (still unique)."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 9]}~{hashlib.sha1(text.encode()).hexdigest()[:8]}"


# Used by conf/hydra/default.yaml to name sweep job folders after their overrides.
OmegaConf.register_new_resolver("cifar_short_name", short_name, replace=True)


def _route_lightning_logs() -> None:
    # Lightning installs its own handler at import time, before Hydra configures logging, so its
    # messages would miss the run's log file (PITFALLS C6).
    lightning_log = logging.getLogger("lightning.pytorch")
    for handler in list(lightning_log.handlers):
        lightning_log.removeHandler(handler)
    lightning_log.propagate = True


@hydra.main(version_base="1.3", config_path=CONF_SEARCH_PATH, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns test accuracy so sweepers can optimise it."""
    from cifar_resnets.training.train import train

    _route_lightning_logs()
    # In a sweep, Hydra records a failure and goes on with the other jobs.
    reraise = os.environ.get("HYDRA_FULL_ERROR") == "1" or HydraConfig.get().mode == RunMode.MULTIRUN
    if reraise:
        return train(cfg).get("test/acc")
    with user_errors("cifar-train"):
        return train(cfg).get("test/acc")


if __name__ == "__main__":
    main()
