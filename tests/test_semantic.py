"""Semantic recall on the ring (memory/semantic.py): a hive of N returns what one agent
returns, and what one agent's IVF index returns; vectors are forgotten, scoped, escalated,
re-filed by a retraining and kept by Kuzu as postings are.

Exactness does not depend on what the vectors mean, so most tests embed with
:class:`WordVectors` (a fixed random vector per word, summed: fast and deterministic); the
quality test at the end uses the real all-MiniLM-L6-v2 weights."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amplihack_hive import Hive
from amplihack_hive.errors import ForbiddenError, InvalidInputError
from amplihack_hive.memory import protocol as pr
from amplihack_hive.memory.records import Fact, Posting
from amplihack_hive.memory.scopes import Access
from amplihack_hive.memory.semantic import (
    UNTRAINED,
    from_f16,
    read_centroids,
    served,
)
from amplihack_hive.memory.text import tokenize
from amplihack_hive.memory.vectors import IVFIndex

VOCAB = [f"w{i}" for i in range(30)] + ["cobalt", "falcon", "lease", "office"]


class WordVectors:
    """Each word a fixed random unit-ish vector; a text the normalised sum of its words'."""

    name = "test:word-vectors"
    dimension = 24

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dimension), np.float32)
        for i, text in enumerate(texts):
            for w in tokenize(text) or ["(nothing)"]:
                seed = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
                out[i] += np.random.default_rng(seed).standard_normal(self.dimension)
            out[i] /= np.linalg.norm(out[i]) or 1.0
        return out


def ranking(hive: Hive, q: str, k: int = 10) -> list[tuple[str, float]]:
    return [(h.id, round(h.score, 12)) for h in hive.recall(q, limit=k)]


def vector_top(hive: Hive, q: str, k: int = 10) -> list[tuple[str, float]]:
    coord = hive._coordinator
    hits, lost = hive._loop.run(coord._vector_hits(coord._op(), q, ["hive"], k))
    assert not lost
    return [(h.fact_id, h.score) for h in hits]


def centroid_sets(hive: Hive) -> list:
    coord = hive._coordinator
    return hive._loop.run(coord._centroid_sets(coord._op(), fresh=True))


docs_ = st.lists(
    st.lists(st.sampled_from(VOCAB), min_size=1, max_size=8).map(" ".join),
    min_size=2,
    max_size=40,
    unique=True,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=docs_,
    n=st.integers(2, 12),
    r=st.integers(1, 3),
    lists=st.integers(1, 6),
    nprobe=st.integers(1, 4),
    train_at=st.floats(0.0, 1.0),
    forget=st.lists(st.integers(0, 39), max_size=4),
    # words no fact has too ("zebra"): the fusion's weight depends on whether all are known
    queries=st.lists(
        st.lists(st.sampled_from([*VOCAB, "zebra", "quokka"]), min_size=1, max_size=3),
        max_size=4,
    ),
    uncovered=st.sampled_from([None, 0.8]),
)
def test_a_hive_of_n_recalls_by_meaning_exactly_as_one_agent(
    docs, n, r, lists, nprobe, train_at, forget, queries, uncovered
) -> None:
    emb = WordVectors()
    with (
        Hive.in_process(1, 1, embedder=emb, nprobe=nprobe) as one,
        Hive.in_process(n, r, embedder=emb, nprobe=nprobe) as many,
    ):
        cut = int(len(docs) * train_at)
        for hive in (one, many):
            assert hive.semantic is not None
            hive.semantic.weight_uncovered = uncovered
            hive.remember_many(docs[:cut] or docs[:1])
            hive.train_vectors(lists, seed=3)
            hive.remember_many(docs[cut:])  # filed under the trained centroids on arrival
            ids = hive.remember_many(docs)
            for i in forget:
                if i < len(ids):
                    hive.forget(ids[i])
        (trained,) = centroid_sets(many)
        assert [s.version for s in centroid_sets(one)] == [trained.version]
        # the reference: one IVF index with those centroids, holding the vectors stored
        # (float16, so each is filed as the hive files it)
        ref = IVFIndex(trained.matrix)
        live = {f: c for f, c in zip(ids, docs, strict=True)}
        for i in forget:
            if i < len(ids):
                live.pop(ids[i], None)
        if live:
            stored = np.stack(
                [from_f16(many.fact(f).vector).astype(np.float32) for f in live]  # type: ignore[union-attr]
            )
            ref.add(list(live), stored)
        for words in queries:
            q = " ".join(words)
            assert ranking(many, q) == ranking(one, q)
            want = ref.search(emb.embed([q])[0], 10, nprobe)
            assert vector_top(many, q) == [(h.fact_id, h.score) for h in want]


