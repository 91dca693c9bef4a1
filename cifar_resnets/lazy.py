"""Names a package exports from its submodules, imported on first use (PEP 562 ``__getattr__``).

``cifar_resnets.models`` and ``cifar_resnets.inference`` export their main names this way, so that
``import cifar_resnets.inference`` costs nothing until a name is used (the app and the CLIs answer
before torch is imported).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, submodule_of: Mapping[str, str]) -> Callable[[str], Any]:
    """The package's ``__getattr__``: ``name`` from ``package.<submodule_of[name]>``, kept in the
    package's namespace after its first look-up."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        submodule = submodule_of.get(name)
        if submodule is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{submodule}"), name)
        namespace[name] = value  # later look-ups skip this function
        return value

    return __getattr__
