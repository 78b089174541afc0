"""Ranking over a term-partitioned (global) inverted index.

Each term's posting list lives whole on that term's ring owners, and a posting carries what
BM25 needs (term frequency, fact length), so a coordinator that gathers the lists of a
question's terms computes exactly the score one store holding everything would compute
(Robertson & Zaragoza 2009, "The Probabilistic Relevance Framework: BM25 and Beyond", eq. 3.15
with the non-negative idf of Lucene).

A fact may carry context (its neighbouring turns, the paragraph before: Fact.context), a
second field at a lower weight. Scoring is BM25F in the form of Robertson, Zaragoza & Taylor
(2004, "Simple BM25 extension to multiple weighted fields"): each field's term frequency
and length are weighted and summed (the fact's own text at 1, its context at
:data:`CONTEXT_WEIGHT`), then saturated and length-normalised once, as BM25 does; the corpus
list's lengths are weighted the same way, so the average length stays exact. A posting
carries both fields' figures, and :meth:`Columns.of` combines them, so everything after it
(impacts, pages, the threshold check) is plain BM25 on the combined figures.

Long lists are cut by impact at their owner: the owner returns the ``limit`` postings with
the largest term impact plus ``bound``, the largest impact it did not send. The coordinator
then knows an upper bound for every fact it has not fully scored, and asks for more only
when some fact it has not seen could still enter the top K (the threshold algorithm of
Fagin, Lotem & Naor 2003, applied to per-term impact-ordered lists).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from amplihack_hive.memory.records import Posting

K1 = 1.2
B = 0.75
#: Weight of a fact's context against its own text (a power of two: the weighted sums are
#: exact in floating point, whatever the order they are added in). Chosen on
#: benchmarks/bench_conversation.py, two seeds: 0.25 brought no reply turn into the top 10;
#: 0.5 brought half of them at 2.5 pp of its "multi" category (overall 0.797 -> 0.890); 1.0
#: found nearly every reply but lost 40 pp on "multi" and 15 pp on "single".
CONTEXT_WEIGHT = 0.5


def field_sum(own: float, context: float) -> float:
    """A posting's combined term frequency or length (BM25F)."""
    return own + CONTEXT_WEIGHT * context


def _field_sums(own: list[int], context: list[int]) -> np.ndarray:
    """:func:`field_sum` of whole columns (the same arithmetic, elementwise)."""
    out: np.ndarray = np.asarray(own, np.float64) + CONTEXT_WEIGHT * np.asarray(context, np.float64)
    return out


#: An older fact about a subject keeps this share of its score when a newer one is present.
SUPERSEDED_FACTOR = 0.5


def idf(n_docs: int, df: int) -> float:
    """BM25 inverse document frequency, never negative."""
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def impact(tf: int, length: int, avgdl: float, k1: float = K1, b: float = B) -> float:
    """The term-frequency part of BM25 for one posting (multiply by idf for the score)."""
    norm = k1 * (1.0 - b + b * (length / avgdl if avgdl > 0 else 1.0))
    return tf * (k1 + 1.0) / (tf + norm)


