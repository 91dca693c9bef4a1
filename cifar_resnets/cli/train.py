"""``cifar-train``: train one model (or, with ``-m``, sweep many) from the Hydra config in ``conf/``.

An impossible config ends in one line, ``cifar-train: error: ...``, exit status 2, before any data is
read or folder created (Hydra's errors here, every value through ``cifar_resnets.config.checks``). This
module imports only Hydra at load time so that answer comes within a second, before torch loads.
"""

from __future__ import annotations

import hashlib

import hydra
from omegaconf import DictConfig, OmegaConf

from cifar_resnets.cli.common import hydra_command, hydra_job
from cifar_resnets.config.resources import CONF_SEARCH_PATH

PROG = "cifar-train"


def short_name(text: str, limit: int = 120) -> str:
    """``text`` if short enough for a folder name, else its start plus a hash of the whole (still unique)."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 9]}~{hashlib.sha1(text.encode()).hexdigest()[:8]}"


# Used by conf/hydra/default.yaml to name sweep job folders after their overrides.
OmegaConf.register_new_resolver("cifar_short_name", short_name, replace=True)


@hydra.main(version_base="1.3", config_path=CONF_SEARCH_PATH, config_name="train")
def hydra_app(cfg: DictConfig) -> float | None:
    """The run itself, once Hydra has composed and checked the config; returns test accuracy so
    sweepers can optimise it."""
    with hydra_job(PROG):
        from cifar_resnets.training.train import train

        return train(cfg).get("test/acc")


def main() -> None:
    """``cifar-train``: Hydra's command line, with its errors about the overrides in one line (exit 2)."""
    with hydra_command(PROG):
        hydra_app()


if __name__ == "__main__":
    main()