def test_before_training_one_list_holds_every_vector_and_search_is_exact() -> None:
    emb = WordVectors()
    docs = [f"w{i} w{i + 1} office" for i in range(20)]
    with Hive.in_process(5, 3, embedder=emb) as hive:
        ids = hive.remember_many(docs)
        (only,) = centroid_sets(hive)
        assert only.version == UNTRAINED and only.matrix is None
        q = emb.embed(["w3 w4"])[0]
        exact = sorted(
            ((f, float(np.dot(from_f16(hive.fact(f).vector).astype(np.float64), q))) for f in ids),  # type: ignore[union-attr]
            key=lambda x: (-x[1], x[0]),
        )[:10]
        got = vector_top(hive, "w3 w4")
        assert [f for f, _ in got] == [f for f, _ in exact]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in exact], rtol=1e-12)


def test_a_forgotten_fact_leaves_its_vector_list_even_through_a_coordinator_without_embedder() -> (
    None
):
    emb = WordVectors()
    with Hive.in_process(6, 3, embedder=emb) as hive:
        ids = hive.remember_many([f"w{i} cobalt lease" for i in range(12)])
        hive.train_vectors(3)
        top = vector_top(hive, "w5 cobalt lease")
        gone = top[0][0]
        semantic, hive._coordinator.semantic = hive._coordinator.semantic, None
        assert hive.forget(gone)  # forget needs the centroids only, not a model
        hive._coordinator.semantic = semantic
        assert gone not in [f for f, _ in vector_top(hive, "w5 cobalt lease", 20)]
        # the tombstone reached the vector list's owners: a copy pushed back is refused
        again = hive.remember(f"w{ids.index(gone)} cobalt lease")
        assert again != gone


def test_remembering_again_does_not_embed_twice_in_one_batch_and_vectors_are_float16() -> None:
    emb = WordVectors()
    with Hive.in_process(3, 3, embedder=emb) as hive:
        [a, b] = hive.remember_many(["cobalt office", "cobalt office"])
        assert a == b
        fact = hive.fact(a)
        assert fact is not None and fact.vector is not None
        assert len(fact.vector) == 2 * emb.dimension


def test_private_vectors_stay_private_and_escalate_moves_the_vector() -> None:
    emb = WordVectors()
    groups = {"team": ["agent-1", "agent-2"]}
    with Hive.in_process(6, 3, embedder=emb, groups=groups) as hive:
        coord = hive._coordinator
        me, mate, other = (Access.of_agent(f"agent-{i}", groups) for i in (1, 2, 3))
        mine = hive._loop.run(
            coord.remember_many(["falcon lease office"], me, scope="agent:agent-1")
        )[0]

        def seen(access: Access) -> list[str]:
            hits = hive._loop.run(coord.recall("falcon lease", 10, None, access))
            return [h.id for h in hits]

        assert mine in seen(me)
        assert mine not in seen(other)
        moved = hive._loop.run(coord.escalate(mine, "group:team", me))
        assert moved in seen(mate)
        assert moved not in seen(other)
        hits, _ = hive._loop.run(coord._vector_hits(coord._op(), "falcon lease", ["group:team"], 5))
        assert [h.fact_id for h in hits] == [moved]


def test_training_takes_the_hive_token_and_needs_vectors() -> None:
    with (
        Hive.in_process(3, 3, embedder=WordVectors()) as hive,
        pytest.raises(InvalidInputError, match="no vectors to train on"),
    ):
        hive.train_vectors()
    with (
        Hive.in_process(3, 3, embedder=WordVectors(), as_agent="agent-1") as hive,
        pytest.raises(ForbiddenError),
    ):
        hive.train_vectors()


def test_writes_during_a_retraining_are_filed_under_both_versions_and_none_is_missed() -> None:
    emb = WordVectors()
    docs = [f"w{i % 30} w{(i * 7) % 30} office" for i in range(60)]
    with Hive.in_process(6, 3, embedder=emb, nprobe=64) as hive:
        coord = hive._coordinator
        first = hive.remember_many(docs[:30])
        hive.train_vectors(2)

        async def both() -> list[str]:
            train = asyncio.ensure_future(coord.train_vectors(5, settle=0.2))
            await asyncio.sleep(0.05)
            sets = await coord._centroid_sets(coord._op(), fresh=True)
            assert len(sets) == 2  # the old one and the new, both served meanwhile
            ids = await coord.remember_many(docs[30:])
            await train
            return ids

        later = hive._loop.run(both())
        (now,) = centroid_sets(hive)
        assert len(now) == 5 and now.done
        # every fact is under the new version: probing every list finds them all
        want = set(first) | set(later)
        got = {f for f, _ in vector_top(hive, "office", 1000)}
        assert got == want