@dataclass(frozen=True, slots=True)
class Columns:
    """One term's postings as arrays, so an owner ranks a list of any length in numpy."""

    ids: np.ndarray  # str
    tf: np.ndarray
    length: np.ndarray
    created: np.ndarray
    subject: list[str | None]

    @classmethod
    def of(cls, postings: Sequence[Posting]) -> Columns:
        n = len(postings)
        return cls(
            np.array([p.fact_id for p in postings], dtype=str) if n else np.array([], dtype=str),
            _field_sums([p.tf for p in postings], [p.ctx_tf for p in postings]),
            _field_sums([p.length for p in postings], [p.ctx_length for p in postings]),
            np.fromiter((p.created for p in postings), np.float64, n),
            [p.subject for p in postings],
        )

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def concat(cls, parts: Sequence[Columns]) -> Columns:
        if not parts:
            return Columns.of([])
        if len(parts) == 1:
            return parts[0]
        return cls(
            np.concatenate([p.ids for p in parts]),
            np.concatenate([p.tf for p in parts]),
            np.concatenate([p.length for p in parts]),
            np.concatenate([p.created for p in parts]),
            [s for p in parts for s in p.subject],
        )

    def impacts(self, avgdl: float, k1: float = K1, b: float = B) -> np.ndarray:
        """:func:`impact` of every posting (the same arithmetic, elementwise)."""
        ratio = self.length / avgdl if avgdl > 0 else np.ones_like(self.length)
        norm = k1 * (1.0 - b + b * ratio)
        out: np.ndarray = self.tf * (k1 + 1.0) / (self.tf + norm)
        return out

    def page(
        self, avgdl: float, limit: int | None, after: tuple[float, str] | None
    ) -> dict[str, Any]:
        """The wire form of the next ``limit`` postings in (impact desc, fact id) order after
        the cursor ``after`` (a previous page's last impact and id): columns, the list's
        length, the largest impact left out and whether more follow. Ties are broken by
        fact id, so pages never overlap or skip, and every list ends."""
        imp = self.impacts(avgdl)
        idx = np.arange(len(self))
        if after is not None:
            a_imp, a_id = after
            keep = (imp < a_imp) | ((imp == a_imp) & (self.ids > a_id))
            idx = idx[keep]
        if limit is not None and len(idx) > limit:
            # every posting at least as good as the (limit + 1)-th best holds the first
            # limit + 1 of the order (ties included); sort just those
            floor = -np.partition(-imp[idx], limit)[limit]
            cand = idx[imp[idx] >= floor]
            cand = cand[np.lexsort((self.ids[cand], -imp[cand]))]
            taken, nxt = cand[:limit], cand[limit]
            bound, more = float(imp[nxt]), True
        else:
            taken = idx[np.lexsort((self.ids[idx], -imp[idx]))]
            bound, more = 0.0, False
        last = (float(imp[taken[-1]]), str(self.ids[taken[-1]])) if len(taken) else after
        return {
            "df": len(self),
            "bound": bound,
            "more": more,
            "cursor": list(last) if last is not None else None,
            **self.select(taken),
        }

    def select(self, rows: np.ndarray) -> dict[str, Any]:
        return {
            "ids": self.ids[rows].tolist(),
            "tf": _numbers(self.tf[rows]),
            "len": _numbers(self.length[rows]),
            "created": self.created[rows].tolist(),
            "subject": [self.subject[i] for i in rows.tolist()],
        }

    def only(self, wanted: Iterable[str]) -> dict[str, Any]:
        """The wire form of the postings of the ``wanted`` facts (exact lookups)."""
        rows = np.flatnonzero(np.isin(self.ids, np.array(list(wanted), dtype=str)))
        return {"df": len(self), "bound": 0.0, "more": False, "cursor": None, **self.select(rows)}


def _numbers(values: np.ndarray) -> list[Any]:
    """Whole numbers as ints (the wire form of lists without context, as before), else
    floats (a context's weighted share)."""
    if np.all(values == np.floor(values)):
        out: list[Any] = values.astype(np.int64).tolist()
        return out
    floats: list[Any] = values.tolist()
    return floats


@dataclass(slots=True)
class TermList:
    """One term's postings as a coordinator has them so far: the best ones in (impact desc,
    fact id) order as columns, the list's full length ``df``, the largest impact not yet
    received (``bound``, 0.0 when complete) and the cursor to ask for the next page."""

    df: int
    cols: Columns
    bound: float = 0.0
    more: bool = False
    cursor: tuple[float, str] | None = None

    @property
    def complete(self) -> bool:
        return not self.more

    def __len__(self) -> int:
        return len(self.cols)

    def extend(self, page: TermList) -> None:
        self.cols = Columns.concat([self.cols, page.cols])
        self.df, self.bound, self.more = page.df, page.bound, page.more
        self.cursor = page.cursor or self.cursor


