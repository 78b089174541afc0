"""``amplihack-hive reindex``: rebuild a stopped local hive's postings with a tokenizer.

A hive's postings are all of one tokenizer version (``tokenizer`` in its config, and in
every agent's store); agents refuse to serve a store of another version and requests built
with another, so a hive is never queried with mixed terms. This moves a hive to a version
by rebuilding every posting from the fact bodies (memory/reindex.py), with the agents
stopped, under the hive's lock; the config names the new version only once every store
holds it. A rebuild that stops part way leaves stores that say so: the agents refuse to
start on them, and running ``reindex`` again finishes the job.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from amplihack_hive.errors import HiveStateError
from amplihack_hive.hive.config import load_hive, locked, refuse_if_running, save
from amplihack_hive.hive.home import HomeArg, config_path, hive_dir
from amplihack_hive.memory.assembly import AgentSettings, build_ring, open_agent_store
from amplihack_hive.memory.reindex import ReindexReport, reindex_stores
from amplihack_hive.memory.store import Store
from amplihack_hive.memory.text import TOKENIZER, check_tokenizer


def reindex_hive(
    home: HomeArg,
    name: str,
    version: int = TOKENIZER,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ReindexReport:
    """Rebuild the postings of stopped hive ``name`` with tokenizer ``version`` and record
    it in the config. HiveStateError while any of its agents runs."""
    check_tokenizer(version)
    directory = hive_dir(home, name)
    load_hive(home, name)  # NotFoundError naming the hive before anything is locked
    with locked(directory):
        cfg = load_hive(home, name)
        refuse_if_running(directory, name)
        if cfg.backend != "kuzu":
            # in-memory agents keep nothing between runs: the next start indexes anew
            cfg.tokenizer = version
            save(config_path(directory), cfg)
            return ReindexReport(version, 0, 0, 0)
        settings = AgentSettings(
            backend="kuzu",
            buffer_pool_mb=cfg.buffer_pool_mb,
            replication=cfg.replication,
            tokenizer=version,
        )
        # the ring the agents of a stopped hive start on: the config's members in its
        # domains (start records the domains it packs agents into in the config)
        ring = build_ring(cfg.ring_names, settings, cfg.domains())
        # relative paths are relative to the hive directory, as for the agents
        paths = {
            a.name: directory / (Path(a.kuzu_db) if a.kuzu_db else Path("data") / a.name)
            for a in cfg.agents
        }
        if not any(p.exists() for p in paths.values()):
            raise HiveStateError(
                f"no agent of hive {name!r} has a store on this machine (in {directory}); "
                "reindex rebuilds a local hive's stores (a hive on Azure keeps the version "
                "it was deployed with)"
            )
        stores: dict[str, Store] = {}
        try:
            for agent, path in paths.items():
                stores[agent] = open_agent_store(settings, path, check_index=False)
            report = reindex_stores(stores, ring, cfg.replication, version, progress=progress)
        finally:
            for store in stores.values():
                store.close()
        cfg.tokenizer = version
        save(config_path(directory), cfg)
        return report
