"""Semantic recall on the ring (issue 13): vectors filed by centroid as posting lists.

The design notes' IVF idea, built from the parts the lexical index has already:

- **A vector list is a posting list.** A fact's vector (``Fact.vector``, float16) goes on
  the list of its nearest centroid in its scope, key ``scoped(scope, vector_term(version,
  c))``, and is placed on the ring by that key, replicated at W of R, repaired, handed off,
  forgotten and refused after a forget exactly as a posting is: its posting carries the
  vector (``Posting.vector``, PostingIndex format 3). The fact's body keeps the vector too,
  so forget and escalate find its list without an embedder.
- **The centroids are a posting list too**, :data:`CENTROIDS` (hive-wide): one posting per
  centroid, ``tf`` its index, ``length`` how many there are, ``subject`` their version,
  ``vector`` the centroid. They are stored, replicated and repaired by the machinery above,
  and every coordinator reads the same float16 values, so which list a vector is filed
  under never depends on who computes it (:func:`vectors.nearest` is batch-independent).
- **Before any training** there is one list, version :data:`UNTRAINED`: exact search.
- **A query** embeds the question, picks its ``nprobe`` nearest lists in each version
  served, asks one owner per list for its best ``k`` by cosine (:class:`protocol.Vectors`),
  and merges by (score, id): exactly what one agent holding every vector returns with those
  centroids and ``nprobe`` (:class:`vectors.IVFIndex`). Fan-out: ``nprobe`` lists per scope
  and version, whatever the number of agents.
- **Retraining** (:meth:`Coordinator.train_vectors`) never stops the world: new centroids
  are written under a new version; from then on writers file every new vector under both
  versions and queries ask both (a fact filed under both has one vector, so one score);
  every vector held is re-filed under the new version; then a marker says the new version
  holds everything (:data:`_DONE`), and the old one is no longer served.

Versions are keys, never updated in place: repair compares records by key, so a record
that changed would never converge. That is why "done" is a record of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from amplihack_hive.memory.embed import Embedder
from amplihack_hive.memory.records import Fact, Posting, encode_bytes
from amplihack_hive.memory.scopes import scoped
from amplihack_hive.memory.vectors import (
    DEFAULT_NPROBE,
    DEFAULT_WEIGHT,
    DEFAULT_WEIGHT_UNCOVERED,
    nearest,
    similarity,
)

#: How every vector list's term starts: NUL, so no word (and no other list) is one.
VECTOR_PREFIX = "\x00vec:"
#: The key of the hive's centroid list.
CENTROIDS = "\x00centroids"
#: The version of the one list vectors go to before centroids are trained.
UNTRAINED = "0"
#: ``tf`` of the centroid list's posting that marks a version complete (every vector of
#: the versions before it re-filed under it).
_DONE = -1
#: How long a coordinator keeps the centroids it read before it reads them again (seconds):
#: a retraining waits this long between writing new centroids and re-filing, so that every
#: writer files under both versions by the time it reads the old lists.
CENTROIDS_TTL = 5.0
#: ``learn`` trains the centroids once the hive holds this many facts and still has one list
#: (one list's owners would score every vector of every question) ...
AUTO_TRAIN_MIN = 2000
#: ... and trains them again when it holds this many times what they were trained on.
RETRAIN_GROWTH = 4


def vector_term(version: str, centroid: int) -> str:
    return f"{VECTOR_PREFIX}{version}:{centroid}"


def vector_key(scope: str, version: str, centroid: int) -> str:
    return scoped(scope, vector_term(version, centroid))


def to_f16(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f2").tobytes()


def from_f16(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f2")


def embed_text(fact: Fact) -> str:
    """What a fact's vector is of: its context, then its content (a reply says little on
    its own: "Felix: April 20, unless legal blocks it."; measured in bench_semantic)."""
    return f"{fact.context}\n{fact.content}".strip() if fact.context else fact.content


def _centroid_id(version: str, index: int) -> str:
    # a fact id's shape (32 hex digits), as every posting's id is checked to be
    return hashlib.blake2b(f"centroid {version} {index}".encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class CentroidSet:
    """One version of the centroids; ``matrix`` None for :data:`UNTRAINED` (one list)."""

    version: str
    matrix: np.ndarray | None = None
    trained: float = 0.0
    done: bool = False
    #: how many vectors they were trained on (the done record says it)
    trained_on: int = 0

    def __len__(self) -> int:
        return 1 if self.matrix is None else len(self.matrix)

    def lists(self, vectors: np.ndarray, n: int = 1) -> np.ndarray:
        """The ``n`` nearest lists of each row (shape ``(rows, n)``)."""
        rows = np.atleast_2d(vectors)
        if self.matrix is None:
            return np.zeros((len(rows), 1), dtype=np.int64)
        return nearest(self.matrix, rows, n)

    def postings(self, at: float) -> list[Posting]:
        """This set as the centroid list's postings (a trained set only)."""
        assert self.matrix is not None
        k = len(self.matrix)
        return [
            Posting(CENTROIDS, _centroid_id(self.version, i), i, k, at, self.version, 0, 0, row)
            for i, row in enumerate(to_f16(c) for c in self.matrix)
        ]

    def done_posting(self, at: float, trained_on: int) -> Posting:
        """The record that says this version holds every vector (``length``: how many
        vectors it was trained on)."""
        return Posting(
            CENTROIDS, _centroid_id(self.version, _DONE), _DONE, trained_on, at, self.version
        )


