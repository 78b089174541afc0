"""The one place that builds an agent's parts: its store, its node (with repair), its ring
and its coordinator, from one :class:`AgentSettings`.

``Hive.in_process``, ``Memory``, ``Hive.connect`` and the agent process all build through
here, so the settings every agent of a hive must agree on (replication, write quorum, the
ring's virtual nodes, the largest content) and how a store is opened (backend, engine, caps)
cannot drift between them: each caller says where its settings come from (arguments, a
``MemoryConfig``, the hive's config, the agent's command line) and nothing else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from amplihack_hive.errors import IndexVersionError, InvalidInputError
from amplihack_hive.memory.backends import BACKENDS, open_store
from amplihack_hive.memory.coordinator import Coordinator, Transport
from amplihack_hive.memory.node import MemoryNode
from amplihack_hive.memory.records import MAX_CONTENT_BYTES
from amplihack_hive.memory.repair import RepairService
from amplihack_hive.memory.ring import DEFAULT_VNODES, HashRing
from amplihack_hive.memory.store import REINDEXING
from amplihack_hive.memory.text import TOKENIZER, check_tokenizer

if TYPE_CHECKING:
    from amplihack_hive.memory.config import MemoryConfig
    from amplihack_hive.memory.store import Store
    from amplihack_hive.memory.worker import StoreWorker


def _positive(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{what} must be an integer >= 1, got {value!r}")


@dataclass(frozen=True)
class AgentSettings:
    """What the agents of one hive share, and how each opens its store."""

    backend: str = "memory"
    engine: str = "kuzu"
    buffer_pool_mb: int = 256
    max_db_size_mb: int = 4096
    replication: int = 3
    write_quorum: int = 2
    vnodes: int = DEFAULT_VNODES
    max_content_bytes: int = MAX_CONTENT_BYTES
    #: the tokenizer version the hive's postings are built with (memory/text.py)
    tokenizer: int = TOKENIZER

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InvalidInputError(
                f"unknown backend {self.backend!r}; use one of: {', '.join(BACKENDS)}"
            )
        _positive(self.replication, "replication")
        _positive(self.write_quorum, "write_quorum")
        _positive(self.vnodes, "vnodes")
        _positive(self.buffer_pool_mb, "buffer_pool_mb")
        _positive(self.max_db_size_mb, "max_db_size_mb")
        _positive(self.max_content_bytes, "max_content_bytes")
        check_tokenizer(self.tokenizer)

    @classmethod
    def of(cls, cfg: MemoryConfig) -> AgentSettings:
        """The settings a :class:`~amplihack_hive.memory.config.MemoryConfig` names."""
        return cls(
            backend=cfg.backend,
            engine=cfg.engine,
            buffer_pool_mb=cfg.buffer_pool_mb,
            max_db_size_mb=cfg.max_db_size_mb,
            replication=cfg.replication,
            vnodes=cfg.vnodes,
            max_content_bytes=cfg.max_content_bytes,
            tokenizer=cfg.tokenizer or TOKENIZER,
        )


def open_agent_store(
    settings: AgentSettings, path: str | Path | None, *, check_index: bool = True
) -> Store:
    """The store of one agent: a Kuzu database at ``path``, or in memory. With
    ``check_index`` (not for a reindex, which rebuilds it), its postings must be built
    with ``settings.tokenizer`` (see :func:`check_store_tokenizer`)."""
    store = open_store(
        settings.backend,
        path if settings.backend == "kuzu" else None,
        buffer_pool_mb=settings.buffer_pool_mb,
        max_db_size_mb=settings.max_db_size_mb,
        engine=settings.engine,
    )
    if check_index:
        try:
            check_store_tokenizer(store, settings.tokenizer, path)
        except BaseException:
            store.close()
            raise
    return store


def store_tokenizer(store: Store, recorded: int | None = None) -> int | None:
    """The version of ``store``'s postings: the recorded one (``recorded``, if already read);
    1 for a store with records written before versions were recorded; None for an empty
    store with none recorded."""
    found = recorded if recorded is not None else store.tokenizer()
    if found is not None:
        return found
    if store.fact_count() or store.posting_count() or store.tombstones():
        return 1
    return None


def settle_tokenizer(
    settings: AgentSettings,
    stores: Iterable[tuple[object, Store]],
    wanted: int | None,
    new: int = TOKENIZER,
) -> AgentSettings:
    """``settings`` with the tokenizer ``stores`` (each with where it is) are served with:
    ``wanted``, or when None the one their postings have (``new`` when none has any), each
    store checked against it (:func:`check_store_tokenizer`)."""
    stores = list(stores)
    if wanted is None:
        found = {v for _, store in stores if (v := store_tokenizer(store))}
        wanted = min(found) if found else new
    for where, store in stores:
        check_store_tokenizer(store, wanted, where)
    return dataclasses.replace(settings, tokenizer=wanted)


def check_store_tokenizer(store: Store, version: int, where: object = None) -> None:
    """Refuse to serve ``store`` unless its postings are built with ``version`` (an empty
    store takes ``version``): a hive is never queried with terms of two tokenizers.
    IndexVersionError, not StorageError: the database is sound (an agent sets a store
    aside and rebuilds it on a StorageError that looks like corruption)."""
    recorded = store.tokenizer()
    found = store_tokenizer(store, recorded)
    if found is None or (found == version and recorded is None):
        store.set_tokenizer(version if found is None else found)
        return
    place = f"the store at {where}" if where is not None else "this store"
    if found == REINDEXING:
        raise IndexVersionError(
            f"{place} was being re-indexed and the rebuild did not finish; run "
            "`amplihack-hive reindex NAME` again (a local hive; in Python, "
            "amplihack_hive.memory.reindex.reindex_stores): it rebuilds the postings from "
            "the facts"
        )
    if found != version:
        raise IndexVersionError(
            f"{place} is indexed with tokenizer {found}, and this hive uses {version}; "
            f"rebuild it with `amplihack-hive reindex NAME --tokenizer {version}` (a local "
            f"hive), or name tokenizer {found} in the hive's config"
        )


def build_node(
    name: str,
    store: Store,
    settings: AgentSettings,
    ring: Callable[[], HashRing] | None = None,
    *,
    worker: StoreWorker | None = None,
) -> MemoryNode:
    """The node serving ``store`` as agent ``name``; with ``ring`` (the current ring, asked
    each time) it also answers and runs anti-entropy with its replicas."""
    repair = (
        None
        if ring is None
        else RepairService(name, store, ring, settings.replication, tokenizer=settings.tokenizer)
    )
    return MemoryNode(name, store, repair, worker=worker, tokenizer=settings.tokenizer)


def build_ring(
    names: Iterable[str], settings: AgentSettings, domains: dict[str, str] | None = None
) -> HashRing:
    """The ring of ``names`` (each in its failure domain; its own name by default)."""
    return HashRing(names, vnodes=settings.vnodes, domains=domains or {})


def build_coordinator(
    names: Iterable[str],
    transport: Transport,
    settings: AgentSettings,
    *,
    domains: dict[str, str] | None = None,
    agent: str = "",
) -> Coordinator:
    """A coordinator over the ring of ``names`` through ``transport`` (``agent``: who
    coordinates, recorded on the facts it stores)."""
    return Coordinator(
        build_ring(names, settings, domains),
        transport,
        replication=settings.replication,
        write_quorum=settings.write_quorum,
        agent=agent,
        max_content_bytes=settings.max_content_bytes,
        tokenizer=settings.tokenizer,
    )
