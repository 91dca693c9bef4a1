"""The ``train`` config outside a Hydra app, composed from ``conf/`` as ``cifar-train`` composes it.

``cifar-bench``, ``cifar-reproduce``, the tests and the GPU check scripts build runs from Python; they
compose here so that they all read the same folder under the same Hydra version rules as the CLI.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from cifar_resnets.config.resources import CONF_PACKAGE


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
        with initialize_config_module(CONF_PACKAGE, version_base="1.3"):
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
        HydraConfig.instance().set_config(cfg)
    return cfg
