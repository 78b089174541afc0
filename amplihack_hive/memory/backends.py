"""Open a store by backend name: the one place that knows every backend."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from amplihack_hive.errors import InvalidInputError

if TYPE_CHECKING:  # the stores import numpy; config commands read BACKENDS without them
    from amplihack_hive.memory.store import Store

BACKENDS = ("kuzu", "memory")


def open_store(
    backend: str,
    path: str | Path | None = None,
    *,
    buffer_pool_mb: int = 256,
    max_db_size_mb: int = 4096,
    engine: str = "kuzu",
) -> Store:
    """A store of ``backend``: "memory", or "kuzu" (a database at ``path``)."""
    if backend == "memory":
        from amplihack_hive.memory.store import InMemoryStore

        return InMemoryStore()
    if backend == "kuzu":
        if path is None:
            raise InvalidInputError("the kuzu backend needs a database path")
        from amplihack_hive.memory.kuzu_store import KuzuStore

        return KuzuStore(
            path, buffer_pool_mb=buffer_pool_mb, max_db_size_mb=max_db_size_mb, engine=engine
        )
    raise InvalidInputError(f"unknown backend {backend!r}; use one of: {', '.join(BACKENDS)}")
