"""The memory protocol's messages: one request type and one reply type per operation, and
the one encoder between them and the wire.

Coordinators, repair and the agent build these objects and read their attributes; the
node answers them (:meth:`~amplihack_hive.memory.node.MemoryNode.answer`); only the
transports and the node's wire entry (:meth:`MemoryNode.handle`) meet the JSON form, through
:func:`encode`, :func:`decode_request` and :func:`decode_reply` here. So a field is named,
typed and validated in one place, not read by key or by position in several modules.

The wire form is unchanged from the dict messages it replaces (``{"op": "put", "facts":
[...], "postings": [[term, id, tf, length, created, subject], ...]}`` and so on), so agents
of the two versions understand each other during a rolling update. Dataclasses, not
msgspec or pydantic: the messages are few and small, their hot parts (posting rows, the
postings' columns) already have compact encodings in :mod:`~amplihack_hive.memory.records`
and :mod:`~amplihack_hive.memory.index`, and the standard library keeps the agent's imports
as they are.

Decoding is also validation: a malformed request raises :class:`InvalidInputError` with
what was wrong (an agent answers 400), never a KeyError from deep inside a handler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, ClassVar, TypeVar

from amplihack_hive.errors import InvalidInputError
from amplihack_hive.memory.records import (
    Fact,
    Posting,
    ShardExport,
    Tombstone,
    check_fact_id,
    decode_vector,
    encode_bytes,
)
from amplihack_hive.memory.scopes import HIVE, KEY_SEP, is_corpus_key
from amplihack_hive.memory.text import check_tokenizer

Wire = dict[str, Any]
T = TypeVar("T")
#: Most records accepted in one request; a coordinator batches below this.
MAX_BATCH = 50_000
#: How the op of a write that carries scoped records ends ("put+scopes"): facts outside
#: the hive scope, postings of a scope's lists. Agents from before scopes do not know the
#: op and refuse it (400) where they would store such a record as the hive's (they drop
#: the fact's scope and place its lists by their own keys): the write goes to another
#: replica and waits there (a hint) until they are upgraded. Reads that return records
#: (repair_get, export) say in ``scopes`` that the asker knows them; to one that does not
#: say so, an agent refuses to send scoped records.
SCOPED_OP = "+scopes"
_TERM = attrgetter("term")


def holds_scoped(facts: list[Fact], postings: list[Posting]) -> bool:
    """Whether any of these records is scoped (what an agent before scopes would
    widen)."""
    if any(f.scope != HIVE for f in facts):
        return True
    # is_scoped_key over every term, in one pass in C: a write carries thousands of them
    return KEY_SEP in "\x00".join(map(_TERM, postings))


def for_asker(request: Export | RepairGet, shard: ShardExport) -> ShardExport:
    """``shard`` as the answer to ``request``, unless it holds scoped records and the
    asker does not know scopes (InvalidInputError saying so: its repair logs it and tries
    again after the upgrade)."""
    if not request.scopes and holds_scoped(shard.facts, shard.postings):
        peer = (request.peer if isinstance(request, RepairGet) else "") or "the asker"
        raise InvalidInputError(
            f"{peer} does not know scopes and these records include scoped ones, which it "
            "would store as the hive's: upgrade it"
        )
    return shard


# -- reading wire values -------------------------------------------------------------------


def _list(m: Wire, key: str, *, bounded: bool = False) -> list[Any]:
    """List field ``key`` (missing or null: empty). ``bounded``: at most MAX_BATCH items,
    for the batches a coordinator sends (it splits below that); repair's shards and
    listings are bounded by the body size only, as repair sends them whole."""
    value = m.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInputError(f"field {key!r} must be a list")
    if bounded and len(value) > MAX_BATCH:
        raise InvalidInputError(f"field {key!r} holds more than {MAX_BATCH} items")
    return value


def _each(m: Wire, key: str, read: Callable[[Any], T], *, bounded: bool = False) -> list[T]:
    """Every item of list field ``key`` read by ``read``; a bad item names the field."""
    out: list[T] = []
    for item in _list(m, key, bounded=bounded):
        try:
            out.append(read(item))
        except InvalidInputError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise InvalidInputError(f"malformed item in {key!r}: {exc!r}") from None
    return out


def _map(m: Wire, key: str) -> dict[str, Any] | None:
    value = m.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInputError(f"field {key!r} must be an object")
    return value


def _str(m: Wire, key: str, default: str | None = None) -> str:
    value = m.get(key, default)
    if not isinstance(value, str):
        raise InvalidInputError(f"field {key!r} must be a string")
    return value


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise InvalidInputError(f"{what} must be an integer")
    return int(value)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{what} must be a number")
    return float(value)


def _fact(d: Any) -> Fact:
    if not isinstance(d, dict):
        raise InvalidInputError("a fact must be an object")
    fact = Fact.from_dict(d)
    check_fact_id(fact.id)
    return fact


def _posting(v: Any) -> Posting:
    if not isinstance(v, list) or len(v) not in (6, 8, 9):
        raise InvalidInputError(
            "a posting is [term, id, tf, length, created, subject(, ctx tf, ctx length(, vector))]"
        )
    posting = Posting.from_list(v)
    check_fact_id(posting.fact_id)
    return posting


def _tombstone(v: Any) -> Tombstone:
    if not isinstance(v, list) or len(v) != 2:
        raise InvalidInputError("a tombstone is [id, at]")
    tomb = Tombstone.from_list(v)
    check_fact_id(tomb.fact_id)
    return tomb


def _shard(m: Wire, key: str = "shard") -> ShardExport:
    d = m.get(key)
    if not isinstance(d, dict):
        raise InvalidInputError(f"field {key!r} must be an object")
    return ShardExport(
        facts=_each(d, "facts", _fact),
        postings=_each(d, "postings", _posting),
        tombstones=_each(d, "tombstones", _tombstone),
    )


#: Bits of the record hashes repair buckets are prefixes of.
HASH_BITS = 64


def _prefix(bits: int, prefix: int) -> tuple[int, int]:
    if not 0 <= bits <= HASH_BITS or not 0 <= prefix < 1 << bits:
        raise InvalidInputError(f"bucket ({bits}, {prefix}) is out of range")
    return bits, prefix


def _bucket(v: Any) -> tuple[int, int]:
    if not isinstance(v, list) or len(v) != 2:
        raise InvalidInputError("a bucket is [bits, prefix]")
    return _prefix(_int(v[0], "bucket bits"), _int(v[1], "bucket prefix"))


def _digest(v: Any) -> tuple[int, int, int, int]:
    if not isinstance(v, list) or len(v) != 4:
        raise InvalidInputError("a bucket digest is [bits, prefix, count, xor]")
    bits, prefix, count, x = (_int(x, "a bucket digest's value") for x in v)
    _prefix(bits, prefix)
    return bits, prefix, count, x


def _tokenizer(m: Wire) -> int:
    """The tokenizer a request's terms come from; absent means 1 (what every agent used
    before versions existed), so agents of both kinds mix in a rolling update."""
    return check_tokenizer(m.get("tokenizer", 1))


# -- the messages ----------------------------------------------------------------------------


@dataclass
class Reply:
    """What every reply carries besides its fields: the epoch of the ring the answering
    agent routes by (over HTTP, from a header; not part of the body)."""

    epoch: str | None = field(default=None, kw_only=True, compare=False)

    def to_wire(self) -> Wire:
        raise NotImplementedError

    @classmethod
    def from_wire(cls, m: Wire) -> Reply:
        raise NotImplementedError


@dataclass(frozen=True)
class Request:
    #: the operation's name on the wire
    op: ClassVar[str]
    #: its reply's type
    reply: ClassVar[type[Reply]]
    #: whether it changes the store (repair's cached listing is invalidated by it), and
    #: whether a client's coordinator sends it (the others come from repair)
    writes: ClassVar[bool] = False
    client_write: ClassVar[bool] = False
    #: refused while the node rebuilds its replicas (its answer would be partial)
    reads: ClassVar[bool] = False

    def fields(self) -> Wire:
        return {}

    @classmethod
    def from_fields(cls, m: Wire) -> Request:
        return cls()


@dataclass(frozen=True)
class Indexed(Request):
    """A request whose terms or postings come from one tokenizer (memory/text.py): the
    agent refuses it unless its own postings are of the same (node.py). ``tokenizer`` is
    required (a request built without one is a TypeError, never one of version 1 by
    default); on the wire it is left out when it is 1, as agents before versions sent it."""

    tokenizer: int = field(kw_only=True)


# data operations


@dataclass
class PutReply(Reply):
    #: per fact, whether it was new to this store
    inserted: list[bool]
    #: ids of facts or postings refused because this store holds their tombstone
    tombstoned: list[str]

    def to_wire(self) -> Wire:
        return {"inserted": self.inserted, "tombstoned": self.tombstoned}

    @classmethod
    def from_wire(cls, m: Wire) -> PutReply:
        return cls(
            [bool(x) for x in _list(m, "inserted")], [str(x) for x in _list(m, "tombstoned")]
        )


@dataclass(frozen=True)
class Put(Indexed):
    op = "put"
    reply = PutReply
    writes = True
    client_write = True
    facts: list[Fact] = field(default_factory=list)
    postings: list[Posting] = field(default_factory=list)
    #: ``postings`` in their wire form, one row per posting in the same order, when the
    #: sender built them already: a coordinator sends each posting to R owners and builds
    #: its row once (Posting.to_list was an eighth of a learning client's CPU)
    rows: list[list[Any]] | None = field(default=None, compare=False, repr=False)
    #: likewise ``facts`` in their wire form (each fact goes to R owners; Fact.to_dict was
    #: 7% of a learning client's CPU)
    fact_rows: list[dict[str, Any]] | None = field(default=None, compare=False, repr=False)

    def fields(self) -> Wire:
        rows = self.rows
        if rows is None or len(rows) != len(self.postings):
            rows = [p.to_list() for p in self.postings]
        facts = self.fact_rows
        if facts is None or len(facts) != len(self.facts):
            facts = [f.to_dict() for f in self.facts]
        return {"facts": facts, "postings": rows}

    @classmethod
    def from_fields(cls, m: Wire) -> Put:
        return cls(
            _each(m, "facts", _fact, bounded=True),
            _each(m, "postings", _posting, bounded=True),
            tokenizer=_tokenizer(m),
        )


@dataclass
class PostingsReply(Reply):
    #: term -> a page of its list as columns (:func:`~amplihack_hive.memory.index.from_wire`)
    lists: dict[str, dict[str, Any]]

    def to_wire(self) -> Wire:
        return {"lists": self.lists}

    @classmethod
    def from_wire(cls, m: Wire) -> PostingsReply:
        lists = _map(m, "lists") or {}
        return cls({str(t): cols for t, cols in lists.items()})


@dataclass(frozen=True)
class Postings(Indexed):
    """Pages of posting lists: per term the next ``limit`` postings in (impact desc, fact
    id) order after ``after[term]`` (a cursor from the last page), or with ``only`` the
    postings of the given facts."""

    op = "postings"
    reply = PostingsReply
    reads = True
    terms: list[str] = field(default_factory=list)
    avgdl: float = 1.0
    limit: int | None = None
    after: dict[str, tuple[float, str]] | None = None
    only: dict[str, list[str]] | None = None

    def fields(self) -> Wire:
        m: Wire = {"terms": self.terms, "avgdl": self.avgdl}
        if self.only is not None:
            m["only"] = self.only
        else:
            m["limit"] = self.limit
        if self.after:
            m["after"] = {t: list(c) for t, c in self.after.items()}
        return m

    @classmethod
    def from_fields(cls, m: Wire) -> Postings:
        limit = m.get("limit")
        after = _map(m, "after")
        only = _map(m, "only")
        cursors: dict[str, tuple[float, str]] | None = None
        if after:
            cursors = {}
            for term, c in after.items():
                if not isinstance(c, list) or len(c) != 2:
                    raise InvalidInputError("a cursor is [impact, fact id]")
                cursors[str(term)] = (_number(c[0], "a cursor's impact"), str(c[1]))
        return cls(
            terms=[str(t) for t in _list(m, "terms", bounded=True)],
            avgdl=_number(m.get("avgdl") or 1.0, "avgdl"),
            limit=None if limit is None else _int(limit, "limit"),
            after=cursors,
            only=None if only is None else {str(t): [str(i) for i in _list(only, t)] for t in only},
            tokenizer=_tokenizer(m),
        )


@dataclass
class VectorsReply(Reply):
    """Per vector list asked for (memory/semantic.py): its best postings for the query,
    best first (ties to the smaller id), as columns ``ids``, ``scores``, ``created``,
    ``subjects``; asked with no query, every posting of the list with ``tf``, ``length``
    and ``vectors`` (base64 float16) too."""

    lists: dict[str, dict[str, list[Any]]]

    def to_wire(self) -> Wire:
        return {"lists": self.lists}

    @classmethod
    def from_wire(cls, m: Wire) -> VectorsReply:
        lists = _map(m, "lists") or {}
        out: dict[str, dict[str, list[Any]]] = {}
        for key, cols in lists.items():
            if not isinstance(cols, dict):
                raise InvalidInputError("a vector list is an object of columns")
            ids = _list(cols, "ids")
            got = {c: _list(cols, c) for c in VECTOR_COLUMNS if c in cols}
            if any(len(v) != len(ids) for v in got.values()):
                raise InvalidInputError("a vector list's columns differ in length")
            out[str(key)] = {"ids": [str(i) for i in ids], **got}
        return cls(out)


#: The columns of a vector list in a VectorsReply besides its ids.
VECTOR_COLUMNS = ("scores", "created", "subjects", "tf", "length", "vectors")
#: The most postings a Vectors request may ask for per list.
MAX_VECTOR_K = 1000


@dataclass(frozen=True)
class Vectors(Request):
    """The ``k`` postings of each vector list ``keys`` nearest to ``query`` (float32 bytes
    of a unit vector, base64 on the wire), scored exactly by cosine from the stored values
    (vectors.similarity); with no query, every posting of the lists, vectors included (to
    read the centroids, and to re-file vectors under new ones), ``k`` at a time by id after
    ``after[key]``."""

    op = "vectors"
    reply = VectorsReply
    reads = True
    keys: list[str] = field(default_factory=list)
    query: bytes | None = None
    k: int = 10
    after: dict[str, str] | None = None

    def fields(self) -> Wire:
        m: Wire = {"keys": self.keys, "k": self.k}
        if self.query is not None:
            m["query"] = encode_bytes(self.query)
        if self.after:
            m["after"] = self.after
        return m

    @classmethod
    def from_fields(cls, m: Wire) -> Vectors:
        k = _int(m.get("k", 10), "k")
        if not 1 <= k <= MAX_VECTOR_K:
            raise InvalidInputError(f"k must be from 1 to {MAX_VECTOR_K}, got {k}")
        query = m.get("query")
        raw = decode_vector(query, width=4) if query is not None else None
        after = _map(m, "after")
        return cls(
            [str(t) for t in _list(m, "keys", bounded=True)],
            raw,
            k,
            {str(key): str(fid) for key, fid in after.items()} if after else None,
        )


@dataclass
class FactsReply(Reply):
    facts: list[Fact]
    #: the ids asked for that this store holds a tombstone of
    tombstoned: list[str]

    def to_wire(self) -> Wire:
        return {"facts": [f.to_dict() for f in self.facts], "tombstoned": self.tombstoned}

    @classmethod
    def from_wire(cls, m: Wire) -> FactsReply:
        return cls(_each(m, "facts", _fact), [str(x) for x in _list(m, "tombstoned")])


@dataclass(frozen=True)
class Facts(Request):
    op = "facts"
    reply = FactsReply
    reads = True
    ids: list[str] = field(default_factory=list)

    def fields(self) -> Wire:
        return {"ids": self.ids}

    @classmethod
    def from_fields(cls, m: Wire) -> Facts:
        return cls(_each(m, "ids", check_fact_id, bounded=True))


@dataclass
class ForgetReply(Reply):
    #: per tombstone, whether this store held the fact
    removed: list[bool]

    def to_wire(self) -> Wire:
        return {"removed": self.removed}

    @classmethod
    def from_wire(cls, m: Wire) -> ForgetReply:
        return cls([bool(x) for x in _list(m, "removed")])


@dataclass(frozen=True)
class Forget(Indexed):
    op = "forget"
    reply = ForgetReply
    writes = True
    client_write = True
    tombstones: list[Tombstone] = field(default_factory=list)

    def fields(self) -> Wire:
        return {"tombstones": [t.to_list() for t in self.tombstones]}

    @classmethod
    def from_fields(cls, m: Wire) -> Forget:
        return cls(_each(m, "tombstones", _tombstone, bounded=True), tokenizer=_tokenizer(m))


@dataclass
class CorpusReply(Reply):
    #: facts on the corpus list this owner holds, and the sum of their lengths (contexts
    #: weighted as ranking weighs them: a whole number when no fact has a context)
    count: int
    total_length: float
    #: per corpus list asked for by key (Corpus.terms): (count, total length); None when
    #: the request named none (the hive's list, as agents before scopes asked)
    lists: dict[str, tuple[int, float]] | None = None

    def to_wire(self) -> Wire:
        m: Wire = {"count": self.count, "total_length": _whole(self.total_length)}
        if self.lists is not None:
            m["lists"] = {k: [c, _whole(t)] for k, (c, t) in self.lists.items()}
        return m

    @classmethod
    def from_wire(cls, m: Wire) -> CorpusReply:
        lists = _map(m, "lists")
        return cls(
            _int(m.get("count"), "count"),
            _number(m.get("total_length"), "total_length"),
            {str(k): (_int(v[0], "count"), _number(v[1], "total_length")) for k, v in lists.items()}
            if lists is not None
            else None,
        )


def _whole(total: float) -> float | int:
    return int(total) if total == int(total) else total


@dataclass(frozen=True)
class Corpus(Indexed):
    """Corpus lists' figures (their lengths are counted in the tokenizer's terms):
    ``terms`` names the lists by key (one per scope, memory/scopes.py); None, the hive's
    list alone (the wire form of agents before scopes)."""

    op = "corpus"
    reply = CorpusReply
    reads = True
    terms: list[str] | None = None

    def fields(self) -> Wire:
        return {} if self.terms is None else {"terms": self.terms}

    @classmethod
    def from_fields(cls, m: Wire) -> Corpus:
        if m.get("terms") is None:
            return cls(tokenizer=_tokenizer(m))
        terms = [str(t) for t in _list(m, "terms", bounded=True)]
        bad = [t for t in terms if not is_corpus_key(t)]
        if bad:
            raise InvalidInputError(f"not a corpus list: {bad[0]!r}")
        return cls(terms, tokenizer=_tokenizer(m))


# the agent and its store as a whole


@dataclass
class StatsReply(Reply):
    agent: str
    facts: int
    postings: int
    ready: bool = True
    #: records held for an owner that was down, or left after a membership change
    hints_pending: int = 0

    def to_wire(self) -> Wire:
        return {
            "agent": self.agent,
            "facts": self.facts,
            "postings": self.postings,
            "ready": self.ready,
            "hints_pending": self.hints_pending,
        }

    @classmethod
    def from_wire(cls, m: Wire) -> StatsReply:
        return cls(
            _str(m, "agent"),
            _int(m.get("facts"), "facts"),
            _int(m.get("postings"), "postings"),
            bool(m.get("ready", True)),
            _int(m.get("hints_pending", 0), "hints_pending"),
        )


@dataclass(frozen=True)
class Stats(Request):
    op = "stats"
    reply = StatsReply


@dataclass
class ExportReply(Reply):
    shard: ShardExport

    def to_wire(self) -> Wire:
        return {"shard": self.shard.to_dict()}

    @classmethod
    def from_wire(cls, m: Wire) -> ExportReply:
        return cls(_shard(m))


@dataclass(frozen=True)
class Export(Request):
    op = "export"
    reply = ExportReply
    #: the asker knows scopes (SCOPED_OP); agents before them leave it out
    scopes: bool = True

    def fields(self) -> Wire:
        return {"scopes": True} if self.scopes else {}

    @classmethod
    def from_fields(cls, m: Wire) -> Export:
        return cls(m.get("scopes") is True)


@dataclass
class ImportReply(Reply):
    ok: bool = True

    def to_wire(self) -> Wire:
        return {"ok": self.ok}

    @classmethod
    def from_wire(cls, m: Wire) -> ImportReply:
        return cls(bool(m.get("ok")))


@dataclass(frozen=True)
class Import(Indexed):
    op = "import"
    reply = ImportReply
    writes = True
    shard: ShardExport = field(default_factory=ShardExport)

    def fields(self) -> Wire:
        return {"shard": self.shard.to_dict()}

    @classmethod
    def from_fields(cls, m: Wire) -> Import:
        return cls(_shard(m), tokenizer=_tokenizer(m))


@dataclass
class PingReply(Reply):
    agent: str

    def to_wire(self) -> Wire:
        return {"agent": self.agent}

    @classmethod
    def from_wire(cls, m: Wire) -> PingReply:
        return cls(_str(m, "agent", ""))


@dataclass(frozen=True)
class Ping(Request):
    op = "ping"
    reply = PingReply


# anti-entropy (memory/repair.py): the records one agent shares with the peer asking


@dataclass
class RepairDigestReply(Reply):
    #: per bucket asked: None when this side agrees, else its 64 children's (count, xor)
    digests: list[list[tuple[int, int]] | None]

    def to_wire(self) -> Wire:
        return {"digests": [None if d is None else [list(c) for c in d] for d in self.digests]}

    @classmethod
    def from_wire(cls, m: Wire) -> RepairDigestReply:
        def one(d: Any) -> list[tuple[int, int]] | None:
            if d is None:
                return None
            return [(_int(c[0], "a count"), _int(c[1], "a digest")) for c in d]

        return cls(_each(m, "digests", one))


@dataclass(frozen=True)
class RepairDigest(Request):
    op = "repair_digest"
    reply = RepairDigestReply
    peer: str = ""
    #: (bits, prefix, count, xor) per bucket, as the asking peer sees it
    buckets: list[tuple[int, int, int, int]] = field(default_factory=list)

    def fields(self) -> Wire:
        return {"peer": self.peer, "buckets": [list(b) for b in self.buckets]}

    @classmethod
    def from_fields(cls, m: Wire) -> RepairDigest:
        return cls(_str(m, "peer", ""), _each(m, "buckets", _digest))


@dataclass
class RepairKeysReply(Reply):
    keys: list[str]

    def to_wire(self) -> Wire:
        return {"keys": self.keys}

    @classmethod
    def from_wire(cls, m: Wire) -> RepairKeysReply:
        return cls([str(k) for k in _list(m, "keys")])


@dataclass(frozen=True)
class RepairKeys(Request):
    op = "repair_keys"
    reply = RepairKeysReply
    peer: str = ""
    buckets: list[tuple[int, int]] = field(default_factory=list)

    def fields(self) -> Wire:
        return {"peer": self.peer, "buckets": [list(b) for b in self.buckets]}

    @classmethod
    def from_fields(cls, m: Wire) -> RepairKeys:
        return cls(_str(m, "peer", ""), _each(m, "buckets", _bucket))


@dataclass
class RepairGetReply(Reply):
    shard: ShardExport

    def to_wire(self) -> Wire:
        return {"shard": self.shard.to_dict()}

    @classmethod
    def from_wire(cls, m: Wire) -> RepairGetReply:
        return cls(_shard(m))


@dataclass(frozen=True)
class RepairGet(Indexed):
    op = "repair_get"
    reply = RepairGetReply
    peer: str = ""
    keys: list[str] = field(default_factory=list)
    buckets: list[tuple[int, int]] = field(default_factory=list)
    #: the asker knows scopes (SCOPED_OP); agents before them leave it out
    scopes: bool = True

    def fields(self) -> Wire:
        m: Wire = {
            "peer": self.peer,
            "keys": self.keys,
            "buckets": [list(b) for b in self.buckets],
        }
        if self.scopes:
            m["scopes"] = True
        return m

    @classmethod
    def from_fields(cls, m: Wire) -> RepairGet:
        return cls(
            _str(m, "peer", ""),
            [str(k) for k in _list(m, "keys")],
            _each(m, "buckets", _bucket),
            m.get("scopes") is True,
            tokenizer=_tokenizer(m),
        )


@dataclass
class RepairPutReply(Reply):
    #: tombstones that made this store refuse some of the records: the sender applies them
    tombstones: list[Tombstone]

    def to_wire(self) -> Wire:
        return {"tombstones": [t.to_list() for t in self.tombstones]}

    @classmethod
    def from_wire(cls, m: Wire) -> RepairPutReply:
        return cls(_each(m, "tombstones", _tombstone))


@dataclass(frozen=True)
class RepairPut(Indexed):
    op = "repair_put"
    reply = RepairPutReply
    writes = True
    peer: str = ""
    shard: ShardExport = field(default_factory=ShardExport)

    def fields(self) -> Wire:
        return {"peer": self.peer, "shard": self.shard.to_dict()}

    @classmethod
    def from_fields(cls, m: Wire) -> RepairPut:
        return cls(_str(m, "peer", ""), _shard(m), tokenizer=_tokenizer(m))


#: Every request type by its wire name.
REQUESTS: dict[str, type[Request]] = {
    cls.op: cls
    for cls in (
        Put,
        Postings,
        Vectors,
        Facts,
        Forget,
        Corpus,
        Stats,
        Export,
        Import,
        Ping,
        RepairDigest,
        RepairKeys,
        RepairGet,
        RepairPut,
    )
}
#: The requests repair sends and a node with a RepairService answers.
REPAIR_REQUESTS = (RepairDigest, RepairKeys, RepairGet, RepairPut)
#: The writes whose op takes SCOPED_OP when they carry scoped records.
SCOPED_WRITES = (Put, Import, RepairPut)


# -- the encoder -----------------------------------------------------------------------------


def _wire_op(message: Request) -> str:
    """A request's op on the wire: with SCOPED_OP for a write of scoped records."""
    if isinstance(message, Put):
        scoped = holds_scoped(message.facts, message.postings)
    elif isinstance(message, Import | RepairPut):
        scoped = holds_scoped(message.shard.facts, message.shard.postings)
    else:
        return message.op
    return message.op + SCOPED_OP if scoped else message.op


