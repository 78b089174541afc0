"""The Kuzu backend of :class:`~amplihack_hive.memory.store.Store`: one embedded database per
agent for fact bodies, tombstones and relations, and a posting index beside it; same
observable behaviour as :class:`~amplihack_hive.memory.store.InMemoryStore`.

Schema (store format :data:`FORMAT`, created idempotently)::

    Doc(id PK, body BOOL, forgotten DOUBLE, content, kind, agent, created, confidence,
        metadata JSON, subject, supersedes, length, value INT64)
    Doc -[Supersedes]-> Doc

One ``Doc`` row per fact id this store knows: it may carry the fact's body (``body``), carry
a tombstone (``forgotten`` = its time), or be the not-yet-stored target of a ``supersedes``.
Folding these into one table matters: every node table with a primary key costs about 5 MB
of resident memory in Kuzu 0.11.3 whatever it holds, and a hive runs 100 stores per process.
A ``Supersedes`` edge is made when a fact arrives, to a placeholder if need be, so the
relation exists from whichever side arrives last; :meth:`KuzuStore.relations` shows it only
while both facts have bodies. The store format is the ``value`` of a reserved row keyed with
a leading NUL (fact ids are 32 hex digits, so they never collide). Format 2 stores kept the
corpus counters in two more such rows; opening one drops them and marks the store (a third
row) until its facts' corpus-list postings reached their owners (:meth:`KuzuStore.
pending_corpus`).

Posting lists live in a :class:`~amplihack_hive.memory.postings.PostingIndex` in
``<path>.postings/`` (why not Kuzu edges: measured in that module's notes). Format 1 stores
kept them as ``Posts`` edges from term rows; opening one moves them into the index once.

Writes of new facts never read before they write: a Bloom filter holds every id with a row
(1% false positives; about 1.2 bytes per id, rebuilt twice as large from one scan when
full), so a batch of new facts is one ``CREATE`` statement per :data:`CHUNK` rows in one
transaction, and only ids the filter may have seen are looked up (by primary key).
Tombstones are held exactly in memory (the posting index filters by them); the number of
bodies is a counter.

What Kuzu 0.11.3 does fast and slow, measured while writing this (100k-node tables):

- ``MATCH (n:T {pk: $param})`` is a primary-key index lookup (~0.3 ms). The same pattern
  keyed by an ``UNWIND`` variable is a scan plus hash join (~20 ms at 200k rows), so short
  key lists are looked up one by one (:data:`_LOOP_MAX`) and long ones in one join.
- ``UNWIND ... MATCH (a {pk: r.x}) MATCH (b {pk: r.y}) CREATE (a)-[]->(b)`` plans a cross
  product: 2000 rows took 11 s. ``MERGE`` of both (existing) ends then ``CREATE`` stays
  linear (~1 s), so edges are written that way, after the ends exist.
- Creating end nodes in the statement that then MERGEs or MATCHes an edge between them
  returned or duplicated edges wrongly, so node writes and edge writes are separate
  statements (in one transaction).
- ``COPY`` of 150 rows from Arrow costs about what ``UNWIND ... CREATE`` of them does
  (~20 ms, mostly fixed cost per statement), so batches use the latter and need no pyarrow.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from amplihack_hive.errors import InvalidInputError, StorageError
from amplihack_hive.memory.bloom import BloomFilter
from amplihack_hive.memory.engine import engine_errors, load_engine
from amplihack_hive.memory.index import Columns, field_sum
from amplihack_hive.memory.postings import PostingIndex, fsync_dir
from amplihack_hive.memory.records import (
    CORPUS_TERM,
    Fact,
    Kind,
    Posting,
    ShardExport,
    Tombstone,
    decode_vector,
    encode_bytes,
)
from amplihack_hive.memory.scopes import HIVE, is_corpus_key
from amplihack_hive.memory.store import REINDEXING, merge_into

logger = logging.getLogger(__name__)

#: Postings kept in memory per store for recall (a few MB); writes keep them exact.
POSTING_CACHE = 50_000
#: Rows per UNWIND statement.
CHUNK = 2000
#: Ids the filter of known ids is sized for at first (it doubles when full).
_ID_CAPACITY = 100_000
#: Key lists up to this long are looked up by primary key one at a time (faster than a join).
_LOOP_MAX = 32
#: Key prefix of the term rows of format 1 stores (postings were edges from them).
_TERM = "\x01t:"
#: Keys of the rows whose ``value`` held the corpus counters (format 2).
_CORPUS_KEYS = ("\x00corpus.count", "\x00corpus.total_length")
#: Key of the row present while this store's facts still need corpus-list postings.
_BACKFILL_KEY = "\x00corpus.backfill"
#: Key of the row whose ``value`` is the store's format.
_FORMAT_KEY = "\x00format"
#: Key of the row whose ``value`` is the tokenizer version of the postings (Store.tokenizer).
_TOKENIZER_KEY = "\x00tokenizer"
#: The store format this code writes: 2 = postings in a PostingIndex beside the database;
#: 3 = no corpus counters (the corpus list is a posting list).
FORMAT = 3

_SCHEMA = (
    "CREATE NODE TABLE IF NOT EXISTS Doc(id STRING PRIMARY KEY, body BOOLEAN, forgotten DOUBLE,"
    " content STRING, kind STRING, agent STRING, created DOUBLE, confidence DOUBLE,"
    " metadata STRING, subject STRING, supersedes STRING, length INT64, value INT64,"
    " context STRING, scope STRING, vector STRING)",
    "CREATE REL TABLE IF NOT EXISTS Supersedes(FROM Doc TO Doc)",
    # stores made before facts had a context gain the column (empty for their facts)
    "ALTER TABLE Doc ADD IF NOT EXISTS context STRING DEFAULT ''",
    # and before scopes: their facts are the hive's
    "ALTER TABLE Doc ADD IF NOT EXISTS scope STRING DEFAULT 'hive'",
    # and before vectors (memory/semantic.py): none of their facts has one
    "ALTER TABLE Doc ADD IF NOT EXISTS vector STRING DEFAULT ''",
)

_FACT_COLS = (
    "d.id, d.content, d.kind, d.agent, d.created, d.confidence, d.metadata, d.subject,"
    " d.supersedes, d.length, d.context, d.scope, d.vector"
)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return value


def _fact_row(f: Fact) -> dict[str, Any]:
    try:
        metadata = json.dumps(f.metadata, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"metadata of fact {f.id} is not JSON: {exc}") from None
    return {
        "id": f.id,
        "content": f.content,
        "kind": Kind.parse(f.kind).value,
        "agent": f.agent,
        "created": float(f.created),
        "confidence": float(f.confidence),
        "metadata": metadata,
        "subject": f.subject,
        "supersedes": f.supersedes,
        "length": int(f.length),
        "context": f.context,
        "scope": f.scope,
        # base64, as on the wire ('' for none): a fact's vector is read only with its body
        "vector": encode_bytes(f.vector) if f.vector is not None else "",
    }


def _discarded(postings: Path) -> Path:
    """Where :meth:`KuzuStore.reset_index` moves a posting index before removing it."""
    return postings.with_name(postings.name + ".old")


def _identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _fact_from(row: Sequence[Any]) -> Fact:
    return Fact(
        id=row[0],
        content=row[1],
        kind=Kind(row[2]),
        agent=row[3],
        created=row[4],
        confidence=row[5],
        metadata=json.loads(row[6]) if row[6] else {},
        subject=row[7],
        supersedes=row[8],
        length=row[9],
        context=row[10] or "",
        scope=row[11] or HIVE,
        vector=decode_vector(row[12]) if row[12] else None,
    )


def _posting_from(row: Sequence[Any]) -> Posting:
    """A posting read from a format 1 store's edges."""
    return Posting(row[0][len(_TERM) :], row[1], row[2], row[3], row[4], row[5])


