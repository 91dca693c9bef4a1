"""Optuna, imported only when a search needs it: an optional extra, and half a second to load, so
``cifar-search --help`` and a refused config answer without it."""

from __future__ import annotations

from types import ModuleType

from cifar_resnets.errors import ConfigError


def import_optuna() -> ModuleType:
    try:
        import optuna
    except ImportError as err:
        raise ConfigError(f"cifar-search needs Optuna ({err}): pip install 'cifar_resnets[search]'") from None
    return optuna
