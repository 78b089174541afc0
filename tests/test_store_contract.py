"""The Store contract, run against every backend: InMemoryStore (the reference) and KuzuStore.

The last test drives both backends with the same random operations and checks that what can
be observed through the protocol is the same.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from amplihack_hive.memory.kuzu_store import KuzuStore
from amplihack_hive.memory.records import CORPUS_TERM, Fact, Posting, ShardExport, Tombstone
from amplihack_hive.memory.store import InMemoryStore, Store

BACKENDS = ["memory", "kuzu"]

HOSTILE = [
    "'); MATCH (n) DETACH DELETE n //",
    '"}) MATCH (n) DETACH DELETE n RETURN 1 //',
    "$rows $key key_ {id: 1} `Fact` \\' \\\" ;",
    "emoji 😀 family 👩\u200d👩\u200d👧 flags 🇳🇱 combining e\u0301 中文 العربية",
    "lines\nand\ttabs\r\n and a backslash \\ at the end \\",
]


def make_store(kind: str, path: Path) -> Store:
    if kind == "memory":
        return InMemoryStore()
    return KuzuStore(path, buffer_pool_mb=16, max_db_size_mb=64)


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[Callable[[str], Store]]:
    opened: list[Store] = []

    def open_store(kind: str) -> Store:
        store = make_store(kind, tmp_path / f"store-{len(opened)}.kuzu")
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, factory: Callable[[str], Store]) -> Store:
    return factory(request.param)


def fact(text: str, **kw: Any) -> Fact:
    kw.setdefault("created", 1700000000.25)
    return Fact.new(text, **kw)


def post(term: str, f: Fact, tf: int = 1, created: float = 1.5) -> Posting:
    return Posting(term, f.id, tf, 7, created, f.subject)


def snapshot(data: ShardExport) -> tuple[Any, ...]:
    """An export in a canonical order, for comparing backends."""
    return (
        sorted((f.to_dict() for f in data.facts), key=lambda d: d["id"]),
        sorted(tuple(p.to_list()) for p in data.postings),
        sorted(tuple(t.to_list()) for t in data.tombstones),
    )


def test_backend_satisfies_the_protocol(store: Store) -> None:
    assert isinstance(store, Store)


def test_put_facts_is_idempotent(store: Store) -> None:
    a, b = fact("alpha one"), fact("beta two")
    assert store.put_facts([a, b, a]) == [True, True, False]
    assert store.put_facts([b, a]) == [False, False]
    assert store.fact_count() == 2
    assert sorted(store.fact_ids()) == sorted([a.id, b.id])
    assert store.get_facts([a.id, "0" * 32]) == {a.id: a}


def test_every_field_of_a_fact_round_trips(store: Store) -> None:
    old = fact("Sarah's birthday is March 15")
    f = fact(
        "Sarah's birthday is March 16",
        kind="episodic",
        agent="agent-7",
        created=1712345678.123456789,
        confidence=0.375,
        metadata={"source": "chat", "tags": ["a", "é"], "nested": {"n": 1, "x": None}},
        subject="Sarah Chen",
        supersedes=old.id,
        length=5,
    )
    store.put_facts([f])
    got = store.get_facts([f.id])[f.id]
    assert got == f
    assert got.subject == "sarah chen"
    assert got.kind.value == "episodic"


def test_empty_inputs(store: Store) -> None:
    assert store.put_facts([]) == []
    store.put_postings([])
    assert store.postings([]) == {}
    assert store.forget([]) == []
    assert store.tombstoned([]) == set()
    assert store.get_facts([]) == {}
    assert store.fact_count() == 0 and store.posting_count() == 0
    assert store.export().facts == []


def test_postings_one_per_term_and_fact_last_write_wins(store: Store) -> None:
    a, b = fact("alpha"), fact("beta")
    store.put_postings([post("x", a, tf=1), post("x", b), post("x", a, tf=2)])
    store.put_postings([post("x", a, tf=3, created=9.0), post("y", a)])
    got = store.postings(["x", "y", "nothing"])
    assert sorted((p.fact_id, p.tf, p.created) for p in got["x"]) == sorted(
        [(a.id, 3, 9.0), (b.id, 1, 1.5)]
    )
    assert got["y"] == [post("y", a)]
    assert got["nothing"] == []
    assert store.posting_count() == 3


def test_tombstone_wins_over_a_later_fact_and_its_postings(store: Store) -> None:
    a, b = fact("forgotten before it arrived"), fact("kept")
    assert store.forget([Tombstone(a.id, 5.0)]) == [False]
    assert store.put_facts([a, b]) == [False, True]
    store.put_postings([post("t", a), post("t", b)])
    assert store.get_facts([a.id, b.id]) == {b.id: b}
    assert [p.fact_id for p in store.postings(["t"])["t"]] == [b.id]
    assert store.tombstoned([a.id, b.id]) == {a.id}
    assert store.fact_count() == 1 and store.posting_count() == 1


def test_forget_removes_the_body_and_its_postings(store: Store) -> None:
    a, b = fact("alpha gone"), fact("beta stays")
    store.put_facts([a, b])
    store.put_postings([post("alpha", a), post("shared", a), post("shared", b)])
    assert store.forget([Tombstone(a.id, 2.0), Tombstone(a.id, 1.0)]) == [True, False]
    assert store.forget([Tombstone(a.id, 3.0)]) == [False]
    assert store.get_facts([a.id]) == {}
    assert store.postings(["alpha", "shared"]) == {"alpha": [], "shared": [post("shared", b)]}
    assert store.fact_ids() == [b.id]
    assert store.fact_count() == 1 and store.posting_count() == 1
    assert [t.to_list() for t in store.export().tombstones] == [[a.id, 3.0]]


def test_the_latest_tombstone_time_is_kept(store: Store) -> None:
    store.forget([Tombstone("f1", 5.0)])
    store.forget([Tombstone("f1", 3.0)])
    assert store.export().tombstones == [Tombstone("f1", 5.0)]


def test_a_new_store_has_no_corpus_backfill(store: Store) -> None:
    store.put_facts([fact("a fact")])
    assert store.pending_corpus() == []
    store.corpus_done()  # harmless


def populate(store: Store) -> list[Fact]:
    facts = [fact(f"fact number {i}", subject="s" if i % 2 else None) for i in range(5)]
    store.put_facts(facts)
    store.put_postings([post(f"t{i % 3}", f, tf=i + 1) for i, f in enumerate(facts)])
    store.put_postings([post("orphan", fact("body lives elsewhere"))])
    store.forget([Tombstone(facts[0].id, 4.0), Tombstone("f" * 32, 2.5)])
    return facts


@pytest.mark.parametrize("target", BACKENDS)
def test_export_then_import_gives_the_same_records(
    store: Store, factory: Callable[[str], Store], target: str
) -> None:
    populate(store)
    data = store.export()
    fresh = factory(target)
    fresh.import_(data)
    assert snapshot(fresh.export()) == snapshot(data)
    fresh.import_(data)  # a retried import changes nothing
    assert snapshot(fresh.export()) == snapshot(data)
    assert ShardExport.from_dict(data.to_dict()) == data


def test_import_merges_tombstones_first(store: Store) -> None:
    a, b = fact("alpha"), fact("beta")
    store.put_facts([a])
    store.import_(
        ShardExport(
            facts=[a, b],
            postings=[post("t", a), post("t", b)],
            tombstones=[Tombstone(b.id, 1.0)],
        )
    )
    assert store.get_facts([a.id, b.id]) == {a.id: a}
    assert store.postings(["t"]) == {"t": [post("t", a)]}
    # the counters older agents sent along are ignored
    assert ShardExport.from_dict({"corpus": [12, 130]}) == ShardExport()


def test_hostile_and_unicode_text_is_data(store: Store) -> None:
    bystander = fact("an innocent bystander")
    facts = [fact(text, subject=text, metadata={text: text}) for text in HOSTILE]
    assert store.put_facts([bystander, *facts]) == [True] * (len(HOSTILE) + 1)
    store.put_postings([post(text, f) for text, f in zip(HOSTILE, facts, strict=True)])
    got = store.get_facts([f.id for f in facts])
    for text, f in zip(HOSTILE, facts, strict=True):
        assert got[f.id].content.encode("utf-8") == f.content.encode("utf-8")
        assert got[f.id].metadata == {text: text}
        assert store.postings([text])[text] == [post(text, f)]
    assert store.get_facts([bystander.id]) == {bystander.id: bystander}
    assert store.fact_count() == len(HOSTILE) + 1
    assert store.posting_count() == len(HOSTILE)
    store.forget([Tombstone(facts[0].id, 1.0)])
    assert store.fact_count() == len(HOSTILE)
    assert store.tombstoned([HOSTILE[0], facts[0].id]) == {facts[0].id}


def test_long_key_lists_give_the_same_answers(store: Store) -> None:
    """More keys than KuzuStore looks up one by one: the batched path."""
    facts = [fact(f"bulk fact {i}") for i in range(120)]
    assert store.put_facts(facts) == [True] * 120
    terms = [f"term{i}" for i in range(60)]
    store.put_postings([post(terms[i % 60], f) for i, f in enumerate(facts)])
    ids = [f.id for f in facts]
    assert store.get_facts(ids) == {f.id: f for f in facts}
    got = store.postings(terms)
    assert all(len(got[t]) == 2 for t in terms)
    assert store.forget([Tombstone(i, 1.0) for i in ids[:50]]) == [True] * 50
    assert store.tombstoned(ids) == set(ids[:50])
    assert store.fact_count() == 70 and store.posting_count() == 70
    assert store.put_facts(facts) == [False] * 120


# -- the Kuzu store against the reference, on random operations ------------------------------

POOL = [fact("zero"), fact("one", subject="Sam")]
POOL += [
    fact("two supersedes one", supersedes=POOL[1].id),
    fact("three supersedes two", supersedes=fact("two supersedes one").id),
    fact("four supersedes zero", supersedes=POOL[0].id),
    fact(HOSTILE[0]),
]
TERMS = ["alpha", "beta", HOSTILE[0], "😀", CORPUS_TERM]

facts_st = st.lists(st.sampled_from(POOL), max_size=4)
postings_st = st.lists(
    st.builds(
        lambda t, f, tf, c: post(t, f, tf, c),
        st.sampled_from(TERMS),
        st.sampled_from(POOL),
        st.integers(1, 5),
        st.sampled_from([1.0, 2.5]),
    ),
    max_size=6,
)
tombstones_st = st.lists(
    st.builds(Tombstone, st.sampled_from([f.id for f in POOL]), st.sampled_from([1.0, 2.0])),
    min_size=1,
    max_size=2,
)


class KuzuMatchesMemory(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="kuzu-contract-")
        self.kuzu = KuzuStore(Path(self.dir) / "s.kuzu", buffer_pool_mb=16, max_db_size_mb=64)
        self.model = InMemoryStore()

    def teardown(self) -> None:
        self.kuzu.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(facts=facts_st)
    def put_facts(self, facts: list[Fact]) -> None:
        assert self.kuzu.put_facts(facts) == self.model.put_facts(facts)

    @rule(postings=postings_st)
    def put_postings(self, postings: list[Posting]) -> None:
        self.kuzu.put_postings(postings)
        self.model.put_postings(postings)

    @precondition(lambda self: self.model.fact_count() + self.model.posting_count() > 0)
    @rule(tombstones=tombstones_st)
    def forget(self, tombstones: list[Tombstone]) -> None:
        assert self.kuzu.forget(tombstones) == self.model.forget(tombstones)

    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        keys = sorted(self.model.posting_keys())
        if not keys:
            return
        picked = data.draw(st.lists(st.sampled_from(keys), max_size=3))
        self.kuzu.drop([], picked)
        self.model.drop([], picked)

    @invariant()
    def list_stats_are_the_lists(self) -> None:
        # the corpus list's figures are kept by every write, never drift from the list
        for term in (CORPUS_TERM, "alpha"):
            plist = self.model.postings([term])[term]
            expected = (len(plist), sum(p.length for p in plist))
            assert self.model.term_stats(term) == expected
            assert self.kuzu.term_stats(term) == expected

    @invariant()
    def same_records(self) -> None:
        assert snapshot(self.kuzu.export()) == snapshot(self.model.export())
        assert self.kuzu.fact_count() == self.model.fact_count()
        assert self.kuzu.posting_count() == self.model.posting_count()

    @invariant()
    def relations_follow_stored_facts(self) -> None:
        stored = self.model.get_facts([f.id for f in POOL])
        for f in stored.values():
            expected = [("supersedes", f.supersedes)] if f.supersedes in stored else []
            expected += [("superseded_by", g.id) for g in stored.values() if g.supersedes == f.id]
            assert self.kuzu.relations(f.id) == sorted(expected)


TestKuzuMatchesMemory = KuzuMatchesMemory.TestCase
TestKuzuMatchesMemory.settings = settings(
    max_examples=25,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_listing_and_drop_for_handoff(store: Store) -> None:
    a, b = fact("handoff alpha"), fact("handoff beta")
    store.put_facts([a, b])
    store.put_postings([post("alpha", a), post("beta", b), post("shared", a), post("shared", b)])
    store.forget([Tombstone("f" * 32, 3.0)])
    assert sorted(store.posting_keys()) == sorted(
        [("alpha", a.id), ("beta", b.id), ("shared", a.id), ("shared", b.id)]
    )
    assert [t.fact_id for t in store.tombstones()] == ["f" * 32]
    got = store.postings_by_key([("shared", b.id), ("alpha", b.id), ("nope", a.id)])
    assert [(p.term, p.fact_id) for p in got] == [("shared", b.id)]
    # dropping is not forgetting: no tombstone, and the records may come back
    store.drop([a.id], [("shared", a.id), ("alpha", a.id)])
    assert store.fact_ids() == [b.id]
    assert sorted(store.posting_keys()) == sorted([("beta", b.id), ("shared", b.id)])
    assert store.tombstoned([a.id]) == set()
    assert store.put_facts([a]) == [True]
    store.put_postings([post("alpha", a)])
    assert ("alpha", a.id) in store.posting_keys()
    assert store.posting_count() == 3