def new_centroids(centroids: np.ndarray, at: float) -> CentroidSet:
    """A set of trained ``centroids`` as every coordinator will read it: float16 values
    (those stored), versioned by a hash of them."""
    from amplihack_hive.memory.vectors import centroid_version

    stored = np.asarray(centroids, dtype="<f2").astype(np.float32)
    return CentroidSet(centroid_version(stored), stored, at)


def read_centroids(
    rows: Iterable[tuple[str, int, int, float, str | None, bytes | None]],
) -> list[CentroidSet]:
    """The complete centroid sets among the centroid list's postings (id, tf, length,
    created, subject, vector), oldest first."""
    by_version: dict[str, dict[int, bytes]] = {}
    meta: dict[str, tuple[int, float]] = {}
    done: dict[str, int] = {}
    for _fid, index, count, created, version, vector in rows:
        if version is None:
            continue
        if index == _DONE:
            done[version] = count
            continue
        if vector is None or not 0 <= index < count:
            continue
        by_version.setdefault(version, {})[index] = vector
        meta[version] = (count, created)
    out: list[CentroidSet] = []
    for version, rows_ in by_version.items():
        count, created = meta[version]
        sizes = {len(v) for v in rows_.values()}
        if len(rows_) != count or len(sizes) != 1:
            continue  # still being written (or torn): not served
        matrix = np.stack([from_f16(rows_[i]) for i in range(count)]).astype(np.float32)
        out.append(CentroidSet(version, matrix, created, version in done, done.get(version, 0)))
    return sorted(out, key=lambda s: (s.trained, s.version))


def due(sets: Sequence[CentroidSet], facts: int) -> bool:
    """Whether centroids should be trained for a hive of ``facts`` facts, whose versions
    served are ``sets``: never while a training is under way (two versions served)."""
    if len(sets) != 1:
        return False
    (only,) = sets
    if only.matrix is None:
        return facts >= AUTO_TRAIN_MIN
    return facts >= RETRAIN_GROWTH * max(1, only.trained_on)


def served(sets: Sequence[CentroidSet]) -> list[CentroidSet]:
    """The versions queries ask and writers file under: the newest complete one that holds
    everything (else the untrained list), and every newer one still being filled."""
    base = max((i for i, s in enumerate(sets) if s.done), default=None)
    if base is None:
        return [CentroidSet(UNTRAINED, done=True), *sets]
    return list(sets[base:])


@dataclass
class Semantic:
    """How a coordinator recalls by meaning: the embedder, how many lists a query probes,
    and the vectors' share of a fused score (:func:`vectors.fuse`, chosen by
    ``benchmarks/bench_semantic.py``)."""

    embedder: Embedder
    nprobe: int = DEFAULT_NPROBE
    weight: float = DEFAULT_WEIGHT
    #: the vectors' share when some word of the question is in no fact (fuse's
    #: "adaptive"); None: ``weight`` always (fuse's "weighted")
    weight_uncovered: float | None = DEFAULT_WEIGHT_UNCOVERED
    #: the most a coordinator embeds at once (a batch of learn is split into these)
    batch: int = 256

    def fusion(self, covered: bool) -> dict[str, Any]:
        """:func:`vectors.fuse`'s arguments for a question whose words the index knows
        (``covered``) or not."""
        if self.weight_uncovered is None:
            return {"method": "weighted", "weight": self.weight}
        return {
            "method": "adaptive",
            "weight": self.weight,
            "weight_uncovered": self.weight_uncovered,
            "covered": 1.0 if covered else 0.0,
        }


