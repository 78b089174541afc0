"""A store that cannot be trusted fails loudly and heals (issue 9, "Fail loudly"): with its
database deleted under it, an agent stops acknowledging, logs an ERROR and exits non-zero;
a database that no longer opens is moved aside (kept) on the next start and the agent is
rebuilt from its replicas. Real Kuzu, real agent processes on loopback."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from helpers import started_hive

from amplihack_hive import Hive
from amplihack_hive.agent.process import EXIT_STORE_BROKEN
from amplihack_hive.errors import HiveStateError
from amplihack_hive.hive.keeper import Exit, keeper_path, read_keeper
from amplihack_hive.hive.supervisor import Supervisor
from amplihack_hive.memory.kuzu_store import KuzuStore
from amplihack_hive.memory.node import MemoryNode
from amplihack_hive.memory.records import Fact

FACTS = [f"fault fact {i} marker m{i}x" for i in range(200)]


def database_files(sup: Supervisor, agent: str) -> list[Path]:
    data = sup.dir / "data"
    return [p for p in data.iterdir() if p.name == agent or p.name.startswith(agent + ".")]


def remove(paths: list[Path]) -> None:
    import shutil

    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def test_a_node_whose_database_is_deleted_acknowledges_nothing(tmp_path: Path) -> None:
    store = KuzuStore(tmp_path / "db", buffer_pool_mb=16, max_db_size_mb=64)
    node = MemoryNode("agent-0", store)
    fact = Fact.new("written before the disk went away", created=1.0)
    node.handle({"op": "put", "facts": [fact.to_dict()], "postings": []})
    assert node.check() is None
    (tmp_path / "db").unlink()
    assert "is gone" in (node.check() or "")
    with pytest.raises(HiveStateError, match="store is broken"):
        node.handle({"op": "put", "facts": [fact.to_dict()], "postings": []})
    with pytest.raises(HiveStateError, match="store is broken"):
        node.handle({"op": "ping"})
    store.close()


def held_within(home: Path, name: str, agent: str, at_least: int, timeout: float = 60) -> int:
    """The facts ``agent`` holds once it holds ``at_least`` (or when ``timeout`` is up)."""
    deadline = time.monotonic() + timeout
    while True:
        with Hive.connect(name, home) as client:
            now = int(client.stats()["facts_per_agent"][agent])
        if now >= at_least or time.monotonic() > deadline:
            return now
        time.sleep(1)


def recall_all(home: Path, name: str) -> None:
    with Hive.connect(name, home) as client:
        for i in (0, 57, 199):
            hits = client.recall(f"m{i}x", limit=1)
            assert hits and hits[0].content == FACTS[i], i


def keeper_exit(sup: Supervisor, group: str, timeout: float = 30) -> Exit | None:
    """How the agent process of ``group`` last ended, as its keeper recorded it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kept = read_keeper(keeper_path(sup.dir, group))
        if kept is not None and kept.last_exit is not None:
            return kept.last_exit
        time.sleep(0.1)
    return None


def test_deleted_files_stop_the_agent_and_its_keeper_restarts_it_rebuilt(
    hive_home: Path,
) -> None:
    sup = started_hive(hive_home, "d", 4, learn=FACTS)
    try:
        held = Hive.connect("d", hive_home)
        with held:
            before = held.stats()["facts_per_agent"]["agent-1"]
        assert before > 0
        remove(database_files(sup, "agent-1"))
        ended = keeper_exit(sup, "agent-1")
        assert ended is not None and ended.code == EXIT_STORE_BROKEN
        log = (sup.dir / "logs" / "agent-1.log").read_text()
        assert " ERROR " in log and "is gone" in log
        # the hive goes on without it (W=2 of 3)
        with Hive.connect("d", hive_home) as client:
            client.remember_many(["written while agent-1 is down m999x"])
        # its keeper starts it again: it opens a new database and rebuilds it from replicas
        deadline = time.monotonic() + 60
        while (row := {r.name: r for r in sup.status()}["agent-1"]).state != "healthy":
            assert time.monotonic() < deadline, row
            time.sleep(0.2)
        assert row.restarts == 1 and row.last_exit is not None
        assert row.last_exit["code"] == EXIT_STORE_BROKEN
        assert held_within(hive_home, "d", "agent-1", before) >= before  # rebuilt
        log = (sup.dir / "logs" / "agent-1.log").read_text()
        assert "agent agent-1 rebuilt from its replicas (" in log
        recall_all(hive_home, "d")
    finally:
        sup.stop()


def test_a_database_that_does_not_open_is_moved_aside_and_rebuilt(hive_home: Path) -> None:
    sup = started_hive(hive_home, "c", 4, learn=FACTS)
    try:
        sup.stop()
        db = sup.dir / "data" / "agent-2"
        size = db.stat().st_size
        with open(db, "r+b") as f:  # its header overwritten with garbage
            f.write(os.urandom(min(size, 8192)))
        sup = Supervisor(hive_home, "c")
        sup.start(timeout=90)
        aside = [p for p in (sup.dir / "data").iterdir() if ".broken-" in p.name]
        assert len(aside) == 1 and (aside[0] / "agent-2").is_file()  # kept, not deleted
        log = (sup.dir / "logs" / "agent-2.log").read_text()
        assert " ERROR " in log and "moved it to" in log
        assert held_within(hive_home, "c", "agent-2", 1) > 0  # rebuilt from its replicas
        recall_all(hive_home, "c")
    finally:
        sup.stop()
