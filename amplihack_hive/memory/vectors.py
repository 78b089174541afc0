"""Vectors for semantic recall: centroids, one agent's IVF index, and fusion (issue 13).

An inverted-file (IVF) index files each vector under its nearest centroid; a query scores
exactly (a dot product of unit vectors, so the cosine) the vectors of its ``nprobe`` nearest
centroids' lists only. That is what lets the lists be placed on the ring like posting lists:
a query asks the owners of ``nprobe`` lists, whatever the hive's size.

:class:`IVFIndex` is the reference: what one agent holding every vector returns for given
centroids and ``nprobe``. Vectors are kept as float16 (2 bytes a dimension, 768 bytes for
384 dimensions), and :func:`similarity` scores each one on its own from those stored values,
so two indexes holding the same vectors return the same scores to the bit. Ties fall to the
smaller id, as the lexical ranking's do.

:func:`fuse` combines a lexical and a vector ranking; which method, and whether at all, is
chosen by ``benchmarks/bench_semantic.py``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from amplihack_hive.errors import InvalidInputError

#: Lists a query probes unless told otherwise.
DEFAULT_NPROBE = 8
#: The vectors' share of a fused score (:func:`fuse`) when the index knows every word of the
#: question, and when it does not (``adaptive``), chosen by ``bench_semantic`` over two
#: corpora and two seeds: one weight for all questions (0.4) gains half as much where the
#: words differ and lost two `person` questions on seed 11; 0.8 for unknown words loses
#: conversation turns whose question has a word no turn has (`changed` -11 pp).
DEFAULT_WEIGHT = 0.2
DEFAULT_WEIGHT_UNCOVERED = 0.6


def list_count(n_vectors: int) -> int:
    """How many centroids to train for ``n_vectors``: about sqrt(n) (the usual IVF rule of
    thumb), at least 1."""
    return max(1, round(math.sqrt(max(n_vectors, 1))))


def train_centroids(
    sample: np.ndarray, k: int, *, seed: int = 0, iterations: int = 20
) -> np.ndarray:
    """``k`` unit centroids of the unit rows of ``sample`` (spherical k-means, seeded
    k-means++ start): the same sample and seed give the same centroids."""
    data = np.ascontiguousarray(sample, dtype=np.float32)
    if data.ndim != 2 or len(data) == 0:
        raise InvalidInputError("centroids need a non-empty sample of vectors")
    if k < 1:
        raise InvalidInputError(f"k must be at least 1, not {k}")
    k = min(k, len(data))
    rng = np.random.default_rng(seed)
    centroids = np.empty((k, data.shape[1]), dtype=np.float32)
    centroids[0] = data[rng.integers(len(data))]
    closest = 1.0 - data @ centroids[0]
    for i in range(1, k):
        weights = np.clip(closest, 0.0, None) ** 2
        total = float(weights.sum())
        pick = int(rng.choice(len(data), p=weights / total)) if total > 0 else int(i % len(data))
        centroids[i] = data[pick]
        closest = np.minimum(closest, 1.0 - data @ centroids[i])
    for _ in range(iterations):
        labels = np.argmax(data @ centroids.T, axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, data)
        norms = np.linalg.norm(sums, axis=1)
        empty = norms == 0
        # an empty list keeps its centroid (it may fill again as the corpus grows)
        sums[empty] = centroids[empty]
        norms[empty] = 1.0
        moved = sums / norms[:, None]
        if np.allclose(moved, centroids, atol=1e-6):
            centroids = moved.astype(np.float32)
            break
        centroids = moved.astype(np.float32)
    return np.ascontiguousarray(centroids, dtype=np.float32)


def centroid_version(centroids: np.ndarray) -> str:
    """A version naming exactly these centroids: 16 hex digits of a hash of their bytes."""
    data = np.ascontiguousarray(centroids, dtype=np.float32).tobytes()
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def nearest(centroids: np.ndarray, vectors: np.ndarray, n: int = 1) -> np.ndarray:
    """For each row of ``vectors``, the indexes of its ``n`` nearest centroids, nearest first
    (ties to the smaller index): shape ``(len(vectors), n)``."""
    rows = np.atleast_2d(np.asarray(vectors, dtype=np.float32)).astype(np.float64)
    cents = np.asarray(centroids, dtype=np.float32).astype(np.float64)
    # each (row, centroid) pair summed on its own, as in similarity(): which list a vector is
    # filed under, and which lists a query probes, must not depend on the batch around it
    step = max(1, (1 << 21) // max(1, cents.size))
    sims = (
        np.concatenate(
            [
                (rows[i : i + step, None, :] * cents[None, :, :]).sum(axis=2)
                for i in range(0, len(rows), step)
            ]
        )
        if len(rows)
        else np.zeros((0, len(cents)))
    )
    n = min(n, centroids.shape[0])
    # a stable sort of -similarity keeps equal ones in index order
    return np.argsort(-sims, axis=1, kind="stable")[:, :n]


def similarity(stored: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The cosine of each stored (float16) unit row with the unit ``query``: products in
    float64, summed along each row on its own. A matrix product would not do: BLAS blocks
    it by the matrix's shape, so the same row could score differently beside other rows
    (on one agent and in a hive), and two equal vectors could tie on one and not the other."""
    rows = np.atleast_2d(np.asarray(stored)).astype(np.float64)
    q = np.asarray(query, dtype=np.float32).reshape(-1).astype(np.float64)
    return (rows * q).sum(axis=1)


@dataclass(frozen=True)
class VectorHit:
    fact_id: str
    score: float


