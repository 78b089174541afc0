"""Centroids, the one-agent IVF reference and fusion (memory/vectors.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amplihack_hive.errors import InvalidInputError
from amplihack_hive.memory.vectors import (
    IVFIndex,
    centroid_version,
    fuse,
    list_count,
    nearest,
    similarity,
    train_centroids,
)


def unit(rng: np.random.Generator, n: int, d: int = 16) -> np.ndarray:
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def ids(n: int) -> list[str]:
    return [f"{i:032x}" for i in range(n)]


def test_centroids_are_unit_deterministic_and_find_clusters() -> None:
    rng = np.random.default_rng(3)
    centres = unit(rng, 4)
    data = np.repeat(centres, 50, axis=0) + rng.normal(scale=0.05, size=(200, 16)).astype(
        np.float32
    )
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    a = train_centroids(data, 4, seed=1)
    b = train_centroids(data, 4, seed=1)
    np.testing.assert_array_equal(a, b)
    assert centroid_version(a) == centroid_version(b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    # each true cluster centre has a trained centroid right beside it
    assert (np.max(centres @ a.T, axis=1) > 0.98).all()
    assert train_centroids(data[:3], 10).shape == (3, 16)
    with pytest.raises(InvalidInputError):
        train_centroids(np.zeros((0, 4), np.float32), 2)
    assert list_count(0) == 1 and list_count(10_000) == 100


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 120), st.integers(1, 12), st.integers(0, 10_000))
def test_probing_every_list_is_exact_search(n: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vecs = unit(rng, n)
    # duplicates make ties, which fall to the smaller id
    vecs[n // 2] = vecs[0]
    index = IVFIndex(train_centroids(vecs, k, seed=seed))
    names = ids(n)
    index.add(names, vecs)
    q = unit(rng, 1)[0]
    got = index.search(q, k=10, nprobe=k)
    scores = similarity(vecs.astype(np.float16), q)
    want = sorted(range(n), key=lambda i: (-float(scores[i]), names[i]))[:10]
    assert [h.fact_id for h in got] == [names[i] for i in want]
    assert [h.score for h in got] == scores[want].tolist()
    # a row scores, and is filed, the same alone as beside others (one agent and a hive agree)
    together = nearest(index.centroids, vecs, 3)
    for i in (0, n // 2, n - 1):
        assert together[i].tolist() == nearest(index.centroids, vecs[i : i + 1], 3)[0].tolist()
    assert [float(similarity(vecs[i].astype(np.float16), q)[0]) for i in want] == [
        h.score for h in got
    ]


def test_a_query_sees_only_the_probed_lists_and_removal_takes_a_vector_out() -> None:
    rng = np.random.default_rng(5)
    vecs = unit(rng, 300)
    centroids = train_centroids(vecs, 12, seed=0)
    index = IVFIndex(centroids)
    names = ids(300)
    index.add(names, vecs)
    assert len(index) == 300 and index.list_sizes().sum() == 300
    q = vecs[7]
    probed = set(nearest(centroids, q[None, :], 2)[0].tolist())
    lists = nearest(centroids, vecs)[:, 0]
    hits = index.search(q, k=300, nprobe=2)
    assert {h.fact_id for h in hits} == {names[i] for i in range(300) if lists[i] in probed}
    assert hits[0].fact_id == names[7]
    index.remove([names[7]])
    assert names[7] not in {h.fact_id for h in index.search(q, k=300, nprobe=2)}
    # adding a fact again files it once
    index.add([names[8], names[8]], vecs[[8, 8]])
    assert len(index) == 299


def test_fusion_methods() -> None:
    lex = [("a", 10.0), ("b", 5.0), ("c", 1.0)]
    vec = [("d", 0.9), ("b", 0.8), ("a", -0.2)]
    assert [f for f, _ in fuse(lex, vec, method="fill", limit=4)] == ["a", "b", "c", "d"]
    rrf = dict(fuse(lex, vec, method="rrf", limit=10, rrf_k=60))
    assert rrf["b"] == pytest.approx(2 / 62) and rrf["a"] == pytest.approx(1 / 61 + 1 / 63)
    w = dict(fuse(lex, vec, method="weighted", weight=0.5, limit=10))
    # BM25 over the best BM25, cosine clipped at 0
    assert w["a"] == pytest.approx(0.5) and w["b"] == pytest.approx(0.25 + 0.4)
    assert w["d"] == pytest.approx(0.45) and w["c"] == pytest.approx(0.05)
    assert [f for f, _ in fuse(lex, vec, method="weighted", weight=0.5, limit=2)] == ["b", "a"]
    # adaptive: the low weight when the question's words were all found, else the high one
    found = fuse(lex, vec, method="adaptive", weight=0.0, weight_uncovered=1.0, covered=1.0)
    assert [f for f, _ in found][:2] == ["a", "b"]
    missed = fuse(lex, vec, method="adaptive", weight=0.0, weight_uncovered=1.0, covered=0.5)
    assert [f for f, _ in missed][:2] == ["d", "b"]
    with pytest.raises(InvalidInputError, match="unknown fusion"):
        fuse(lex, vec, method="max")
    with pytest.raises(InvalidInputError, match="within"):
        fuse(lex, vec, weight=1.5)
