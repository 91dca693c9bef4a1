"""Where the suite's own configs are: the packages ``cifar_resnets.conf`` and ``cifar_resnets.experiments``.

pyproject's ``package-dir`` installs the top-level ``conf/`` and ``experiments/`` as these packages, so a
wheel carries them; they are found through the import system, never relative to this file, so every
command runs from any folder.
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
