"""The storage seam: what one agent keeps, and the in-memory backend.

A store holds three kinds of records for one agent:

- fact bodies, for the facts whose id hashes to this agent (it is one of their R owners);
- postings, for the terms whose hash lands on this agent (the term-partitioned index);
- tombstones of forgotten facts, which win over any later copy of the fact or its postings.

The corpus figures BM25 needs (fact count, total length) are not kept apart: they are the
size and sum of the corpus list (:data:`~amplihack_hive.memory.records.CORPUS_TERM`), a
posting list like any other. Stores do no routing and no I/O beyond their own engine; the
node (:mod:`amplihack_hive.memory.node`) drives them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from amplihack_hive.memory.index import Columns, field_sum
from amplihack_hive.memory.records import Fact, Posting, ShardExport, Tombstone


@runtime_checkable
class Store(Protocol):
    """One agent's records. Every method is idempotent under retries."""

    def put_facts(self, facts: Sequence[Fact]) -> list[bool]:
        """Store bodies. Per fact: True when newly stored, False when already present or
        tombstoned (a tombstoned fact is never stored again)."""
        ...

    def get_facts(self, ids: Sequence[str]) -> dict[str, Fact]:
        """The stored facts among ``ids`` (missing and tombstoned ids are absent)."""
        ...

    def put_postings(self, postings: Sequence[Posting]) -> None:
        """Store postings; one per (term, fact id), the last write wins; postings of
        tombstoned facts are dropped."""
        ...

    def postings(self, terms: Sequence[str]) -> dict[str, list[Posting]]:
        """Every posting of each term (a term with none maps to an empty list)."""
        ...

    def columns(self, terms: Sequence[str]) -> dict[str, Columns]:
        """The same lists as arrays (what an owner ranks); may be cached, never stale."""
        ...

    def term_stats(self, term: str) -> tuple[int, float]:
        """(postings, their total fact length, context weighted as ranking weighs it:
        :func:`~amplihack_hive.memory.index.field_sum`) of one list; cheap for the corpus
        list, which every recall asks for (kept by every write, never rebuilt per call)."""
        ...

    def forget(self, tombstones: Sequence[Tombstone]) -> list[bool]:
        """Record tombstones; drop the facts' bodies and postings. Per tombstone: True when
        a body was removed here."""
        ...

    def tombstoned(self, ids: Sequence[str]) -> set[str]:
        """The ids among ``ids`` that carry a tombstone here."""
        ...

    def check(self) -> str | None:
        """Why this store can no longer take writes (files gone or replaced under it, a
        failed write latched), or None. Cheap: called every second."""
        ...

    def pending_corpus(self) -> list[Posting]:
        """Corpus-list postings for the bodies of a store written before the corpus list
        existed (it kept counters), until :meth:`corpus_done`; else nothing."""
        ...

    def corpus_done(self) -> None:
        """The postings of :meth:`pending_corpus` reached their owners."""
        ...

    def fact_ids(self) -> list[str]:
        """Ids of every fact body stored here."""
        ...

    def fact_count(self) -> int: ...

    def posting_keys(self) -> list[tuple[str, str]]:
        """(term, fact id) of every posting stored here."""
        ...

    def tombstones(self) -> list[Tombstone]:
        """Every tombstone recorded here."""
        ...

    def postings_by_key(self, keys: Sequence[tuple[str, str]]) -> list[Posting]:
        """The stored postings among ``keys`` ((term, fact id) pairs)."""
        ...

    def drop(self, fact_ids: Sequence[str], posting_keys: Sequence[tuple[str, str]]) -> None:
        """Remove bodies and postings without leaving tombstones: they were handed to the
        agents that own them now."""
        ...

    def posting_count(self) -> int: ...

    def export(self) -> ShardExport:
        """Every record held here."""
        ...

    def import_(self, data: ShardExport) -> None:
        """Merge records from another agent: tombstones first (they win), then facts and
        postings."""
        ...

    def tokenizer(self) -> int | None:
        """The tokenizer version this store's postings were built with (memory/text.py):
        None when none is recorded (a new store, or one written before versions were),
        :data:`REINDEXING` while :meth:`reset_index` has emptied them for a rebuild."""
        ...

    def set_tokenizer(self, version: int) -> None:
        """Record the version the postings are built with (durably, for a database)."""
        ...

    def reset_index(self) -> None:
        """Drop every posting (the corpus list's, and any held for another agent) and any
        pending corpus backfill, and record :data:`REINDEXING`: the bodies stay, and the
        store refuses to be served until a rebuild records its new version."""
        ...

    def close(self) -> None: ...


#: :meth:`Store.tokenizer` of a store whose postings are being rebuilt (reindex).
REINDEXING = 0


