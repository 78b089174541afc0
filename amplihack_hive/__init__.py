"""amplihack-hive: many AI agents sharing one sharded, replicated memory.

The public names are loaded on first use (PEP 562), so ``import amplihack_hive`` and every
command of the CLI that does not touch the memory (``--version``, ``create``, ``list``, ...)
pay for none of it: ``from amplihack_hive import Hive`` works as before.
"""

from __future__ import annotations

import importlib

# Not ``typing.TYPE_CHECKING``: importing typing alone costs more than the rest of this
# module (mypy treats any constant of this name as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from amplihack_hive._version import __version__
    from amplihack_hive.api import Hive, Memory
    from amplihack_hive.errors import HiveError
    from amplihack_hive.memory.config import MemoryConfig
    from amplihack_hive.memory.hits import Hit, Hits

__all__ = ["Hit", "Hits", "Hive", "HiveError", "Memory", "MemoryConfig", "__version__"]

#: Where each public name is defined.
_LAZY = {
    "Hit": "amplihack_hive.memory.hits",
    "Hits": "amplihack_hive.memory.hits",
    "Hive": "amplihack_hive.api",
    "HiveError": "amplihack_hive.errors",
    "Memory": "amplihack_hive.api",
    "MemoryConfig": "amplihack_hive.memory.config",
    "__version__": "amplihack_hive._version",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups do not come here again
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
