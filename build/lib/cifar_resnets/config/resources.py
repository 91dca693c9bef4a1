"""Where the suite's own configs are: the packages ``cifar_resnets.conf`` and ``cifar_resnets.experiments``.

The repository keeps them at its top level (``conf/``, ``experiments/``); pyproject's ``package-dir``
installs them as these two packages, so a wheel carries them and an editable install reads the
checkout's files. They are found through the import system (``importlib.resources``, Hydra's
``pkg://``), never relative to this file, so every command runs from any folder.

Configs of one's own are added on top: ``cifar-train --config-dir DIR`` (or
``hydra.searchpath=[file://DIR]``) and a table file passed by path to ``cifar-reproduce``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

CONF_PACKAGE = "cifar_resnets.conf"
EXPERIMENTS_PACKAGE = "cifar_resnets.experiments"
# Hydra's search-path form of the config package (hydra.main and initialize_config_module read it).
CONF_SEARCH_PATH = f"pkg://{CONF_PACKAGE}"


def _folder(package: str) -> Path:
    # Both packages are plain folders of YAML files (installed or editable), never zipped.
    return Path(str(files(package)))


def conf_dir() -> Path:
    """The folder holding ``train.yaml`` and the config groups."""
    return _folder(CONF_PACKAGE)


def experiments_dir() -> Path:
    """The folder holding one YAML file per reproducible table."""
    return _folder(EXPERIMENTS_PACKAGE)
