"""What a config node with a ``_target_`` may hold: the arguments of the function or class it names.

Hydra merges any key into such a node (``+optim.lrr=0.5``) and the constructor is only called once the
run has started: a key it does not take fails then, or, where it is read with ``.get``, is silently
ignored. The callable itself is the one list of what it takes (``inspect.signature``), so a key that is
not one of its arguments is refused before any work, with the nearest argument as the likely meant one.
Importing a target imports its library (torch, Lightning): only done once the cheap checks passed.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig

from cifar_resnets.errors import ConfigError

# Keys Hydra's ``instantiate`` reads itself, never passed to the target.
HYDRA_KEYS = frozenset({"_target_", "_partial_", "_args_", "_recursive_", "_convert_"})


def target_parameters(target: str) -> frozenset[str] | None:
    """The keyword arguments ``target`` takes; None when it takes any (``**kwargs``) or cannot be found
    (instantiating it then says what is wrong with the name itself)."""
    from hydra.utils import get_object

    try:
        signature = inspect.signature(get_object(target))
    except Exception:  # noqa: BLE001 - an unknown or unimportable target is reported where it is built
        return None
    kinds = {p.kind for p in signature.parameters.values()}
    if inspect.Parameter.VAR_KEYWORD in kinds:
        return None
    return frozenset(
        name for name, p in signature.parameters.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL
    )


def did_you_mean(key: str, path: str, choices: Iterable[str]) -> str:
    """``did you mean <path>.<nearest>?``, or the choices themselves when none is near."""
    names = sorted(c for c in choices if not c.startswith("_"))
    close = difflib.get_close_matches(key, names, n=1)
    prefix = f"{path}." if path else ""
    if close:
        return f"did you mean {prefix}{close[0]}?"
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return f"the keys there are: {shown}"


def target_nodes(node: Any, path: str = "") -> Iterator[tuple[str, DictConfig]]:
    """(dotted path, node) of every node below ``node`` that names a ``_target_`` (Hydra's own aside)."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node
        for key in node:
            if str(key) != "hydra" or path:
                yield from target_nodes(node._get_node(key), f"{path}.{key}" if path else str(key))
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            yield from target_nodes(node._get_node(i), f"{path}[{i}]")


def check_target_keys(path: str, node: DictConfig, also: Iterable[str] = ()) -> None:
    """Refuse a key of ``node`` that the callable its ``_target_`` names does not take (``also``: keys
    the suite reads itself before calling it, e.g. a model's ``compile``)."""
    target = str(node._get_node("_target_")._value())
    parameters = target_parameters(target)
    if parameters is None:
        return
    for key in node:
        key = str(key)
        if key not in HYDRA_KEYS and key not in parameters and key not in also:
            name = target.rsplit(".", 1)[-1]
            where = f"{path}.{key}" if path else key
            raise ConfigError(f"{where} is not a setting of {name}; {did_you_mean(key, path, parameters)}")
