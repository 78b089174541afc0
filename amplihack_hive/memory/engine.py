"""The one adapter over the embedded graph engine (Kuzu, or its maintained fork Ladybug).

Everything engine-specific that is not a Cypher query lives here: which module to import and
how its errors become ours. Kuzu raises bare ``RuntimeError`` for every failure (binder,
runtime, I/O, lock held by another process); :func:`engine_errors` turns those into
:class:`~amplihack_hive.errors.StorageError` at this edge so they never leak upward.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from amplihack_hive.errors import ConfigError, StorageError

logger = logging.getLogger(__name__)

#: Engine name -> (modules to try, in order; the pip package that provides them).
#: Ladybug's wheel has shipped its module both as ``ladybug`` and as ``real_ladybug``.
ENGINES: dict[str, tuple[tuple[str, ...], str]] = {
    "kuzu": (("kuzu",), "kuzu"),
    "ladybug": (("ladybug", "real_ladybug"), "ladybug"),
}


def load_engine(name: str = "kuzu") -> ModuleType:
    """The engine module (it offers ``Database`` and ``Connection``); ConfigError if unknown
    or not installed."""
    key = str(name).strip().lower()
    if key not in ENGINES:
        allowed = ", ".join(sorted(ENGINES))
        raise ConfigError(f"unknown storage engine {name!r}; use one of: {allowed}")
    modules, package = ENGINES[key]
    for module_name in modules:
        if module_name not in sys.modules and importlib.util.find_spec(module_name) is None:
            continue
        # Kuzu and its fork register the same native types: loading both in one process
        # crashes it (measured: "type Database is already registered", then SIGSEGV).
        for other, (other_modules, _) in ENGINES.items():
            if other != key and any(m in sys.modules for m in other_modules):
                raise ConfigError(
                    f"storage engine {key!r} cannot be loaded in a process that already "
                    f"loaded {other!r}; use one engine per process"
                )
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if all(hasattr(module, attr) for attr in ("Database", "Connection")):
            return module
    raise ConfigError(
        f"storage engine {key!r} is not installed (no module {' or '.join(modules)}); "
        f"install it with `pip install {package}`"
    )


@contextmanager
def engine_errors(what: str) -> Iterator[None]:
    """Map the engine's exceptions raised inside the block to StorageError naming ``what``."""
    try:
        yield
    except RuntimeError as exc:
        logger.debug("engine error during %s: %s", what, exc)
        raise StorageError(f"{what} failed: {exc}") from exc