def _ranked(ids: Sequence[str], scores: np.ndarray, k: int) -> list[VectorHit]:
    order = sorted(range(len(ids)), key=lambda i: (-float(scores[i]), ids[i]))[:k]
    return [VectorHit(ids[i], float(scores[i])) for i in order]


class IVFIndex:
    """One agent's vectors filed by nearest centroid, searched exactly within the probed
    lists."""

    def __init__(self, centroids: np.ndarray) -> None:
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        self.version = centroid_version(self.centroids)
        self._lists: dict[int, dict[str, np.ndarray]] = {}
        self._where: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._where)

    def add(self, fact_ids: Sequence[str], vectors: np.ndarray) -> None:
        if len(fact_ids) != len(vectors):
            raise InvalidInputError("one vector per fact id")
        if not len(fact_ids):
            return
        lists = nearest(self.centroids, vectors)[:, 0]
        stored = np.asarray(vectors, dtype=np.float16)
        for fid, lst, vec in zip(fact_ids, lists.tolist(), stored, strict=True):
            self.remove([fid])
            self._lists.setdefault(lst, {})[fid] = vec
            self._where[fid] = lst

    def remove(self, fact_ids: Iterable[str]) -> None:
        for fid in fact_ids:
            lst = self._where.pop(fid, None)
            if lst is not None:
                self._lists[lst].pop(fid, None)

    def list_sizes(self) -> np.ndarray:
        sizes = np.zeros(len(self.centroids), dtype=np.int64)
        for lst, members in self._lists.items():
            sizes[lst] = len(members)
        return sizes

    def search(
        self, query: np.ndarray, k: int = 10, nprobe: int = DEFAULT_NPROBE
    ) -> list[VectorHit]:
        """The ``k`` vectors most similar to the unit vector ``query`` among the lists of
        its ``nprobe`` nearest centroids, best first."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        probed = nearest(self.centroids, q[None, :], nprobe)[0].tolist()
        ids: list[str] = []
        rows: list[np.ndarray] = []
        for lst in probed:
            for fid, vec in self._lists.get(lst, {}).items():
                ids.append(fid)
                rows.append(vec)
        if not ids:
            return []
        return _ranked(ids, similarity(np.stack(rows), q), k)


#: How :func:`fuse` may combine the two rankings.
FUSIONS = ("rrf", "weighted", "fill", "adaptive")


def fuse(
    lexical: Sequence[tuple[str, float]],
    semantic: Sequence[tuple[str, float]],
    *,
    method: str = "adaptive",
    limit: int = 10,
    weight: float = DEFAULT_WEIGHT,
    rrf_k: float = 60.0,
    covered: float = 1.0,
    weight_uncovered: float = DEFAULT_WEIGHT_UNCOVERED,
    floor: bool = True,
) -> list[tuple[str, float]]:
    """One ranking of fact ids from a lexical one (BM25 scores) and a vector one (cosines),
    each best first:

    - ``rrf``: reciprocal rank fusion, ``1/(rrf_k + rank)`` summed over both lists;
    - ``weighted``: ``(1 - weight)`` times the BM25 score over the best BM25 score, plus
      ``weight`` times the cosine (clipped at 0);
    - ``fill``: the lexical ranking as it is, then vector hits it does not hold;
    - ``adaptive``: ``weighted``, with ``weight`` when the question's words are found
      (``covered`` 1.0; the caller decides how: bench_semantic asks whether the index knows
      every one) and ``weight_uncovered`` when they are not (0.0): the vectors count for
      more when the words of the question are not found.

    With ``floor`` (weighted and adaptive), a lexical hit outside the vector ranking (a
    top few of the probed lists) scores the lowest cosine in it: its own is at most that if
    it was probed, and unknown if not. Without it such a hit gets no vector score at all,
    and vector hits of other subjects push it out (``bench_semantic`` shows both). The
    defaults are the method ``bench_semantic`` chose.

    Ties fall to the smaller id."""
    if method not in FUSIONS:
        raise InvalidInputError(f"unknown fusion {method!r}; use one of: {', '.join(FUSIONS)}")
    if not 0.0 <= weight <= 1.0:
        raise InvalidInputError(f"weight must be within [0, 1], not {weight}")
    scores: dict[str, float] = {}
    if method == "adaptive":
        method = "weighted"
        weight = weight if covered >= 1.0 else weight_uncovered
        if not 0.0 <= weight <= 1.0:
            raise InvalidInputError(f"weight must be within [0, 1], not {weight}")
    if method == "rrf":
        for ranking in (lexical, semantic):
            for rank, (fid, _) in enumerate(ranking, start=1):
                scores[fid] = scores.get(fid, 0.0) + 1.0 / (rrf_k + rank)
    elif method == "weighted":
        top = max((s for _, s in lexical), default=0.0)
        for fid, s in lexical:
            scores[fid] = (1.0 - weight) * (s / top if top > 0 else 0.0)
        vec = {fid: max(0.0, s) for fid, s in semantic}
        lowest = min(vec.values(), default=0.0) if floor else 0.0
        for fid in scores:
            if fid not in vec:
                scores[fid] += weight * lowest
        for fid, s in vec.items():
            scores[fid] = scores.get(fid, 0.0) + weight * s
    else:
        out = list(lexical[:limit])
        seen = {fid for fid, _ in out}
        for fid, s in semantic:
            if len(out) >= limit:
                break
            if fid not in seen:
                out.append((fid, s))
                seen.add(fid)
        return out
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return ranked[:limit]
