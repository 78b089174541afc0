"""Ranking over a term-partitioned (global) inverted index.

Each term's posting list lives whole on that term's ring owners, and a posting carries what
BM25 needs (term frequency, fact length), so a coordinator that gathers the lists of a
question's terms computes exactly the score one store holding everything would compute
(Robertson & Zaragoza 2009, "The Probabilistic Relevance Framework: BM25 and Beyond", eq. 3.15
with the non-negative idf of Lucene).

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
#: An older fact about a subject keeps this share of its score when a newer one is present.
SUPERSEDED_FACTOR = 0.5


def idf(n_docs: int, df: int) -> float:
    """BM25 inverse document frequency, never negative."""
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def impact(tf: int, length: int, avgdl: float, k1: float = K1, b: float = B) -> float:
    """The term-frequency part of BM25 for one posting (multiply by idf for the score)."""
    norm = k1 * (1.0 - b + b * (length / avgdl if avgdl > 0 else 1.0))
    return tf * (k1 + 1.0) / (tf + norm)


@dataclass(slots=True)
class TermList:
    """One term's postings as a coordinator has them so far: the best ``postings`` in
    (impact desc, fact id) order, the list's full length ``df``, the largest impact not
    yet received (``bound``, 0.0 when complete) and the cursor to ask for the next page."""

    df: int
    postings: list[Posting]
    bound: float = 0.0
    more: bool = False
    cursor: tuple[float, str] | None = None

    @property
    def complete(self) -> bool:
        return not self.more

    def extend(self, page: TermList) -> None:
        self.postings += page.postings
        self.df, self.bound, self.more = page.df, page.bound, page.more
        self.cursor = page.cursor or self.cursor


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
            np.fromiter((p.tf for p in postings), np.float64, n),
            np.fromiter((p.length for p in postings), np.float64, n),
            np.fromiter((p.created for p in postings), np.float64, n),
            [p.subject for p in postings],
        )

    def __len__(self) -> int:
        return len(self.ids)

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
            "tf": self.tf[rows].astype(np.int64).tolist(),
            "len": self.length[rows].astype(np.int64).tolist(),
            "created": self.created[rows].tolist(),
            "subject": [self.subject[i] for i in rows.tolist()],
        }

    def only(self, wanted: Iterable[str]) -> dict[str, Any]:
        """The wire form of the postings of the ``wanted`` facts (exact lookups)."""
        rows = np.flatnonzero(np.isin(self.ids, np.array(list(wanted), dtype=str)))
        return {"df": len(self), "bound": 0.0, "more": False, "cursor": None, **self.select(rows)}


def from_wire(term: str, d: dict[str, Any]) -> TermList:
    """A page as :meth:`Columns.page` sends it."""
    postings = [
        Posting(term, fid, int(tf), int(ln), float(cr), sub)
        for fid, tf, ln, cr, sub in zip(
            d["ids"], d["tf"], d["len"], d["created"], d["subject"], strict=True
        )
    ]
    cursor = d.get("cursor")
    return TermList(
        int(d["df"]),
        postings,
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
    """Scores of the facts seen so far and whether the top K is proven."""

    candidates: dict[str, Candidate]
    unseen_upper: float
    weights: dict[str, float]
    bounds: dict[str, float]

    def upper_of(self, c: Candidate) -> float:
        return c.score + sum(self.weights[t] * self.bounds[t] for t in c.missing)

    def top(self, k: int) -> list[Candidate]:
        return sorted(self.candidates.values(), key=lambda c: (-c.score, c.fact_id))[:k]

    def needs_exact(self, k: int) -> dict[str, list[str]]:
        """For the current top k, the terms whose postings are not yet known: term -> ids."""
        want: dict[str, list[str]] = {}
        for c in self.top(k):
            for t in c.missing:
                want.setdefault(t, []).append(c.fact_id)
        return want

    def is_safe(self, k: int) -> bool:
        """True when no fact outside the exact top k can score above its k-th score."""
        top = self.top(k)
        if any(c.missing for c in top):
            return False
        if len(top) < k:
            return self.unseen_upper <= 0.0 and all(not c.missing for c in self.candidates.values())
        theta = top[-1].score
        ids = {c.fact_id for c in top}
        if self.unseen_upper > theta:
            return False
        return all(c.upper <= theta for c in self.candidates.values() if c.fact_id not in ids)


def rank(
    lists: dict[str, TermList],
    n_docs: int,
    avgdl: float,
    query_weights: dict[str, int] | None = None,
) -> Ranking:
    """Score every fact present in ``lists``; bound what incomplete lists may still hide."""
    weights = {
        t: idf(max(n_docs, tl.df), tl.df) * (query_weights or {}).get(t, 1)
        for t, tl in lists.items()
    }
    candidates: dict[str, Candidate] = {}
    seen_in: dict[str, set[str]] = {}
    for term, tl in lists.items():
        w = weights[term]
        for p in tl.postings:
            c = candidates.get(p.fact_id)
            if c is None:
                c = candidates[p.fact_id] = Candidate(p.fact_id, created=p.created)
                seen_in[p.fact_id] = set()
            c.score += w * impact(p.tf, p.length, avgdl)
            c.subject = c.subject or p.subject
            c.created = max(c.created, p.created)
            seen_in[p.fact_id].add(term)
    incomplete = {t for t, tl in lists.items() if not tl.complete}
    unseen_upper = sum(weights[t] * lists[t].bound for t in incomplete)
    ranking = Ranking(candidates, unseen_upper, weights, {t: tl.bound for t, tl in lists.items()})
    for fid, c in candidates.items():
        c.missing = incomplete - seen_in[fid]
        c.upper = ranking.upper_of(c)
    return ranking


def add_exact(
    ranking: Ranking, found: dict[str, list[Posting]], asked: dict[str, list[str]], avgdl: float
) -> None:
    """Fold in postings fetched for specific (term, fact) pairs; a pair asked for and not
    returned means the fact does not contain the term."""
    by_pair = {(p.term, p.fact_id): p for plist in found.values() for p in plist}
    for term, ids in asked.items():
        w = ranking.weights[term]
        for fid in ids:
            c = ranking.candidates[fid]
            p = by_pair.get((term, fid))
            if p is not None:
                c.score += w * impact(p.tf, p.length, avgdl)
            c.missing.discard(term)
            c.upper = ranking.upper_of(c)


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
