"""The ``train`` config outside a Hydra app, composed from ``conf/`` as ``cifar-train`` composes it.

``cifar-bench``, ``cifar-reproduce``, the tests and the GPU check scripts build runs from Python; they
compose here so that they all read the same folder under the same Hydra version rules as the CLI.
Hydra's errors about the overrides (an unknown config option or key, an override it cannot parse)
become one-line ``ConfigError``s here, for them and for ``cifar-train`` alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cifar_resnets.config.resources import CONF_PACKAGE
from cifar_resnets.config.targets import did_you_mean, target_parameters
from cifar_resnets.errors import ConfigError

# Where Hydra documents the override grammar (its parse errors point there too).
OVERRIDE_GRAMMAR = "https://hydra.cc/docs/1.2/advanced/override_grammar/basic/"


def _hydra_error_line(err: Exception) -> str:
    """Hydra's several-line message about an override or config name, in one line that names it."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(err, MissingConfigException) and err.options and err.missing_cfg_file:
        group, _, option = err.missing_cfg_file.rpartition("/")
        return f"{group}={option} is not a config of {group}; choose one of {', '.join(sorted(err.options))}"
    lines = [line.strip() for line in str(err).split("Config search path:")[0].splitlines()]
    lines = [line for line in lines if line and not line.startswith("See https://hydra.cc")]
    if isinstance(err, OverrideParseException):
        detail = [line for line in lines if not line.startswith("Error parsing override")]
        return f"cannot parse the override {err.override!r}: {' '.join(detail)} (see {OVERRIDE_GRAMMAR})"
    cause = err.__cause__
    unknown = _unknown_key_line(cause)
    if unknown is not None:
        return unknown
    if lines and cause is not None and type(cause).__module__.startswith("omegaconf"):
        # "Could not override 'optim.lrr' (Key 'lrr' is not in struct). To append to your config use ..."
        lines[0] = f"{lines[0].rstrip('.')} ({str(cause).strip().splitlines()[0]})."
    return " ".join(lines)


def _unknown_key_line(cause: BaseException | None) -> str | None:
    """An override of a key the config does not have (``optim.lrr=0.5``): the nearest key it has.

    Hydra's own advice, ``+optim.lrr=0.5``, would add a key that nothing reads. Only where the key is an
    argument of the node's ``_target_`` that the config leaves at its default (``trainer.fast_dev_run``)
    is adding it with ``+`` the answer.
    """
    from omegaconf import DictConfig
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    node = getattr(cause, "parent_node", None)
    if not isinstance(cause, (ConfigAttributeError, ConfigKeyError)) or not isinstance(node, DictConfig):
        return None
    full_key, key = str(cause.full_key or ""), str(cause.key or "")
    if not full_key.endswith(key) or not key:
        return None
    path = full_key[: -len(key)].rstrip(".")
    where = f"{path}" if path else "the config"
    target = node.get("_target_") if "_target_" in node else None
    if target is not None and key in (target_parameters(str(target)) or ()):
        return f"{full_key} is not set in {where}; add it with +{full_key}=..."
    keys = [str(k) for k in node if str(k) != "hydra"]
    return f"{full_key} is not a key of {where}; {did_you_mean(key, path, keys)}"


@contextlib.contextmanager
def hydra_errors_in_one_line() -> Iterator[None]:
    """Turn Hydra's errors about the user's input into one-line ``ConfigError``s.

    Those are: a config option that does not exist (``model=resnet21``), an override Hydra cannot parse
    or apply (``optim.lrr=0.1``, ``a=b=c``), a ``--config-dir`` that is not there. Any other exception
    (``instantiate`` failing on a bug, say) passes unchanged, with its traceback.
    """
    from hydra.errors import ConfigCompositionException, OverrideParseException, SearchPathException

    try:
        yield
    except (ConfigCompositionException, OverrideParseException, SearchPathException) as err:
        raise ConfigError(_hydra_error_line(err)) from err


def compose_train(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """The ``train`` config with ``overrides`` (Hydra's own section included, as in a real run).

    With ``output_dir`` it also becomes the run folder: ``hydra.runtime.output_dir`` is set and the
    config is registered with ``HydraConfig``, which is what ``training.train`` reads its run folder from.
    Hydra's global state is left cleared, so the next compose starts from scratch.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    try:
        with hydra_errors_in_one_line(), initialize_config_module(CONF_PACKAGE, version_base="1.3"):
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
        HydraConfig.instance().set_config(cfg)
    return cfg


def run_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config of a run, without Hydra's own node (present when composed in tests)."""
    return {
        str(key): OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        for key, value in cfg.items()
        if key != "hydra"
    }
