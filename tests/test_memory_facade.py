"""Memory: one agent's view, configured through MemoryConfig."""

from __future__ import annotations

from pathlib import Path

import pytest

from amplihack_hive import Memory, MemoryConfig
from amplihack_hive.errors import InvalidInputError


def test_memory_keeps_facts_in_its_kuzu_database_across_reopen(tmp_path: Path) -> None:
    cfg = MemoryConfig.resolve(data_dir=tmp_path, buffer_pool_mb=16, max_db_size_mb=64)
    with Memory("agent-0", config=cfg) as mem:
        fid = mem.remember("The kettle is in the second cupboard")
        assert mem.stats()["facts_per_agent"] == {"agent-0": 1}
    assert (tmp_path / "agent-0").exists()
    with Memory("agent-0", config=cfg) as mem:
        assert mem.recall("where is the kettle")[0].id == fid
        assert mem.forget(fid) is True
        assert mem.recall("kettle") == []


def test_memory_applies_its_configured_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMPLIHACK_MEMORY_MAX_CONTENT_BYTES", "40")
    monkeypatch.setenv("AMPLIHACK_MEMORY_RECALL_LIMIT", "2")
    cfg = MemoryConfig.resolve(backend="memory", data_dir=tmp_path)
    with Memory("agent-1", config=cfg) as mem:
        with pytest.raises(InvalidInputError, match="at most 40"):
            mem.remember("x" * 41)
        mem.remember_many([f"apple number {i}" for i in range(5)])
        assert len(mem.recall("apple")) == 2
        assert len(mem.recall("apple", limit=4)) == 4


def test_memory_refuses_a_bad_agent_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        Memory("../etc", config=MemoryConfig.resolve(backend="memory", data_dir=tmp_path))
