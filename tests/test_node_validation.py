"""An agent's memory API refuses ids that are not fact ids before they reach its store: the
store's reserved rows (corpus counters, format) cannot be named by any request."""

from __future__ import annotations

from pathlib import Path

import pytest

from amplihack_hive.errors import InvalidInputError
from amplihack_hive.memory.kuzu_store import _CORPUS_KEYS, KuzuStore
from amplihack_hive.memory.node import MemoryNode
from amplihack_hive.memory.records import CORPUS_TERM, Fact, Posting
from amplihack_hive.memory.repair import RepairService
from amplihack_hive.memory.ring import HashRing
from amplihack_hive.memory.text import TOKENIZER

RESERVED = [_CORPUS_KEYS[0], "\x01t:platform", "F" * 32, "short", ""]


@pytest.fixture
def node(tmp_path: Path) -> MemoryNode:
    store = KuzuStore(tmp_path / "db", buffer_pool_mb=16, max_db_size_mb=64)
    kept = Fact.new("a fact on the corpus list", created=1.0)
    store.put_facts([kept])
    store.put_postings([Posting(CORPUS_TERM, kept.id, 1, 5, 0.0, None)])
    ring = HashRing(["agent-0"])
    return MemoryNode("agent-0", store, RepairService("agent-0", store, lambda: ring, 3))


@pytest.mark.parametrize("bad", RESERVED)
def test_requests_naming_a_non_fact_id_are_refused(node: MemoryNode, bad: str) -> None:
    good = Fact.new("a fact", created=1.0)
    with pytest.raises(InvalidInputError, match="not a fact id"):
        node.handle({"op": "forget", "tombstones": [[bad, 1.0]]})
    with pytest.raises(InvalidInputError, match="not a fact id"):
        node.handle({"op": "put", "facts": [{**good.to_dict(), "id": bad}], "postings": []})
    with pytest.raises(InvalidInputError, match="not a fact id"):
        node.handle({"op": "put", "facts": [], "postings": [["t", bad, 1, 1, 1.0, None]]})
    with pytest.raises(InvalidInputError, match="not a fact id"):
        node.handle({"op": "facts", "ids": [bad]})
    shard = {"facts": [], "postings": [], "tombstones": [[bad, 1.0]], "corpus": [0, 0]}
    with pytest.raises(InvalidInputError, match="not a fact id"):
        node.handle({"op": "repair_put", "peer": "agent-1", "shard": shard})
    assert node.handle({"op": "corpus", "tokenizer": TOKENIZER}) == {
        "count": 1,
        "total_length": 5,
    }  # untouched
    node.store.close()
