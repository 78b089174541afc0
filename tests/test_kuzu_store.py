"""What only the Kuzu store has to get right: durability, many databases per process, caps,
engine selection, error mapping, atomic batches and thread safety."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from amplihack_hive.errors import ConfigError, InvalidInputError, StorageError
from amplihack_hive.memory import kuzu_store
from amplihack_hive.memory.engine import ENGINES, engine_errors, load_engine
from amplihack_hive.memory.kuzu_store import KuzuStore
from amplihack_hive.memory.records import CORPUS_TERM, Fact, Posting, Tombstone

SMALL: dict[str, Any] = {"buffer_pool_mb": 16, "max_db_size_mb": 64}
LADYBUG = any(importlib.util.find_spec(m) is not None for m in ENGINES["ladybug"][0])


def fact(text: str, **kw: Any) -> Fact:
    kw.setdefault("created", 1700000000.5)
    return Fact.new(text, **kw)


def post(term: str, f: Fact, tf: int = 1) -> Posting:
    return Posting(term, f.id, tf, 4, f.created, f.subject)


def test_records_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "agent-0" / "store.kuzu"
    old = fact("Sarah Chen's birthday is March 15", subject="sarah chen")
    new = fact("Sarah Chen's birthday is March 16", subject="sarah chen", supersedes=old.id)
    newest = fact("Sarah Chen's birthday is March 17", supersedes=new.id)
    gone = fact("a secret to forget")
    pending = fact("supersedes a fact that arrives after the reopen", supersedes="e" * 32)
    store = KuzuStore(path, **SMALL)
    store.put_facts([new, gone, pending])  # the superseding fact arrives first
    store.put_facts([old])
    store.put_postings([post("birthday", old), post("birthday", new), post("secret", gone)])
    store.forget([Tombstone(gone.id, 3.0)])
    before = store.export()
    store.close()

    store = KuzuStore(path, **SMALL)
    try:
        after = store.export()
        assert sorted(after.facts, key=lambda f: f.id) == sorted(before.facts, key=lambda f: f.id)
        assert sorted(after.postings, key=Posting.to_list) == sorted(
            before.postings, key=Posting.to_list
        )
        assert after.tombstones == [Tombstone(gone.id, 3.0)]
        assert store.pending_corpus() == []  # a store of this format needs no backfill
        assert store.relations(old.id) == [("superseded_by", new.id)]
        assert store.relations(new.id) == [("supersedes", old.id)]
        assert store.put_facts([gone]) == [False]
        store.put_facts([newest])  # relations made after the reopen, to a fact from before
        assert store.relations(new.id) == [("superseded_by", newest.id), ("supersedes", old.id)]
        target = Fact(id="e" * 32, content="the awaited fact", created=1.0)
        store.put_facts([target])
        assert store.relations(target.id) == [("superseded_by", pending.id)]
    finally:
        store.close()


def test_forgetting_either_side_hides_the_relation(tmp_path: Path) -> None:
    old = fact("the old value")
    new = fact("the new value", supersedes=old.id)
    with KuzuStore(tmp_path / "s.kuzu", **SMALL) as store:
        store.put_facts([old, new])
        store.forget([Tombstone(old.id, 1.0)])
        assert store.relations(new.id) == []
        assert store.relations(old.id) == []


def test_a_closed_store_refuses_every_call(tmp_path: Path) -> None:
    store = KuzuStore(tmp_path / "s.kuzu", **SMALL)
    store.close()
    store.close()  # idempotent
    f = fact("too late")
    calls = [
        lambda: store.put_facts([f]),
        lambda: store.put_facts([]),
        lambda: store.get_facts([f.id]),
        lambda: store.put_postings([post("t", f)]),
        lambda: store.postings(["t"]),
        lambda: store.forget([Tombstone(f.id, 1.0)]),
        lambda: store.tombstoned([f.id]),
        lambda: store.pending_corpus(),
        lambda: store.corpus_done(),
        lambda: store.fact_ids(),
        lambda: store.fact_count(),
        lambda: store.posting_count(),
        lambda: store.export(),
        lambda: store.relations(f.id),
    ]
    for call in calls:
        with pytest.raises(StorageError, match="closed"):
            call()


@pytest.mark.parametrize(
    "caps",
    [
        {"buffer_pool_mb": 0},
        {"buffer_pool_mb": -256},
        {"buffer_pool_mb": True},
        {"buffer_pool_mb": 1.5},
        {"buffer_pool_mb": "256"},
        {"max_db_size_mb": 0},
        {"max_db_size_mb": 1000},  # Kuzu wants a power of two
        {"max_db_size_mb": 4},  # and at least 8 MB
        {"max_threads": 0},
    ],
)
def test_bad_caps_are_refused_before_anything_is_written(
    tmp_path: Path, caps: dict[str, Any]
) -> None:
    path = tmp_path / "sub" / "s.kuzu"
    with pytest.raises(InvalidInputError):
        KuzuStore(path, **caps)
    assert not path.parent.exists()


def test_unknown_engine_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope"):
        KuzuStore(tmp_path / "s.kuzu", engine="nope")
    with pytest.raises(ConfigError, match="kuzu"):
        load_engine("nope")
    assert not (tmp_path / "s.kuzu").exists()


def test_missing_engine_module_names_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(ENGINES, "ladybug", (("no_such_engine_module",), "ladybug"))
    with pytest.raises(ConfigError, match="pip install ladybug"):
        load_engine("ladybug")


def test_engine_errors_become_storage_errors(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="directory"):
        KuzuStore(tmp_path, **SMALL)  # a directory is not a database file
    with pytest.raises(StorageError, match="boom"), engine_errors("a test"):
        raise RuntimeError("boom")
    with pytest.raises(KeyError), engine_errors("a test"):  # not the engine's: untouched
        raise KeyError("x")


def test_a_failed_batch_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kuzu_store, "CHUNK", 2)
    facts = [fact(f"atomic {i}") for i in range(5)]
    with KuzuStore(tmp_path / "s.kuzu", **SMALL) as store:
        real = store._run
        creates = []

        def fail_second_chunk(query: str, params: dict[str, Any]) -> None:
            if query.startswith("UNWIND $rows AS r CREATE"):
                creates.append(params)
                if len(creates) == 2:
                    raise StorageError("disk on fire")
            real(query, params)

        monkeypatch.setattr(store, "_run", fail_second_chunk)
        with pytest.raises(StorageError, match="disk on fire"):
            store.put_facts(facts)
        assert store.fact_count() == 0 and store.get_facts([f.id for f in facts]) == {}
        monkeypatch.setattr(store, "_run", real)
        # the rolled-back rows are not remembered as stored: the retry stores all five
        assert store.put_facts(facts) == [True] * 5
        assert store.fact_count() == 5
    with KuzuStore(tmp_path / "s.kuzu", **SMALL) as store:
        assert sorted(store.get_facts([f.id for f in facts])) == sorted(f.id for f in facts)


def test_batches_larger_than_a_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kuzu_store, "CHUNK", 7)
    facts = [
        fact(f"fact {i}", supersedes=fact(f"fact {i - 1}").id if i else None) for i in range(50)
    ]
    with KuzuStore(tmp_path / "s.kuzu", **SMALL) as store:
        assert store.put_facts(facts) == [True] * 50
        store.put_postings([post(f"term{i % 9}", f, tf=i) for i, f in enumerate(facts)])
        assert store.fact_count() == 50 and store.posting_count() == 50
        assert store.relations(facts[10].id) == [
            ("superseded_by", facts[11].id),
            ("supersedes", facts[9].id),
        ]
        assert store.forget([Tombstone(f.id, 1.0) for f in facts[:20]]) == [True] * 20
        assert store.fact_count() == 30 and store.posting_count() == 30


def test_corpus_list_postings_are_postings(tmp_path: Path) -> None:
    f = fact("odd term")
    with KuzuStore(tmp_path / "s.kuzu", **SMALL) as store:
        corpus = Posting(CORPUS_TERM, f.id, 1, 2, 0.0, None)
        store.put_postings([corpus])
        assert store.postings([CORPUS_TERM]) == {CORPUS_TERM: [corpus]}
        assert len(store.columns([CORPUS_TERM])[CORPUS_TERM]) == 1
        store.forget([Tombstone(f.id, 1.0)])
        assert store.postings([CORPUS_TERM]) == {CORPUS_TERM: []}


def test_threads_share_one_store(tmp_path: Path) -> None:
    with KuzuStore(tmp_path / "s.kuzu", **SMALL) as store:

        def work(n: int) -> None:
            for i in range(10):
                f = fact(f"thread {n} fact {i}")
                store.put_facts([f])
                store.put_postings([post(f"t{n}", f)])

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.fact_count() == 40 and store.posting_count() == 40


@pytest.mark.slow
def test_a_hundred_stores_open_at_once(tmp_path: Path) -> None:
    """One process holds an agent's database for each of 100 agents (default caps)."""
    proc = psutil.Process()
    rss_before = proc.memory_info().rss
    started = time.perf_counter()
    stores = [KuzuStore(tmp_path / f"agent-{i}" / "store.kuzu") for i in range(100)]
    opened = time.perf_counter() - started
    try:
        for i, store in enumerate(stores):
            f = fact(f"agent {i} remembers this")
            assert store.put_facts([f]) == [True]
            store.put_postings([post("remembers", f, tf=i + 1)])
        for i, store in enumerate(stores):
            f = fact(f"agent {i} remembers this")
            assert store.get_facts([f.id]) == {f.id: f}
            assert store.postings(["remembers"])["remembers"] == [post("remembers", f, tf=i + 1)]
        rss_mb = (proc.memory_info().rss - rss_before) / 2**20
        print(f"100 KuzuStores: opened in {opened:.2f} s, RSS grew {rss_mb:.0f} MB")
    finally:
        for store in stores:
            store.close()