class InMemoryStore:
    """A store in dictionaries: the reference backend, and the fast one for tests."""

    def __init__(self) -> None:
        self._facts: dict[str, Fact] = {}
        self._postings: dict[str, dict[str, Posting]] = {}
        self._terms_of: dict[str, set[str]] = {}
        self._tombstones: dict[str, float] = {}
        self._n_postings = 0
        #: Posting lists as arrays, for owners ranking them (dropped on any change to a term).
        self._columns: dict[str, Columns] = {}
        #: (size, total length) per list, dropped with its columns on any change
        self._stats: dict[str, tuple[int, float]] = {}
        self._tokenizer: int | None = None

    def put_facts(self, facts: Sequence[Fact]) -> list[bool]:
        out = []
        for f in facts:
            new = f.id not in self._facts and f.id not in self._tombstones
            if new:
                # its own copy of the metadata: agents of one process (and a caller's
                # objects) share no mutable state with this store, as over the wire
                self._facts[f.id] = dataclasses.replace(f, metadata=dict(f.metadata))
            out.append(new)
        return out

    def get_facts(self, ids: Sequence[str]) -> dict[str, Fact]:
        return {
            i: dataclasses.replace(f, metadata=dict(f.metadata))
            for i in ids
            if (f := self._facts.get(i)) is not None
        }

    def put_postings(self, postings: Sequence[Posting]) -> None:
        for p in postings:
            if p.fact_id in self._tombstones:
                continue
            self._columns.pop(p.term, None)
            self._stats.pop(p.term, None)
            plist = self._postings.setdefault(p.term, {})
            if p.fact_id not in plist:
                self._n_postings += 1
                self._terms_of.setdefault(p.fact_id, set()).add(p.term)
            plist[p.fact_id] = p

    def postings(self, terms: Sequence[str]) -> dict[str, list[Posting]]:
        return {t: list(self._postings.get(t, {}).values()) for t in terms}

    def term_stats(self, term: str) -> tuple[int, float]:
        stats = self._stats.get(term)
        if stats is None:
            plist = self._postings.get(term, {})
            total = math.fsum(field_sum(p.length, p.ctx_length) for p in plist.values())
            stats = self._stats[term] = (len(plist), total)
        return stats

    def columns(self, terms: Sequence[str]) -> dict[str, Columns]:
        out = {}
        for t in terms:
            cols = self._columns.get(t)
            if cols is None:
                cols = self._columns[t] = Columns.of(list(self._postings.get(t, {}).values()))
            out[t] = cols
        return out

    def forget(self, tombstones: Sequence[Tombstone]) -> list[bool]:
        out = []
        for t in tombstones:
            self._tombstones[t.fact_id] = max(t.at, self._tombstones.get(t.fact_id, t.at))
            out.append(self._facts.pop(t.fact_id, None) is not None)
            for term in self._terms_of.pop(t.fact_id, set()):
                self._columns.pop(term, None)
                self._stats.pop(term, None)
                plist = self._postings.get(term)
                if plist is not None and plist.pop(t.fact_id, None) is not None:
                    self._n_postings -= 1
                    if not plist:
                        del self._postings[term]
        return out

    def tombstoned(self, ids: Sequence[str]) -> set[str]:
        return {i for i in ids if i in self._tombstones}

    def check(self) -> str | None:
        return None

    def pending_corpus(self) -> list[Posting]:
        return []  # it never outlives its process, so it never held counters

    def corpus_done(self) -> None:
        pass

    def fact_ids(self) -> list[str]:
        return list(self._facts)

    def fact_count(self) -> int:
        return len(self._facts)

    def posting_keys(self) -> list[tuple[str, str]]:
        return [(t, f) for t, plist in self._postings.items() for f in plist]

    def tombstones(self) -> list[Tombstone]:
        return [Tombstone(i, at) for i, at in self._tombstones.items()]

    def postings_by_key(self, keys: Sequence[tuple[str, str]]) -> list[Posting]:
        out = []
        for term, fid in keys:
            p = self._postings.get(term, {}).get(fid)
            if p is not None:
                out.append(p)
        return out

    def drop(self, fact_ids: Sequence[str], posting_keys: Sequence[tuple[str, str]]) -> None:
        for fid in fact_ids:
            self._facts.pop(fid, None)
        for term, fid in posting_keys:
            self._columns.pop(term, None)
            self._stats.pop(term, None)
            plist = self._postings.get(term)
            if plist is not None and plist.pop(fid, None) is not None:
                self._n_postings -= 1
                terms = self._terms_of.get(fid)
                if terms is not None:
                    terms.discard(term)
                    if not terms:
                        del self._terms_of[fid]
                if not plist:
                    del self._postings[term]

    def posting_count(self) -> int:
        return self._n_postings

    def export(self) -> ShardExport:
        return ShardExport(
            facts=list(self._facts.values()),
            postings=[p for plist in self._postings.values() for p in plist.values()],
            tombstones=self.tombstones(),
        )

    def import_(self, data: ShardExport) -> None:
        merge_into(self, data)

    def tokenizer(self) -> int | None:
        return self._tokenizer

    def set_tokenizer(self, version: int) -> None:
        self._tokenizer = version

    def reset_index(self) -> None:
        self._postings.clear()
        self._terms_of.clear()
        self._columns.clear()
        self._stats.clear()
        self._n_postings = 0
        self._tokenizer = REINDEXING

    def close(self) -> None:
        pass


def merge_into(store: Store, data: ShardExport) -> None:
    """The import rule every backend shares: tombstones first, then bodies and postings."""
    if data.tombstones:
        store.forget(data.tombstones)
    if data.facts:
        store.put_facts(data.facts)
    if data.postings:
        store.put_postings(data.postings)