def test_vectors_survive_a_restart_of_kuzu_stores(tmp_path: Path) -> None:
    emb = WordVectors()
    docs = [f"w{i} w{i + 2} lease" for i in range(25)]
    with Hive.in_process(4, 3, backend="kuzu", path=tmp_path, embedder=emb) as hive:
        hive.remember_many(docs)
        version = hive.train_vectors(3)
        before = ranking(hive, "w4 lease")
        top = vector_top(hive, "w4 lease")
    with Hive.in_process(4, 3, backend="kuzu", path=tmp_path, embedder=emb) as hive:
        assert [s.version for s in centroid_sets(hive)] == [version]
        assert ranking(hive, "w4 lease") == before
        assert vector_top(hive, "w4 lease") == top


def test_centroid_sets_are_served_only_when_complete() -> None:
    emb = WordVectors()
    with Hive.in_process(1, 1, embedder=emb) as hive:
        hive.remember_many([f"w{i}" for i in range(10)])
        hive.train_vectors(3)
        (s,) = centroid_sets(hive)
    rows = [(p.fact_id, p.tf, p.length, p.created, p.subject, p.vector) for p in s.postings(1.0)]
    assert [x.version for x in read_centroids(rows)] == [s.version]
    assert read_centroids(rows[:-1]) == []  # a centroid missing: still being written
    # not done: the untrained list is served beside it; done: it alone
    assert [x.version for x in served(read_centroids(rows))] == [UNTRAINED, s.version]
    done = s.done_posting(2.0, 10)
    rows.append((done.fact_id, done.tf, done.length, done.created, done.subject, None))
    assert [x.version for x in served(read_centroids(rows))] == [s.version]


def test_the_wire_forms_of_vectors() -> None:
    vec = np.arange(6, dtype="<f2").tobytes()
    p = Posting("\x00vec:0:0", "0" * 32, 1, 3, 1.5, None, 0, 0, vec)
    assert len(p.to_list()) == 9 and Posting.from_list(p.to_list()) == p
    f = Fact.new("cobalt office")
    with_vec = Fact(**{**{k: getattr(f, k) for k in f.__slots__}, "vector": vec})  # type: ignore[attr-defined]
    assert Fact.from_dict(with_vec.to_dict()) == with_vec
    assert "vector" not in f.to_dict()  # a fact without one is sent as before vectors
    req = pr.Vectors(["k"], np.ones(4, "<f4").tobytes(), 5, {"k": "a" * 32})
    assert pr.decode_request(pr.encode(req)) == req
    for bad, why in (
        ({"op": "vectors", "keys": ["k"], "k": 0}, "k must be"),
        ({"op": "vectors", "keys": ["k"], "query": "***"}, "base64"),
        ({"op": "vectors", "keys": ["k"], "query": "AAA="}, "values of 4 bytes"),
    ):
        with pytest.raises(InvalidInputError, match=why):
            pr.decode_request(bad)
    with pytest.raises(InvalidInputError, match="a posting is"):
        pr.decode_request({"op": "put", "postings": [[*p.to_list(), "x"]]})


def test_a_tokenizer_rebuild_keeps_the_centroids_and_files_every_vector_again() -> None:
    from amplihack_hive.memory.assembly import AgentSettings, build_ring
    from amplihack_hive.memory.reindex import reindex_stores

    emb = WordVectors()
    docs = [f"w{i} w{(i * 3) % 30} lease" for i in range(30)]
    with Hive.in_process(5, 3, embedder=emb, tokenizer=1) as hive:
        hive.remember_many(docs)
        version = hive.train_vectors(4)
        top = vector_top(hive, "w6 lease")
        stores = dict(zip(hive.agents, hive._stores, strict=True))
        reindex_stores(stores, build_ring(hive.agents, AgentSettings()), 3, 2)
        for node in hive._transport.nodes.values():  # type: ignore[attr-defined]
            node.tokenizer = 2
        hive._coordinator.tokenizer = 2
        assert [s.version for s in centroid_sets(hive)] == [version]
        assert vector_top(hive, "w6 lease") == top


def test_a_question_of_no_indexed_words_is_answered_by_the_vectors_alone() -> None:
    emb = WordVectors()
    with Hive.in_process(3, 3, embedder=emb) as hive, Hive.in_process(3, 3) as lexical:
        hive.remember_many(["cobalt office", "falcon lease"])
        lexical.remember_many(["cobalt office", "falcon lease"])
        assert list(lexical.recall("the of", 5)) == []
        hits = hive.recall("the of", 5)
        assert len(hits) == 2 and hits.complete


def held_vectors(hive: Hive) -> dict[str, set[str]]:
    """Vector postings per agent: key -> ids, over every store."""
    out: dict[str, set[str]] = {}
    for name, node in hive._transport.nodes.items():  # type: ignore[attr-defined]
        for term, fid in node.store.posting_keys():
            if term.startswith("\x00vec:"):
                out.setdefault(name, set()).add(f"{term}|{fid}")
    return out


