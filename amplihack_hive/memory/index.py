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
    """One term's postings as an owner returns them: the best ``postings`` by impact, the
    list's full length ``df`` and the largest impact left out (0.0 when complete)."""

    df: int
    postings: list[Posting]
    bound: float = 0.0

    @property
    def complete(self) -> bool:
        return len(self.postings) >= self.df


def cut_by_impact(postings: Sequence[Posting], avgdl: float, limit: int | None) -> TermList:
    """What an owner sends for one term: its top ``limit`` postings by impact."""
    df = len(postings)
    if limit is None or df <= limit:
        return TermList(df, list(postings), 0.0)
    scored = sorted(postings, key=lambda p: (-impact(p.tf, p.length, avgdl), p.fact_id))
    top = scored[:limit]
    nxt = scored[limit]
    return TermList(df, top, impact(nxt.tf, nxt.length, avgdl))


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
