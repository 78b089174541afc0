"""Rebuild a stopped hive's postings from its fact bodies, with another tokenizer.

The postings of a hive are all built with one tokenizer (memory/text.py), and agents refuse
requests built with another (node.py), so a hive is never queried with terms of two
versions. Moving a hive to a new version is this rebuild, done while no agent runs:

1. every store drops its postings and records that it is being re-indexed
   (:data:`~amplihack_hive.memory.store.REINDEXING`): an agent refuses to serve such a
   store, so a rebuild that stops part way is noticed, and running it again finishes it;
2. every live fact body (held by any store and tombstoned by none) is tokenized once and
   its postings, the corpus list's included, are written to the owners of their terms on
   the hive's ring, as a coordinator would place them;
3. every store records the new version.

Vector lists (memory/semantic.py) are not made of words: the centroids are written back as
they were, and every fact with a vector is filed under them again (a rebuild stopped before
they were written back files vectors in the one untrained list; train again then).

The bodies are the source of truth: nothing but postings is written, and the rebuild can be
run again at any point with the same result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from amplihack_hive.errors import InvalidInputError
from amplihack_hive.memory.coordinator import corpus_posting, index_fact
from amplihack_hive.memory.records import Posting
from amplihack_hive.memory.ring import HashRing
from amplihack_hive.memory.scopes import place
from amplihack_hive.memory.semantic import CENTROIDS, filed, read_centroids, served
from amplihack_hive.memory.store import Store
from amplihack_hive.memory.text import check_tokenizer

#: Facts read and indexed at once (their postings are held until written).
BATCH = 2000


@dataclass(frozen=True)
class ReindexReport:
    """What a rebuild did."""

    version: int
    #: distinct live facts indexed
    facts: int
    #: postings written, over every replica
    postings: int
    #: stores rebuilt
    stores: int


def reindex_stores(
    stores: Mapping[str, Store],
    ring: HashRing,
    replication: int,
    version: int,
    *,
    progress: Callable[[int, int], None] | None = None,
    batch: int = BATCH,
) -> ReindexReport:
    """Rebuild the postings of ``stores`` (every store of a stopped hive, by agent name)
    with tokenizer ``version``, placed on ``ring`` with ``replication`` copies.
    ``progress(done, total)`` is called after each batch of facts."""
    check_tokenizer(version)
    missing = sorted(set(ring.nodes) - set(stores))
    if missing:
        raise InvalidInputError(
            f"a rebuild needs the store of every agent on the ring; missing: {', '.join(missing)}"
        )
    # the vector lists and centroids are not built from words (memory/semantic.py): the
    # centroids are kept as they are, and each fact's vector is filed again under them
    centroids = {
        p.fact_id: p for store in stores.values() for p in store.postings([CENTROIDS])[CENTROIDS]
    }
    sets = served(
        read_centroids(
            (p.fact_id, p.tf, p.length, p.created, p.subject, p.vector) for p in centroids.values()
        )
    )
    for store in stores.values():
        store.reset_index()
    for agent in ring.owners(place(CENTROIDS), replication):
        if centroids:
            stores[agent].put_postings(list(centroids.values()))
    dead = {t.fact_id for store in stores.values() for t in store.tombstones()}
    held = {name: store.fact_ids() for name, store in stores.items()}
    total = len({fid for ids in held.values() for fid in ids} - dead)
    done: set[str] = set()
    owners: dict[str, list[str]] = {}
    written = 0
    if progress is not None:
        progress(0, total)
    for name, ids in held.items():
        todo = [fid for fid in dict.fromkeys(ids) if fid not in done and fid not in dead]
        for i in range(0, len(todo), batch):
            chunk = todo[i : i + batch]
            out: dict[str, list[Posting]] = {}
            for fact in stores[name].get_facts(chunk).values():
                fact, postings = index_fact(fact, version)
                vectors = filed(fact, sets) if fact.vector is not None else []
                for p in (*postings, corpus_posting(fact, postings), *vectors):
                    where = owners.get(p.term)
                    if where is None:
                        where = owners[p.term] = ring.owners(place(p.term), replication)
                    for agent in where:
                        out.setdefault(agent, []).append(p)
            for agent, postings in out.items():
                stores[agent].put_postings(postings)
                written += len(postings)
            done.update(chunk)
            if progress is not None:
                progress(len(done), total)
    for store in stores.values():
        store.set_tokenizer(version)
    return ReindexReport(version, len(done), written, len(stores))