def top_columns(postings: Sequence[Posting], query: np.ndarray, k: int) -> dict[str, list[object]]:
    """The ``k`` postings of one list nearest to ``query``, best first (ties to the smaller
    id), as the columns of a VectorsReply. Postings without a vector, or whose vector has
    another dimension than the query (another embedder's), are not candidates."""
    dim = len(query) * 2
    have = [p for p in postings if p.vector is not None and len(p.vector) == dim]
    if not have:
        return {"ids": [], "scores": [], "created": [], "subjects": []}
    stored = np.frombuffer(b"".join(p.vector for p in have if p.vector), dtype="<f2")
    scores = similarity(stored.reshape(len(have), -1), query)
    order = sorted(range(len(have)), key=lambda i: (-float(scores[i]), have[i].fact_id))[:k]
    return {
        "ids": [have[i].fact_id for i in order],
        "scores": [float(scores[i]) for i in order],
        "created": [have[i].created for i in order],
        "subjects": [have[i].subject for i in order],
    }


def page_columns(postings: Sequence[Posting], after: str | None, k: int) -> dict[str, list[object]]:
    """Every posting of a list, with its vector ("" for none), by id, ``k`` at a time
    after ``after``."""
    rows = sorted(
        (p for p in postings if after is None or p.fact_id > after), key=lambda p: p.fact_id
    )[:k]
    return {
        "ids": [p.fact_id for p in rows],
        "created": [p.created for p in rows],
        "subjects": [p.subject for p in rows],
        "tf": [p.tf for p in rows],
        "length": [p.length for p in rows],
        "vectors": [encode_bytes(p.vector) if p.vector is not None else "" for p in rows],
    }


@dataclass(frozen=True, slots=True)
class NearFact:
    """A fact on a vector list near the question: its cosine, and what supersession needs
    (vectors.VectorHit is the one-agent reference's, with the id and score only)."""

    fact_id: str
    score: float
    created: float
    subject: str | None


def merge_tops(lists: Iterable[dict[str, list[object]]], k: int) -> list[NearFact]:
    """The best ``k`` of several lists' tops, by (score desc, id); a fact on several lists
    (filed under two versions) once."""
    best: dict[str, NearFact] = {}
    for cols in lists:
        for fid, score, created, subject in zip(
            cols["ids"], cols["scores"], cols["created"], cols["subjects"], strict=True
        ):
            hit = NearFact(str(fid), float(score), float(created), subject)  # type: ignore[arg-type]
            if hit.fact_id not in best or hit.score > best[hit.fact_id].score:
                best[hit.fact_id] = hit
    return sorted(best.values(), key=lambda h: (-h.score, h.fact_id))[:k]


def filed_all(facts: Sequence[Fact], sets: Sequence[CentroidSet]) -> list[list[Posting]]:
    """Per fact (each has a vector), its vector postings under every set of ``sets``: the
    nearest centroids of the whole batch at once per set (``nearest`` is row-wise, so a
    vector is filed the same alone or in a batch)."""
    if not facts:
        return []
    stack = np.stack([from_f16(f.vector) for f in facts if f.vector is not None])
    if len(stack) != len(facts):
        raise ValueError("every fact filed needs a vector")
    lists = [s.lists(stack.astype(np.float32))[:, 0].tolist() for s in sets]
    return [
        [
            Posting(
                vector_key(fact.scope, s.version, int(chosen[i])),
                fact.id,
                1,
                fact.length,
                fact.created,
                fact.subject,
                0,
                0,
                fact.vector,
            )
            for s, chosen in zip(sets, lists, strict=True)
        ]
        for i, fact in enumerate(facts)
    ]


def filed(fact: Fact, sets: Sequence[CentroidSet]) -> list[Posting]:
    """The vector postings of ``fact`` (which has a vector) under every set of ``sets``."""
    return filed_all([fact], sets)[0]