def encode(message: Request | Reply) -> Wire:
    """The wire form (a JSON-compatible dict) of a request (with its ``op``) or a reply."""
    if isinstance(message, Request):
        wire = {"op": _wire_op(message), **message.fields()}
        if isinstance(message, Indexed) and message.tokenizer != 1:
            wire["tokenizer"] = message.tokenizer
        return wire
    return message.to_wire()


def decode_request(m: Any) -> Request:
    """The request a wire dict stands for; InvalidInputError says what is wrong with it."""
    if not isinstance(m, dict):
        raise InvalidInputError("a request must be a JSON object")
    op = m.get("op")
    name = op.removesuffix(SCOPED_OP) if isinstance(op, str) else None
    cls = REQUESTS.get(name) if name is not None else None
    # (a plain "put" of scoped records: from an agent of the first version with scopes)
    if cls is None or (name != op and cls not in SCOPED_WRITES):
        raise InvalidInputError(f"unknown operation {op!r}")
    try:
        return cls.from_fields(m)
    except InvalidInputError as exc:
        raise InvalidInputError(f"malformed {op!r} request: {exc}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise InvalidInputError(f"malformed {op!r} request: {exc!r}") from None


R = TypeVar("R", bound=Reply)


def decode_reply(request: Request, m: Any) -> Reply:
    """The reply to ``request`` that a wire dict stands for. An agent that answers with
    something else is refused like an agent that did not answer (ValueError: a transport
    turns it into a TransportError)."""
    if not isinstance(m, dict):
        raise ValueError(f"a {request.op!r} reply must be a JSON object")
    try:
        return request.reply.from_wire(m)
    except (InvalidInputError, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ValueError(f"malformed {request.op!r} reply: {exc}") from None


def expect(reply: Reply, kind: type[R]) -> R:
    """``reply`` as the type its request promised (a transport's bug otherwise)."""
    if not isinstance(reply, kind):
        raise TypeError(f"expected a {kind.__name__}, got {type(reply).__name__}")
    return reply