LADYBUG_ROUND_TRIP = """
import sys
from pathlib import Path
from amplihack_hive.memory.kuzu_store import KuzuStore
from amplihack_hive.memory.records import Fact, Posting
f = Fact.new("stored by the fork", created=1.0)
p = Posting("fork", f.id, 1, 7, 1.5, None)
path = Path(sys.argv[1])
with KuzuStore(path, engine="ladybug", buffer_pool_mb=16, max_db_size_mb=64) as store:
    assert store.put_facts([f]) == [True]
    store.put_postings([p])
with KuzuStore(path, engine="ladybug", buffer_pool_mb=16, max_db_size_mb=64) as store:
    assert store.get_facts([f.id]) == {f.id: f}
    assert store.postings(["fork"]) == {"fork": [p]}
assert "kuzu" not in sys.modules
print("ok")
"""


@pytest.mark.skipif(not LADYBUG, reason="ladybug is not installed (pip install ladybug)")
def test_ladybug_round_trip(tmp_path: Path) -> None:
    # in a fresh interpreter: the fork cannot share a process with kuzu (see engine.py)
    done = subprocess.run(
        [sys.executable, "-c", LADYBUG_ROUND_TRIP, str(tmp_path / "s.lbug")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_other_engine_is_refused_in_a_process_that_loaded_one() -> None:
    import kuzu  # noqa: F401  (loaded: this process runs the Kuzu tests)

    with pytest.raises(ConfigError, match="one engine per process"):
        load_engine("ladybug")


def test_a_format_1_store_is_migrated_on_open(tmp_path: Path) -> None:
    """Format 1 kept postings as Posts edges from term rows; opening moves them into the
    posting index once, keeps bodies and tombstones, and records format 2."""
    path = tmp_path / "old.kuzu"
    kuzu = load_engine("kuzu")
    db = kuzu.Database(str(path), buffer_pool_size=16 * 2**20, max_db_size=64 * 2**20)
    conn = kuzu.Connection(db)
    conn.execute(
        "CREATE NODE TABLE Doc(id STRING PRIMARY KEY, body BOOLEAN, forgotten DOUBLE,"
        " content STRING, kind STRING, agent STRING, created DOUBLE, confidence DOUBLE,"
        " metadata STRING, subject STRING, supersedes STRING, length INT64, value INT64)"
    )
    conn.execute(
        "CREATE REL TABLE Posts(FROM Doc TO Doc, tf INT64, length INT64, created DOUBLE,"
        " subject STRING)"
    )
    conn.execute("CREATE REL TABLE Supersedes(FROM Doc TO Doc)")
    kept = fact("kept fact")
    gone = fact("forgotten fact")
    conn.execute(
        "CREATE (:Doc {id: $id, body: true, content: $c, kind: 'semantic', agent: '',"
        " created: 1.0, confidence: 1.0, metadata: '{}', length: 2})",
        {"id": kept.id, "c": kept.content},
    )
    conn.execute("CREATE (:Doc {id: $id, body: false, forgotten: 5.0})", {"id": gone.id})
    conn.execute("CREATE (:Doc {id: '\x00corpus.count', body: false, value: 1})")
    conn.execute("CREATE (:Doc {id: '\x01t:kept', body: false})")
    conn.execute("CREATE (:Doc {id: '\x01t:fact', body: false})")
    for term, tf in (("kept", 1), ("fact", 2)):
        conn.execute(
            "MATCH (t:Doc {id: $t}), (d:Doc {id: $d}) CREATE (t)-[:Posts {tf: $tf, length: 2,"
            " created: 1.0, subject: NULL}]->(d)",
            {"t": "\x01t:" + term, "d": kept.id, "tf": tf},
        )
    conn.close()
    db.close()

    with KuzuStore(path, **SMALL) as store:
        assert store.postings(["kept", "fact"]) == {
            "kept": [Posting("kept", kept.id, 1, 2, 1.0, None)],
            "fact": [Posting("fact", kept.id, 2, 2, 1.0, None)],
        }
        assert store.fact_ids() == [kept.id]
        assert store.tombstoned([gone.id]) == {gone.id}
        assert store.posting_count() == 2
        # its facts go on the corpus list (by the agent, through their owners) once
        assert store.pending_corpus() == [Posting(CORPUS_TERM, kept.id, 1, 2, 0.0, None)]
    with KuzuStore(path, **SMALL) as store:  # migrated once: the second open reads format 3
        assert store.posting_count() == 2
        assert store.fact_count() == 1
        assert store.pending_corpus() != []  # until the agent says the owners have them
        store.corpus_done()
    with KuzuStore(path, **SMALL) as store:
        assert store.pending_corpus() == []
        assert store._by_key("MATCH (t:Doc {id: $key}) RETURN t.id", ["\x00corpus.count"]) == []


def test_a_store_made_before_contexts_gains_the_column_and_keeps_its_facts(
    tmp_path: Path,
) -> None:
    import kuzu

    path = tmp_path / "old"
    db = kuzu.Database(str(path))
    conn = kuzu.Connection(db)
    # the Doc table as stores before contexts made it (no context column)
    conn.execute(
        "CREATE NODE TABLE Doc(id STRING PRIMARY KEY, body BOOLEAN, forgotten DOUBLE,"
        " content STRING, kind STRING, agent STRING, created DOUBLE, confidence DOUBLE,"
        " metadata STRING, subject STRING, supersedes STRING, length INT64, value INT64)"
    )
    old = Fact.new("owls hunt at night", created=1.0)
    conn.execute(
        "CREATE (:Doc {id: $id, body: true, content: $c, kind: 'semantic', agent: '',"
        " created: 1.0, confidence: 1.0, metadata: '{}', length: 3})",
        {"id": old.id, "c": old.content},
    )
    conn.close()
    db.close()
    with KuzuStore(path) as store:
        assert store.get_facts([old.id])[old.id].context == ""
        new = Fact.new("they eat mice", created=2.0, context="owls hunt at night")
        store.put_facts([new])
        mine = Fact.new("owls nest in oaks", created=3.0, scope="agent:agent-1")
        store.put_facts([mine])
    with KuzuStore(path) as store:
        assert store.get_facts([new.id])[new.id].context == "owls hunt at night"
        # and the scope column, the facts from before scopes being the hive's
        assert store.get_facts([old.id])[old.id].scope == "hive"
        assert store.get_facts([mine.id])[mine.id].scope == "agent:agent-1"
