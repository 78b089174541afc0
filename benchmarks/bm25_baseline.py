"""Plain BM25 over the whole corpus in one place: the baseline the hive's recall must match.

Okapi BM25 with k1=1.2, b=0.75, the non-negative idf ``ln(1 + (N - df + 0.5) / (df + 0.5))``
(as Lucene uses), lowercase ``\\w+`` tokens, no stopwords, no stemming, and no subject or
time logic: a fact and the newer fact that replaces it score on their words alone. Documents
are deduplicated by content, as the hive's content-addressed ids deduplicate them.

:func:`fts5` is the other baseline: SQLite FTS5 with its porter stemmer.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

_TOKEN = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


@dataclass(frozen=True)
class Hit:
    id: int
    content: str
    score: float


class _HasContent(Protocol):
    @property
    def content(self) -> str: ...


class BM25:
    """An in-memory BM25 index; ``build`` once, then ``search`` many times."""

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self.docs: list[str] = []
        self._terms: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}

    @classmethod
    def build(cls, contents: Iterable[str], k1: float = 1.2, b: float = 0.75) -> BM25:
        index = cls(k1, b)
        seen: set[str] = set()
        postings: dict[str, tuple[list[int], list[int]]] = {}
        lengths: list[int] = []
        for text in contents:
            if text in seen:
                continue
            seen.add(text)
            doc = len(index.docs)
            index.docs.append(text)
            tokens = tokenize(text)
            lengths.append(len(tokens))
            for term, tf in Counter(tokens).items():
                ids, tfs = postings.setdefault(term, ([], []))
                ids.append(doc)
                tfs.append(tf)
        n = len(index.docs)
        length = np.asarray(lengths, dtype=np.float64)
        avg = float(length.mean()) if n else 1.0
        norm = index.k1 * (1.0 - index.b + index.b * length / avg)
        for term, (ids, tfs) in postings.items():
            doc_ids = np.asarray(ids, dtype=np.int64)
            freq = np.asarray(tfs, dtype=np.float64)
            df = len(ids)
            idf = float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))
            weight = idf * freq * (index.k1 + 1.0) / (freq + norm[doc_ids])
            index._terms[term] = (doc_ids, weight)
        return index

    def __len__(self) -> int:
        return len(self.docs)

    def search(self, query: str, limit: int = 10) -> list[Hit]:
        """The ``limit`` best documents, best first; ties go to the earlier document."""
        scores = np.zeros(len(self.docs), dtype=np.float64)
        for term in set(tokenize(query)):
            entry = self._terms.get(term)
            if entry is not None:
                scores[entry[0]] += entry[1]
        candidates = np.flatnonzero(scores)
        if candidates.size == 0:
            return []
        order = candidates[np.argsort(-scores[candidates], kind="stable")][:limit]
        return [Hit(int(i), self.docs[i], float(scores[i])) for i in order]


def contains_all(content: str, keywords: Sequence[str]) -> bool:
    low = content.lower()
    return all(k.lower() in low for k in keywords)


def found(hits: Sequence[_HasContent | str], keywords: Sequence[str]) -> bool:
    """Whether some hit contains every keyword (case-insensitive)."""
    return any(contains_all(h if isinstance(h, str) else h.content, keywords) for h in hits)


def recall_at_k(
    search_fn: Callable[[str, int], Sequence[Any]], questions: Sequence[Any], k: int = 10
) -> float:
    """Share of questions whose top ``k`` hits hold one that contains every keyword.

    ``search_fn(question, k)`` returns hits best first (objects with ``.content``, or
    strings); ``questions`` are :class:`benchmarks.corpus.Question`-like (``.question``,
    ``.keywords``).
    """
    if not questions:
        return 0.0
    hits = sum(found(search_fn(q.question, k)[:k], q.keywords) for q in questions)
    return hits / len(questions)


def fts5(contents: Iterable[str]) -> Callable[[str, int], list[str]]:
    """SQLite FTS5 over ``contents`` (stdlib sqlite3, its porter stemmer, ``bm25()``
    ranking): ``search(question, limit)`` -> the best contents, any question word matching.
    sqlite3.OperationalError when this sqlite3 has no FTS5."""
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.execute("CREATE VIRTUAL TABLE f USING fts5(content, tokenize='porter')")
    db.executemany("INSERT INTO f(content) VALUES (?)", ((c,) for c in contents))
    db.commit()

    def search(question: str, limit: int) -> list[str]:
        # quoted terms, each stemmed by the table's own tokenizer
        terms = dict.fromkeys(t.replace('"', '""') for t in tokenize(question))
        if not terms:
            return []
        match = " OR ".join(f'"{t}"' for t in terms)
        rows = db.execute(
            "SELECT content FROM f WHERE f MATCH ? ORDER BY bm25(f) LIMIT ?", (match, limit)
        ).fetchall()
        return [r[0] for r in rows]

    return search
