"""Package exports imported on first use, as diffusers and transformers do.

A package lists where each of its public names lives; importing the package costs nothing, and the first lookup of
a name imports its module. The configuration models and the command line stay light while the model code behind
the same packages pulls in torch, scipy or diffusers, which take seconds that ``--help`` should not pay.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence


def lazy_exports(package: str, homes: Mapping[str, Sequence[str]]) -> tuple[list[str], Callable[[str], object],
                                                                              Callable[[], list[str]]]:  # fmt: skip
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package`` whose names live in the given submodules.

    Args:
        package: the package's ``__name__``.
        homes: submodule name (relative to the package) → the public names it defines.
    """
    module_of = {name: module for module, names in homes.items() for name in names}
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> object:
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module_of[name]}"), name)
        namespace[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(module_of))

    return sorted(module_of), __getattr__, __dir__