def from_wire(d: dict[str, Any]) -> TermList:
    """A page as :meth:`Columns.page` (or :meth:`Columns.only`) sends it."""
    cursor = d.get("cursor")
    cols = Columns(
        np.array(d["ids"], dtype=str) if d["ids"] else np.array([], dtype=str),
        np.array(d["tf"], dtype=np.float64),
        np.array(d["len"], dtype=np.float64),
        np.array(d["created"], dtype=np.float64),
        list(d["subject"]),
    )
    return TermList(
        int(d["df"]),
        cols,
        float(d["bound"]),
        bool(d.get("more")),
        (float(cursor[0]), str(cursor[1])) if cursor else None,
    )


@dataclass(slots=True)
class Candidate:
    fact_id: str
    score: float = 0.0
    upper: float = 0.0
    missing: set[str] = field(default_factory=set)
    created: float = 0.0
    subject: str | None = None


@dataclass(slots=True)
class Ranking:
    """Scores of every fact seen so far, as arrays over the facts (``ids``, sorted) and the
    question's terms (``terms``), and whether the top K is proven.

    ``seen[i, j]`` is True once fact i's posting for term j is known (or known absent);
    a fact's upper bound adds, for each incomplete term it was not seen in, that term's
    weight times its list's bound."""

    terms: list[str]
    ids: np.ndarray
    score: np.ndarray
    created: np.ndarray
    subject: list[str | None]
    seen: np.ndarray
    weights: np.ndarray
    bounds: np.ndarray
    incomplete: np.ndarray

    @property
    def unseen_upper(self) -> float:
        return float(np.sum(self.weights * self.bounds * self.incomplete))

    def upper(self) -> np.ndarray:
        missing = self.incomplete[None, :] & ~self.seen
        extra: np.ndarray = (missing * (self.weights * self.bounds)[None, :]).sum(axis=1)
        return self.score + extra

    def _order(self, k: int) -> np.ndarray:
        """Rows of the best k facts by (score desc, id)."""
        n = len(self.ids)
        if n > k:
            floor = -np.partition(-self.score, k - 1)[k - 1]
            rows = np.flatnonzero(self.score >= floor)
        else:
            rows = np.arange(n)
        rows = rows[np.lexsort((self.ids[rows], -self.score[rows]))]
        return rows[:k]

    def _missing(self, row: int) -> set[str]:
        return {t for j, t in enumerate(self.terms) if self.incomplete[j] and not self.seen[row, j]}

    def top(self, k: int) -> list[Candidate]:
        upper = self.upper()
        return [
            Candidate(
                str(self.ids[r]),
                float(self.score[r]),
                float(upper[r]),
                self._missing(r),
                float(self.created[r]),
                self.subject[r],
            )
            for r in self._order(k).tolist()
        ]

    def needs_exact(self, k: int) -> dict[str, list[str]]:
        """For the current top k, the terms whose postings are not yet known: term -> ids."""
        want: dict[str, list[str]] = {}
        for r in self._order(k).tolist():
            for t in sorted(self._missing(r)):
                want.setdefault(t, []).append(str(self.ids[r]))
        return want

    def is_safe(self, k: int) -> bool:
        """True when no fact outside the exact top k can score above its k-th score."""
        rows = self._order(k)
        missing = self.incomplete[None, :] & ~self.seen
        if missing[rows].any():
            return False
        if len(rows) < k:
            return self.unseen_upper <= 0.0 and not missing.any()
        theta = float(self.score[rows[-1]])
        if self.unseen_upper > theta:
            return False
        others = np.ones(len(self.ids), dtype=bool)
        others[rows] = False
        return bool(np.all(self.upper()[others] <= theta))