def _chunks(items: Sequence[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), CHUNK):
        yield list(items[start : start + CHUNK])


class KuzuStore:
    """One agent's records in one Kuzu database at ``path`` (a file; its parent is created)."""

    def __init__(
        self,
        path: str | Path,
        *,
        buffer_pool_mb: int = 256,
        max_db_size_mb: int = 4096,
        engine: str = "kuzu",
        max_threads: int = 1,
    ) -> None:
        self.path = Path(path)
        self.buffer_pool_mb = _positive_int("buffer_pool_mb", buffer_pool_mb)
        self.max_db_size_mb = _positive_int("max_db_size_mb", max_db_size_mb)
        if max_db_size_mb < 8 or max_db_size_mb & (max_db_size_mb - 1):
            raise InvalidInputError(
                f"max_db_size_mb must be a power of two of at least 8, got {max_db_size_mb}"
            )
        threads = _positive_int("max_threads", max_threads)
        module = load_engine(engine)
        self._lock = threading.Lock()
        self._prepared: dict[str, Any] = {}
        self._column_cache: dict[str, Columns] = {}
        self._cached_columns = 0
        self._db: Any = None
        self._conn: Any = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the directory of {self.path}: {exc}") from None
        with engine_errors(f"opening the store at {self.path}"):
            # max_db_size is explicit: the default reserves 8 TB of address space per database.
            db = module.Database(
                str(self.path),
                buffer_pool_size=buffer_pool_mb * 2**20,
                max_db_size=max_db_size_mb * 2**20,
                max_num_threads=threads,
            )
            try:
                conn = module.Connection(db, num_threads=threads)
                for statement in _SCHEMA:
                    conn.execute(statement)
            except BaseException:
                db.close()
                raise
        self._db, self._conn = db, conn
        #: The database file this store opened: :meth:`check` notices it deleted or replaced
        #: under the open store (writes would go on into an unlinked file).
        self._identity = _identity(self.path)
        #: Ids with a row / with a body / with a tombstone (and its time): writes consult
        #: these instead of reading before they write.
        self._known = BloomFilter.for_capacity(_ID_CAPACITY)
        self._fact_count = 0
        self._tombs: dict[str, float] = {}
        #: [size, total length] of each corpus list (one per scope) asked for, read once,
        #: then kept by every write (every recall asks: rebuilding it is O(facts))
        self._corpus_stats: dict[str, list[float]] = {}
        try:
            with engine_errors(f"opening the store at {self.path}"):
                self._load_ids()
            postings = self.path.with_name(self.path.name + ".postings")
            # what a reset_index that stopped part way set aside (nothing reads it)
            shutil.rmtree(_discarded(postings), ignore_errors=True)
            self._index = PostingIndex(postings, dead=self._tombs)
            self._upgrade()
        except BaseException:
            conn.close()
            db.close()
            self._conn = self._db = None
            raise
        logger.debug("opened %s store at %s", engine, self.path)

    def _load_ids(self, capacity: int = _ID_CAPACITY) -> None:
        """Read which ids have a row (into a Bloom filter), how many bodies there are, and
        the tombstones (at open, when the filter is full, and after a failed write
        transaction, whose changes Kuzu has rolled back). Rows are streamed: a list of a
        million rows would cost a few hundred MB that the allocator keeps afterwards."""
        with engine_errors(f"query on {self.path}"):
            count = self._conn.execute("MATCH (d:Doc) RETURN count(d)").get_next()[0]
            capacity = max(capacity, 2 * int(count))
            known = BloomFilter.for_capacity(capacity)
            tombs: dict[str, float] = {}
            bodies = 0
            result = self._conn.execute("MATCH (d:Doc) RETURN d.id, d.body, d.forgotten")
            while result.has_next():
                fid, body, forgotten = result.get_next()
                known.add(fid)
                bodies += bool(body)
                if forgotten is not None:
                    tombs[fid] = forgotten
        self._known, self._fact_count, self._tombs = known, bodies, tombs
        self._capacity = capacity
        logger.debug("store at %s: %d ids, filter for %d", self.path, count, capacity)

    def _add_known(self, ids: Iterable[str]) -> None:
        for i in ids:
            self._known.add(i)
        if len(self._known) > self._capacity:
            self._load_ids(2 * self._capacity)  # a bigger filter: its false positives stay rare

    def _docs(self, ids: Iterable[str]) -> dict[str, tuple[bool, float | None]]:
        """Per id with a row here: (has a body, tombstone time or None). Ids the filter has
        never seen are not looked up."""
        maybe = [i for i in dict.fromkeys(ids) if i in self._known]
        rows = self._by_key("MATCH (d:Doc {id: $key}) RETURN d.id, d.body, d.forgotten", maybe)
        return {row[0]: (bool(row[1]), row[2]) for row in rows}

    def _upgrade(self) -> None:
        """Bring a store of an older format to :data:`FORMAT`; refuse a newer one."""
        version = self._get_meta(_FORMAT_KEY)
        if version is not None and version > FORMAT:
            raise StorageError(
                f"the store at {self.path} has format {version}; this version of "
                f"amplihack-hive reads up to {FORMAT}. Upgrade amplihack-hive."
            )
        if version == FORMAT:
            return
        if self._fact_count:
            # formats 1 and 2 counted the corpus; its facts go on the corpus list once
            self._run(
                "MERGE (d:Doc {id: $key}) ON CREATE SET d.body = false, d.value = 1",
                {"key": _BACKFILL_KEY},
            )
            self._add_known([_BACKFILL_KEY])
        self._run("MATCH (d:Doc) WHERE d.id IN $keys DELETE d", {"keys": list(_CORPUS_KEYS)})
        tables = {row[1] for row in self._rows("CALL show_tables() RETURN *")}
        if "Posts" in tables:
            # format 1: postings were edges from term rows; move them into the index
            rows = self._rows(
                "MATCH (t:Doc)-[p:Posts]->(d:Doc) RETURN t.id, d.id, p.tf, p.length,"
                " p.created, p.subject"
            )
            self._index.put([_posting_from(r) for r in rows])
            self._run("DROP TABLE Posts", {})
            self._run("MATCH (d:Doc) WHERE starts_with(d.id, $p) DELETE d", {"p": _TERM})
            logger.info("store at %s: moved %d postings to its posting index", self.path, len(rows))
        self._set_meta(_FORMAT_KEY, FORMAT)

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _open(self) -> Iterator[None]:
        """Hold the connection's lock; StorageError if the store is closed."""
        with self._lock:
            if self._conn is None:
                raise StorageError(f"the store at {self.path} is closed")
            yield

    def _rows(self, query: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        with engine_errors(f"query on {self.path}"):
            if params:
                stmt = self._prepared.get(query)
                if stmt is None:
                    stmt = self._prepared[query] = self._prepare(query)
                return list(self._conn.execute(stmt, params).get_all())
            return list(self._conn.execute(query, params or {}).get_all())

    def _prepare(self, query: str) -> Any:
        """Every parameterised statement is prepared once and reused (the query texts are
        constants of this module): primary-key lookups run thousands of times (recall p50
        on a 20-agent hive 21 -> 10 ms, measured), and a batch's ``UNWIND ... CREATE`` of
        75 bodies costs 6.7 ms prepared against 12.3 ms re-planned (Kuzu 0.11.3).
        Kuzu 0.11 marks prepare() deprecated in favour of execute(str), which prepares on
        every call; fall back to the query text if an engine no longer offers it."""
        prepare = getattr(self._conn, "prepare", None)
        if prepare is None:
            return query
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return prepare(query)

    def _run(self, query: str, params: dict[str, Any]) -> None:
        self._rows(query, params)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction: all of the block's statements commit, or none do."""
        self._run("BEGIN TRANSACTION", {})
        try:
            yield
        except BaseException:
            # Kuzu has already rolled back when one of the statements failed.
            with suppress(RuntimeError):
                self._conn.execute("ROLLBACK")
            self._load_ids()  # the in-memory id sets may hold ids of the rolled-back rows
            raise
        self._run("COMMIT", {})

    def _by_key(self, body: str, keys: Iterable[str]) -> list[list[Any]]:
        """Run ``body`` (which uses ``$key``) for each key: by primary-key lookups when there
        are few keys, else as one UNWIND join per chunk."""
        unique = list(dict.fromkeys(keys))
        if len(unique) <= _LOOP_MAX:
            return [row for key in unique for row in self._rows(body, {"key": key})]
        joined = "UNWIND $keys AS key_ " + body.replace("$key", "key_")
        return [row for part in _chunks(unique) for row in self._rows(joined, {"keys": part})]

    def _ensure_docs(self, ids: Iterable[str]) -> None:
        """Make a (bodiless) row for each id that has none."""
        wanted = list(dict.fromkeys(ids))
        have = self._docs(wanted)
        missing = [i for i in wanted if i not in have]
        for part in _chunks(missing):
            self._run("UNWIND $keys AS k CREATE (:Doc {id: k, body: false})", {"keys": part})
        self._add_known(missing)

    # -- facts ----------------------------------------------------------------------------

    def put_facts(self, facts: Sequence[Fact]) -> list[bool]:
        rows = [_fact_row(f) for f in facts]
        with self._open():
            known = self._docs(f.id for f in facts)
            out, new = [], {}
            for f, row in zip(facts, rows, strict=True):
                body, forgotten = known.get(f.id, (False, None))
                fresh = not body and forgotten is None and f.id not in new
                if fresh:
                    new[f.id] = row
                out.append(fresh)
            if not new:
                return out
            created = [r for i, r in new.items() if i not in known]
            placeholders = [r for i, r in new.items() if i in known]
            pairs = [
                {"a": i, "b": r["supersedes"]}
                for i, r in new.items()
                if r["supersedes"] and r["supersedes"] != i
            ]
            with self._transaction():
                for part in _chunks(created):
                    self._run(
                        "UNWIND $rows AS r CREATE (:Doc {id: r.id, body: true,"
                        " content: r.content, kind: r.kind, agent: r.agent, created: r.created,"
                        " confidence: r.confidence, metadata: r.metadata, subject: r.subject,"
                        " supersedes: r.supersedes, length: r.length, context: r.context,"
                        " scope: r.scope, vector: r.vector})",
                        {"rows": part},
                    )
                for part in _chunks(placeholders):
                    self._run(
                        "UNWIND $rows AS r MATCH (d:Doc {id: r.id}) SET d.body = true,"
                        " d.content = r.content, d.kind = r.kind, d.agent = r.agent,"
                        " d.created = r.created, d.confidence = r.confidence,"
                        " d.metadata = r.metadata, d.subject = r.subject,"
                        " d.supersedes = r.supersedes, d.length = r.length,"
                        " d.context = r.context, d.scope = r.scope, d.vector = r.vector",
                        {"rows": part},
                    )
                self._add_known(new)
                self._ensure_docs([pair["b"] for pair in pairs])
                for part in _chunks(pairs):
                    self._run(
                        "UNWIND $rows AS r MERGE (a:Doc {id: r.a}) MERGE (b:Doc {id: r.b})"
                        " CREATE (a)-[:Supersedes]->(b)",
                        {"rows": part},
                    )
            self._fact_count += len(new)
        return out

    def get_facts(self, ids: Sequence[str]) -> dict[str, Fact]:
        with self._open():
            held = [i for i in ids if i in self._known]
            rows = self._by_key(
                f"MATCH (d:Doc {{id: $key}}) WHERE d.body RETURN {_FACT_COLS}", held
            )
        found = {row[0]: _fact_from(row) for row in rows}
        return {i: found[i] for i in ids if i in found}

    def relations(self, fact_id: str) -> list[tuple[str, str]]:
        """Edges between facts stored here: ("supersedes", id) and ("superseded_by", id)."""
        both = " WHERE a.body AND b.body RETURN b.id"
        with self._open():
            out = self._rows(
                "MATCH (a:Doc {id: $key})-[:Supersedes]->(b:Doc)" + both, {"key": fact_id}
            )
            into = self._rows(
                "MATCH (a:Doc {id: $key})<-[:Supersedes]-(b:Doc)" + both, {"key": fact_id}
            )
        return sorted([("supersedes", r[0]) for r in out] + [("superseded_by", r[0]) for r in into])

    def fact_ids(self) -> list[str]:
        with self._open():
            return [row[0] for row in self._rows("MATCH (d:Doc) WHERE d.body RETURN d.id")]

    def fact_count(self) -> int:
        with self._open():
            return self._fact_count

    # -- postings -------------------------------------------------------------------------

    def put_postings(self, postings: Sequence[Posting]) -> None:
        last = {(p.term, p.fact_id): p for p in postings}  # the last write wins
        with self._open():
            live = [p for p in last.values() if p.fact_id not in self._tombs]
            if live:
                self._forget_cached({p.term for p in live})
                delta: dict[str, list[float]] = {}
                for p in live:
                    if p.term in self._corpus_stats:
                        old = self._index.lookup(p.term, p.fact_id)
                        d = delta.setdefault(p.term, [0.0, 0.0])
                        d[0] += old is None
                        d[1] += field_sum(p.length, p.ctx_length) - (
                            field_sum(old[1], old[5]) if old is not None else 0
                        )
                self._index.put(live)
                self._corpus_add(delta)

    def postings(self, terms: Sequence[str]) -> dict[str, list[Posting]]:
        with self._open():
            return {t: self._index.term(t) for t in terms}

    def columns(self, terms: Sequence[str]) -> dict[str, Columns]:
        """The posting lists of ``terms`` as arrays. Owners read the same terms again and
        again, so lists are kept here (a bounded cache, emptied whole when full, and kept
        exact by every write: writes drop the terms they touch)."""
        out: dict[str, Columns] = {}
        with self._open():
            for t in terms:
                cols = self._column_cache.get(t)
                if cols is None:
                    cols = Columns.of(self._index.term(t))
                    if self._cached_columns + len(cols) > POSTING_CACHE:
                        self._column_cache.clear()
                        self._cached_columns = 0
                    if len(cols) <= POSTING_CACHE:
                        self._column_cache[t] = cols
                        self._cached_columns += len(cols)
                out[t] = cols
        return out

    def term_stats(self, term: str) -> tuple[int, float]:
        with self._open():
            kept = self._corpus_stats.get(term)
            if kept is not None:
                return int(kept[0]), kept[1]
            postings = self._index.term(term)
            total = math.fsum(field_sum(p.length, p.ctx_length) for p in postings)
            if is_corpus_key(term):
                self._corpus_stats[term] = [len(postings), total]
            return len(postings), total

    def _corpus_loss(
        self, fact_ids: set[str], lists: Iterable[str] | None = None
    ) -> dict[str, list[float]]:
        """What the corpus lists kept (of ``lists``, else all) lose when the postings of
        ``fact_ids`` on them go."""
        delta: dict[str, list[float]] = {}
        for key in self._corpus_stats if lists is None else lists:
            if key not in self._corpus_stats:
                continue
            for fid in fact_ids:
                old = self._index.lookup(key, fid)
                if old is not None:
                    d = delta.setdefault(key, [0.0, 0.0])
                    d[0] -= 1
                    d[1] -= field_sum(old[1], old[5])
        return delta

    def _corpus_add(self, delta: dict[str, list[float]]) -> None:
        for key, (count, total) in delta.items():
            kept = self._corpus_stats[key]
            kept[0] += count
            kept[1] += total

    def _forget_cached(self, terms: Iterable[str] | None = None) -> None:
        if terms is None:
            self._column_cache.clear()
            self._cached_columns = 0
            return
        for t in terms:
            cols = self._column_cache.pop(t, None)
            if cols is not None:
                self._cached_columns -= len(cols)

    def posting_count(self) -> int:
        with self._open():
            return self._index.count()

    def posting_keys(self) -> list[tuple[str, str]]:
        with self._open():
            return self._index.keys()

    def postings_by_key(self, keys: Sequence[tuple[str, str]]) -> list[Posting]:
        wanted = set(keys)
        found = self.postings(sorted({term for term, _ in wanted}))
        return [p for plist in found.values() for p in plist if (p.term, p.fact_id) in wanted]

    def drop(self, fact_ids: Sequence[str], posting_keys: Sequence[tuple[str, str]]) -> None:
        with self._open():
            held = [i for i, (body, _) in self._docs(fact_ids).items() if body]
            if held:
                with self._transaction():
                    # keep the row (it may be a Supersedes end), drop the body
                    for part in _chunks(held):
                        self._run(
                            "UNWIND $keys AS k MATCH (d:Doc {id: k}) SET d.body = false,"
                            " d.content = NULL, d.metadata = NULL",
                            {"keys": part},
                        )
                self._fact_count -= len(held)
            if posting_keys:
                self._forget_cached({t for t, _ in posting_keys})
                corpus = [(t, f) for t, f in posting_keys if t in self._corpus_stats]
                delta = self._corpus_loss({f for _, f in corpus}, {t for t, _ in corpus})
                self._index.drop(posting_keys)
                self._corpus_add(delta)

    # -- tombstones -----------------------------------------------------------------------

    def forget(self, tombstones: Sequence[Tombstone]) -> list[bool]:
        with self._open():
            if not tombstones:
                return []
            ids = [t.fact_id for t in tombstones]
            self._forget_cached()  # the facts' postings may be under any term
            known = self._docs(ids)
            at = {i: self._tombs[i] for i in ids if i in self._tombs}
            for t in tombstones:
                at[t.fact_id] = max(float(t.at), at.get(t.fact_id, float(t.at)))
            out, seen = [], set()
            for i in ids:
                out.append(known.get(i, (False, None))[0] and i not in seen)
                seen.add(i)
            rows = [{"id": i, "at": when} for i, when in at.items()]
            with self._transaction():
                # The row goes with its edges; a tombstone row replaces it.
                for part in _chunks([i for i in at if i in known]):
                    self._run(
                        "UNWIND $keys AS k MATCH (d:Doc {id: k}) DETACH DELETE d", {"keys": part}
                    )
                for part in _chunks(rows):
                    self._run(
                        "UNWIND $rows AS r CREATE (:Doc {id: r.id, body: false, forgotten: r.at})",
                        {"rows": part},
                    )
            self._add_known(at)
            self._fact_count -= sum(1 for i in at if known.get(i, (False, None))[0])
            delta = self._corpus_loss({i for i in at if i not in self._tombs})
            self._tombs.update(at)
            self._corpus_add(delta)
            # after the tombstones are durable, so a crash in between cannot bring a
            # forgotten fact's postings back (the index's dead set is rebuilt from them)
            self._index.kill(at)
        return out

    def tombstoned(self, ids: Sequence[str]) -> set[str]:
        with self._open():
            return {i for i in ids if i in self._tombs}

    def tombstones(self) -> list[Tombstone]:
        with self._open():
            return [Tombstone(i, at) for i, at in self._tombs.items()]

    # -- health -----------------------------------------------------------------------------

    def check(self) -> str | None:
        """Why this store can no longer be trusted with writes, or None: its database file
        deleted or replaced under it, its posting index gone or latched after a failed
        write. Cheap (two ``stat`` calls): agents call it every second."""
        if self._conn is None:
            return None
        try:
            identity = _identity(self.path)
        except FileNotFoundError:
            return f"its database file {self.path.name} is gone"
        if identity != self._identity:
            return f"its database file {self.path.name} was replaced under it"
        if self._index.broken is not None:
            return f"its posting index failed ({self._index.broken})"
        if not self._index.dir.is_dir():
            return f"its posting index {self._index.dir.name} is gone"
        return None

    # -- corpus list of an older store -----------------------------------------------------

    def pending_corpus(self) -> list[Posting]:
        with self._open():
            if not self._rows("MATCH (d:Doc {id: $key}) RETURN d.id", {"key": _BACKFILL_KEY}):
                return []
            rows = self._rows("MATCH (d:Doc) WHERE d.body RETURN d.id, d.length")
        return [Posting(CORPUS_TERM, str(fid), 1, int(n or 0), 0.0, None) for fid, n in rows]

    def corpus_done(self) -> None:
        with self._open():
            self._run("MATCH (d:Doc {id: $key}) DELETE d", {"key": _BACKFILL_KEY})

    # -- tokenizer version of the postings ---------------------------------------------------

    def tokenizer(self) -> int | None:
        with self._open():
            return self._get_meta(_TOKENIZER_KEY)

    def _get_meta(self, key: str) -> int | None:
        found = self._rows("MATCH (d:Doc {id: $key}) RETURN d.value", {"key": key})
        return int(found[0][0]) if found and found[0][0] is not None else None

    def set_tokenizer(self, version: int) -> None:
        with self._open():
            self._set_meta(_TOKENIZER_KEY, version)

    def _set_meta(self, key: str, value: int) -> None:
        self._run(
            "MERGE (d:Doc {id: $key}) ON CREATE SET d.body = false, d.value = $v"
            " ON MATCH SET d.value = $v",
            {"key": key, "v": value},
        )
        self._add_known([key])

    def reset_index(self) -> None:
        with self._open():
            # recorded first: a rebuild that stops part way leaves a store that says so
            self._set_meta(_TOKENIZER_KEY, REINDEXING)
            self._run("MATCH (d:Doc {id: $key}) DELETE d", {"key": _BACKFILL_KEY})
            directory = self._index.dir
            old = _discarded(directory)
            self._index.close()
            try:
                # renamed whole first (atomic): a reset that stops part way leaves the old
                # index under a name nothing reads, never a half-deleted one
                shutil.rmtree(old, ignore_errors=True)
                os.replace(directory, old)
                fsync_dir(directory.parent)
            except OSError as exc:
                raise StorageError(
                    f"cannot set the posting index {directory} aside: {exc}"
                ) from None
            self._index = PostingIndex(directory, dead=self._tombs)
            self._forget_cached()
            self._corpus_stats = {}
            shutil.rmtree(old, ignore_errors=True)  # else removed at the next open

    # -- whole shard ----------------------------------------------------------------------

    def export(self) -> ShardExport:
        with self._open():
            facts = self._rows(f"MATCH (d:Doc) WHERE d.body RETURN {_FACT_COLS}")
            postings = self._index.all()
            tombs = [Tombstone(i, at) for i, at in self._tombs.items()]
        return ShardExport(
            facts=[_fact_from(row) for row in facts],
            postings=postings,
            tombstones=tombs,
        )

    def import_(self, data: ShardExport) -> None:
        merge_into(self, data)

    def close(self) -> None:
        with self._lock:
            conn, db = self._conn, self._db
            self._conn = self._db = None
            if conn is None:
                return
            self._index.close()
            with engine_errors(f"closing the store at {self.path}"):
                conn.close()
                db.close()
        logger.debug("closed store at %s", self.path)

    def __enter__(self) -> KuzuStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"KuzuStore({str(self.path)!r}, {state})"
