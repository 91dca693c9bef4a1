"""``cifar-search``: an Optuna hyper-parameter search whose trials are cifar-train runs.

Examples::

    cifar-search hparams_search=resnet20_cifar10
    cifar-search hparams_search=resnet20_cifar10 search.n_trials=50 trainer.max_epochs=60
    cifar-search hparams_search=resnet20_cifar10 search.storage=postgresql://host/db   # workers on many hosts

It composes the same config as ``cifar-train`` (``conf/train.yaml``) plus a search space
(``conf/hparams_search/``), and takes the same overrides. Run the same command again to resume a
stopped search, or in several shells to share it. What it writes: ``cifar_resnets.search.report``;
how trials run: ``cifar_resnets.search.study``; details: docs/search.md.

Like ``cifar-train``, an impossible config ends in one line, ``cifar-search: error: ...``, exit status 2,
before any study or trial; this module imports only Hydra at load time, and Optuna, torch and Lightning
only once the search starts.
"""

from __future__ import annotations

import contextlib
import os
import sys

import hydra
from omegaconf import DictConfig

from cifar_resnets.cli.common import route_lightning_logs, user_errors
from cifar_resnets.config.compose import hydra_errors_in_one_line
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


def _help_overrides(argv: list[str]) -> list[str]:
    if "--help" not in argv and "-h" not in argv:
        return []
    quoted = [text.replace("\\", "\\\\").replace("'", "\\'") for text in (HELP_HEADER, HELP_FOOTER)]
    return [
        f"hydra.help.app_name={PROG}",
        f"hydra.help.header='{quoted[0]}'",
        f"hydra.help.footer='{quoted[1]}'",
    ]


# True while ``main`` (not the user) has set HYDRA_FULL_ERROR=1: errors inside the search are then
# printed in one line here, before Hydra would add its "Error executing job" line.
_one_line_errors = False


@hydra.main(version_base="1.3", config_path=CONF_SEARCH_PATH, config_name="train")
def hydra_app(cfg: DictConfig) -> None:
    """The search, once Hydra has composed the config and the run checks have passed."""
    with user_errors(PROG) if _one_line_errors else contextlib.nullcontext():
        from cifar_resnets.search.settings import search_settings

        settings = search_settings(cfg)  # the search's own refusals, before Optuna, torch or any study
        from cifar_resnets.search.study import run_search

        route_lightning_logs()
        run_search(cfg, settings)


def main() -> None:
    """``cifar-search``: Hydra's command line, every user error in one line (exit 2).

    Hydra reports its errors over several lines (exit 1) unless HYDRA_FULL_ERROR=1 makes it raise them;
    this sets it for the whole search (one process, no Hydra sweep whose failures Hydra would report), so
    the errors reach ``user_errors``. A HYDRA_FULL_ERROR=1 of the user's own shows every traceback.
    """
    from cifar_resnets.config.checks import CheckConfigCallback

    global _one_line_errors
    # The config checks run as a Hydra callback and name the command; put back after, for a process
    # that runs cifar-train next (the tests).
    prog, CheckConfigCallback.prog = CheckConfigCallback.prog, PROG
    sys.argv += _help_overrides(sys.argv[1:])
    try:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            hydra_app()
            return
        os.environ["HYDRA_FULL_ERROR"] = "1"
        _one_line_errors = True
        try:
            with user_errors(PROG), hydra_errors_in_one_line():
                hydra_app()
        finally:
            os.environ.pop("HYDRA_FULL_ERROR", None)
            _one_line_errors = False
    finally:
        CheckConfigCallback.prog = prog


if __name__ == "__main__":
    main()