def rank(
    lists: dict[str, TermList],
    n_docs: int,
    avgdl: float,
    query_weights: dict[str, int] | None = None,
    dfs: dict[str, int] | None = None,
) -> Ranking:
    """Score every fact present in ``lists``; bound what incomplete lists may still hide.
    Scores add each term's contribution in the order of ``lists`` (elementwise, the same
    arithmetic as :func:`impact` times :func:`idf`), so any hive ranks as one store.

    ``dfs``: the document frequency a list's idf is computed with, where it is not the
    list's own length: a term's lists in several scopes (memory/scopes.py) each hold part
    of the facts that contain it, and share the idf of their sum."""
    terms = list(lists)

    def df(t: str) -> int:
        return (dfs or {}).get(t, lists[t].df)

    weights = np.array(
        [idf(max(n_docs, df(t)), df(t)) * (query_weights or {}).get(t, 1) for t in terms],
        dtype=np.float64,
    )
    cols = [lists[t].cols for t in terms]
    every = Columns.concat(cols)
    ids, inverse = np.unique(every.ids, return_inverse=True)
    contrib = (
        np.concatenate([w * c.impacts(avgdl) for w, c in zip(weights.tolist(), cols, strict=True)])
        if cols
        else np.array([], dtype=np.float64)
    )
    n = len(ids)
    # bincount adds in input order: each fact's terms in the order of `lists`
    score = np.bincount(inverse, weights=contrib, minlength=n).astype(np.float64)
    created = np.full(n, -np.inf)
    np.maximum.at(created, inverse, every.created)
    subject: list[str | None] = [None] * n
    for i in reversed([i for i, sub in enumerate(every.subject) if sub is not None]):
        subject[int(inverse[i])] = every.subject[i]  # the first one, in term order
    seen = np.zeros((n, len(terms)), dtype=bool)
    term_of = np.repeat(np.arange(len(terms)), [len(c) for c in cols])
    seen[inverse, term_of] = True
    return Ranking(
        terms,
        ids,
        score,
        created,
        subject,
        seen,
        weights,
        np.array([lists[t].bound for t in terms], dtype=np.float64),
        np.array([not lists[t].complete for t in terms], dtype=bool),
    )


def add_exact(
    ranking: Ranking, found: dict[str, TermList], asked: dict[str, list[str]], avgdl: float
) -> None:
    """Fold in postings fetched for specific (term, fact) pairs; a pair asked for and not
    returned means the fact does not contain the term."""
    for term, fids in asked.items():
        j = ranking.terms.index(term)
        rows = np.searchsorted(ranking.ids, np.array(fids, dtype=str))
        got = found.get(term)
        if got is not None and len(got):
            hit = np.searchsorted(ranking.ids, got.cols.ids)
            ranking.score[hit] += ranking.weights[j] * got.cols.impacts(avgdl)
        ranking.seen[rows, j] = True


def apply_supersession(cands: Iterable[Candidate]) -> list[Candidate]:
    """Order facts about the same subject newest first: an older fact keeps
    SUPERSEDED_FACTOR of its score and never outranks the newest one.

    A fact's subject key is its ``subject``; a fact written with ``supersedes=X`` and no
    subject carries subject ``X``, which joins the group of fact X.
    """
    cands = list(cands)
    by_id = {c.fact_id: c for c in cands}

    def key(c: Candidate) -> str:
        seen: set[str] = set()
        k = c.subject or c.fact_id
        # follow supersedes chains: subject X where X is itself a candidate with a subject
        while k in by_id and k not in seen and by_id[k].subject and by_id[k] is not c:
            seen.add(k)
            k = by_id[k].subject or k
        return k

    groups: dict[str, list[Candidate]] = {}
    for c in cands:
        groups.setdefault(key(c), []).append(c)
    for members in groups.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda c: (-c.created, c.fact_id))
        ceiling = members[0].score
        for older in members[1:]:
            older.score = min(older.score * SUPERSEDED_FACTOR, ceiling * 0.999)
            ceiling = older.score
    return sorted(cands, key=lambda c: (-c.score, c.fact_id))
