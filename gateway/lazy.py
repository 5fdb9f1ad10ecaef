"""Package attributes loaded on first use (PEP 562): importing the package loads none of its parts.

A package lists its public names with the submodule of each, and keeps the real imports under
`TYPE_CHECKING` for type checkers::

    __all__ = sorted(_WHERE)
    __getattr__, __dir__ = lazy_exports(__name__, _WHERE)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, where: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module `__getattr__` and `__dir__` of `package`; `where` maps each name to its submodule
    (relative to the package). A name is imported once, then kept in the package's namespace."""
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.{where[name]}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
