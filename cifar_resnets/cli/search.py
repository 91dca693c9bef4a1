"""``cifar-search``: an Optuna hyper-parameter search whose trials are cifar-train runs.

It composes the same config as ``cifar-train`` plus a space from ``conf/hparams_search/`` (docs/search.md).
Like cifar-train it imports only Hydra at load time, so an impossible config ends in one line within a
second; Optuna, torch and Lightning load once the search starts.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from cifar_resnets.cli.common import hydra_command, hydra_job
from cifar_resnets.config.resources import CONF_SEARCH_PATH

PROG = "cifar-search"
# Its --help: Hydra's (the groups and the composed config) under a header of its own, since the config,
# help text included, is cifar-train's (conf/hydra/default.yaml).
HELP_HEADER = """cifar-search: an Optuna search whose trials are cifar-train runs; it takes cifar-train's
groups and overrides below, plus a search space (hparams_search=NAME):
  cifar-search hparams_search=resnet20_cifar10
  cifar-search hparams_search=resnet20_cifar10 search.n_trials=50 trainer.max_epochs=60
Run the same command again to resume a search, or in several shells to share it (docs/search.md).
"""
HELP_FOOTER = """A config that cannot work is refused in one line (exit status 2) before any study or trial.
Powered by Hydra (https://hydra.cc) and Optuna (https://optuna.org).
"""


def _command_overrides(argv: list[str]) -> list[str]:
    """The command's name in the config (the config checks' refusals name it), and its --help."""
    if "--help" not in argv and "-h" not in argv:
        return [f"hydra.help.app_name={PROG}"]
    quoted = [text.replace("\\", "\\\\").replace("'", "\\'") for text in (HELP_HEADER, HELP_FOOTER)]
    return [
        f"hydra.help.app_name={PROG}",
        f"hydra.help.header='{quoted[0]}'",
        f"hydra.help.footer='{quoted[1]}'",
    ]


@hydra.main(version_base="1.3", config_path=CONF_SEARCH_PATH, config_name="train")
def hydra_app(cfg: DictConfig) -> None:
    """The search, once Hydra has composed the config and the run checks have passed."""
    with hydra_job(PROG):
        from cifar_resnets.search.settings import search_settings

        settings = search_settings(cfg)  # the search's own refusals, before Optuna, torch or any study
        from cifar_resnets.search.study import run_search

        run_search(cfg, settings)


def main() -> None:
    """``cifar-search``: Hydra's command line, every user error in one line (exit 2)."""
    sys.argv += _command_overrides(sys.argv[1:])
    with hydra_command(PROG):
        hydra_app()


if __name__ == "__main__":
    main()