def test_vectors_written_around_down_owners_are_handed_back_and_a_wiped_agent_is_rebuilt() -> None:
    from amplihack_hive.memory.assembly import AgentSettings, build_node
    from amplihack_hive.memory.store import InMemoryStore

    emb = WordVectors()
    docs = [f"w{i % 30} w{(i * 11) % 30} office" for i in range(80)]
    with (
        Hive.in_process(1, 1, embedder=emb, nprobe=3) as one,
        Hive.in_process(6, 3, embedder=emb, nprobe=3) as hive,
    ):
        one.remember_many(docs[:40])
        one.train_vectors(4, seed=1)
        one.remember_many(docs[40:])
        hive.remember_many(docs[:40])
        hive.train_vectors(4, seed=1)
        transport = hive._transport
        transport.down |= {"agent-1", "agent-4"}  # type: ignore[attr-defined]
        hive.remember_many(docs[40:])  # acknowledged through hinted stand-ins
        transport.down.clear()  # type: ignore[attr-defined]
        for _ in range(3):
            hive.repair()
        # every vector posting is on exactly its list's R owners now
        coord = hive._coordinator
        for agent, keys in held_vectors(hive).items():
            for key in keys:
                term = key.split("|")[0]
                assert agent in coord.owners(term), (agent, term)
        for q in ("w3 office", "w17 w5", "office"):
            assert vector_top(hive, q) == vector_top(one, q)
            assert ranking(hive, q) == ranking(one, q)
        # an agent that comes back empty gets its vectors back from its replicas
        held = held_vectors(hive)
        wiped = max(held, key=lambda a: len(held[a]))
        transport.nodes[wiped] = build_node(  # type: ignore[attr-defined]
            wiped, InMemoryStore(), AgentSettings(), lambda: coord.ring
        )
        assert wiped not in held_vectors(hive)
        for _ in range(3):
            hive.repair()
        assert held_vectors(hive)[wiped] == held[wiped]


def test_a_recall_whose_vectors_cannot_be_reached_answers_by_its_words_and_says_so() -> None:
    emb = WordVectors()
    with Hive.in_process(4, 3, embedder=emb) as hive:
        hive.remember_many(["cobalt office lease", "falcon lease"])
        coord = hive._coordinator
        down = set(coord.owners("\x00centroids"))
        hive._transport.down |= down  # type: ignore[attr-defined]
        coord._sets = None
        hits = hive.recall("cobalt lease", 5)
        assert hits and not hits.complete
        assert hits[0].content == "cobalt office lease"


def test_centroids_are_trained_when_due_and_again_when_the_hive_outgrew_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from amplihack_hive.memory import semantic

    monkeypatch.setattr(semantic, "AUTO_TRAIN_MIN", 20)
    emb = WordVectors()
    with Hive.in_process(4, 3, embedder=emb) as hive:
        hive.remember_many([f"w{i} office" for i in range(19)])
        assert hive.train_vectors_if_due() is None  # 19 facts, one list: not yet
        hive.remember_many(["w19 office"])
        first = hive.train_vectors_if_due()
        assert first is not None
        (trained,) = centroid_sets(hive)
        assert trained.version == first and trained.trained_on == 20
        hive.remember_many([f"w{i % 30} lease {i}" for i in range(50)])  # 70 < 4 x 20
        assert hive.train_vectors_if_due() is None
        hive.remember_many([f"w{i % 30} falcon {i}" for i in range(10)])  # 80 = 4 x 20
        second = hive.train_vectors_if_due()
        assert second not in (None, first)
    with Hive.in_process(2, 2) as lexical:  # no embedder: never
        lexical.remember_many([f"w{i} office" for i in range(30)])
        assert lexical.train_vectors_if_due() is None


def test_the_vectors_weigh_more_when_a_word_of_the_question_is_in_no_fact() -> None:
    emb = WordVectors()
    with Hive.in_process(3, 3, embedder=emb) as hive:
        assert hive.semantic is not None
        hive.semantic.weight, hive.semantic.weight_uncovered = 0.0, 1.0
        hive.remember_many([f"w{i} w{i + 1} office" for i in range(20)])
        lexical = [h.id for h in hive.recall("w3 office", 5)]
        by_vector = [f for f, _ in vector_top(hive, "w3 office zebra", 5)]
        # every word known: the lexical ranking; "zebra" in no fact: the vector ranking
        hive.semantic.weight_uncovered = 0.0
        assert [h.id for h in hive.recall("w3 office", 5)] == lexical
        hive.semantic.weight_uncovered = 1.0
        got = [h.id for h in hive.recall("w3 office zebra", 5)]
        assert set(got) == set(by_vector) and got != lexical
