"""One agent's side of the memory protocol: it answers the requests other agents send.

Requests and responses are plain JSON-compatible dicts with an ``op`` field, the same over
the in-process transport and over HTTP. The node only reads and writes its own store; it
never calls another agent (that is the coordinator's job).

Operations (request fields -> response fields):

``put``        facts, postings            -> inserted: [bool per fact], tombstoned: [ids
                                             of facts or postings refused: forgotten]
``postings``   terms, avgdl, limit|None,  -> lists: {term: {df, bound, more, cursor,
               after: {term: cursor}|None,       ids, tf, len, created, subject}}
               only: {term: [ids]}|None      (a page in impact order after the cursor, as
                                             columns; only: exact lookups of given facts)
``facts``      ids                        -> facts: [fact], tombstoned: [id]
``forget``     tombstones                 -> removed: [bool per tombstone]
``corpus``                                -> count, total_length (of the corpus list)
``stats``                                 -> agent, facts, postings
``export``                                -> shard (a ShardExport dict)
``import``     shard                      -> ok
``ping``                                  -> agent
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from amplihack_hive.errors import HiveStateError, InvalidInputError, StorageError
from amplihack_hive.memory.records import (
    CORPUS_TERM,
    Fact,
    Posting,
    ShardExport,
    Tombstone,
    check_fact_id,
)
from amplihack_hive.memory.repair import OPS as REPAIR_OPS
from amplihack_hive.memory.repair import RepairService
from amplihack_hive.memory.store import Store
from amplihack_hive.memory.worker import StoreWorker

T = TypeVar("T")

logger = logging.getLogger(__name__)

Message = dict[str, Any]

#: The key under which a transport hands the coordinator, with each reply, the epoch of the
#: ring the answering agent routes by (HTTP carries it in a header). No operation uses it.
EPOCH_KEY = "_ring"
#: Most records accepted in one request; a coordinator batches below this.
MAX_BATCH = 50_000


#: Operations that change the store (repair's cached digests are invalidated by them).
WRITES = frozenset({"put", "forget", "import"})
#: The writes coordinators make for clients (the others come from repair).
CLIENT_WRITES = frozenset({"put", "forget"})
#: Operations refused while the node rebuilds its replicas (its answers would be partial).
READS = frozenset({"postings", "facts", "corpus"})


#: Engine messages that mean its files can no longer be trusted (a failed write or read).
_IO_WORDS = ("cannot write", "cannot read", "no space", "i/o error", "io exception", "corrupt")


def _io_failure(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in _IO_WORDS)


class MemoryNode:
    """Serves one agent's store to the hive. With ``repair`` set it also answers the
    anti-entropy requests of :mod:`amplihack_hive.memory.repair`."""

    def __init__(
        self,
        name: str,
        store: Store,
        repair: RepairService | None = None,
        *,
        worker: StoreWorker | None = None,
    ) -> None:
        self.name = name
        self.store = store
        self.repair = repair
        #: Where store calls run in an agent process (off its event loop); None runs them
        #: inline, as an in-process hive does (its loop answers no HTTP).
        self.worker = worker
        #: False while an agent that came up empty is being rebuilt from its replicas: it
        #: takes writes but refuses reads, so coordinators ask another replica.
        self.ready = True
        #: Why this node's store can no longer be trusted (files gone, a failed write), or
        #: None. A broken node answers every request with an error: it acknowledges
        #: nothing more, and coordinators go to the other replicas.
        self.broken: str | None = None
        #: Requests answered since start: writes (puts, forgets, imports) and reads.
        self.served = {"writes": 0, "reads": 0}
        self._ops: dict[str, Callable[[Message], Message]] = {
            "put": self._put,
            "postings": self._postings,
            "facts": self._facts,
            "forget": self._forget,
            "corpus": self._corpus,
            "stats": self._stats,
            "export": self._export,
            "import": self._import,
            "ping": lambda m: {"agent": self.name},
        }
        if repair is not None:
            for op in REPAIR_OPS:
                self._ops[op] = repair.handle

    async def serve(self, message: Message) -> Message:
        """Answer one request from the event loop: on the store's worker when there is one
        (raising BusyError when it is saturated), else inline. A ping never waits."""
        if self.worker is None or (isinstance(message, dict) and message.get("op") == "ping"):
            return self.handle(message)
        return await self.worker.run(self.handle, message)

    async def serve_encoded(self, raw: bytes) -> bytes:
        """As :meth:`serve`, for a request still in JSON: decoding it and encoding the reply
        happen where the store work happens, so a large write batch does not hold the
        event loop while it is parsed."""
        if self.worker is None:
            return self._handle_encoded(raw)
        return await self.worker.run(self._handle_encoded, raw)

    def _handle_encoded(self, raw: bytes) -> bytes:
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"the body is not valid JSON: {exc}") from None
        except RecursionError:
            raise InvalidInputError("the body is JSON nested too deeply") from None
        reply = self.handle(message)
        return json.dumps(reply, separators=(",", ":")).encode()

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run an internal store call (repair, stats) where the node runs its store calls."""
        if self.worker is None:
            return fn(*args)
        return await self.worker.run(fn, *args, bounded=False)

    def mark_broken(self, reason: str) -> None:
        """Stop acknowledging anything: the store failed (see :attr:`broken`)."""
        if self.broken is None:
            self.broken = reason
            logger.error("agent %s: its store is broken, it answers no more: %s", self.name, reason)

    def check(self) -> str | None:
        """The store's own health check (:meth:`Store.check`); a failure marks the node
        broken. Returns why it is broken, or None."""
        if self.broken is None:
            reason = self.store.check()
            if reason is not None:
                self.mark_broken(reason)
        return self.broken

    def close(self) -> None:
        """Finish the call in progress, then close the store."""
        if self.worker is not None:
            self.worker.close()
        self.store.close()

    def handle(self, message: Message) -> Message:
        """Answer one request. Malformed requests raise InvalidInputError."""
        if not isinstance(message, dict):
            raise InvalidInputError("a request must be a JSON object")
        op = message.get("op")
        handler = self._ops.get(op) if isinstance(op, str) else None
        if handler is None:
            raise InvalidInputError(f"unknown operation {op!r}")
        if self.broken is not None:
            raise HiveStateError(f"agent {self.name}'s store is broken: {self.broken}")
        if not self.ready and op in READS:
            raise HiveStateError(f"agent {self.name} is rebuilding its replicas")
        try:
            reply = handler(message)
            if op in WRITES:
                self.served["writes"] += 1
                if self.repair is not None:
                    self.repair.touched(by_client=op in CLIENT_WRITES)
            elif op in READS:
                self.served["reads"] += 1
            return reply
        except StorageError as exc:
            # files gone or the posting index latched (store.check), or the engine failed to
            # write or read its files: nothing more is acknowledged. Other engine errors (a
            # query it refused, memory for one large batch) fail this request only.
            reason = self.store.check()
            if reason is not None or _io_failure(str(exc)):
                self.mark_broken(reason or str(exc))
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            if isinstance(exc, InvalidInputError):
                raise
            raise InvalidInputError(f"malformed {op!r} request: {exc!r}") from exc

    @staticmethod
    def _list(message: Message, key: str) -> list[Any]:
        value = message.get(key) or []
        if not isinstance(value, list):
            raise InvalidInputError(f"field {key!r} must be a list")
        if len(value) > MAX_BATCH:
            raise InvalidInputError(f"field {key!r} holds more than {MAX_BATCH} items")
        return value

    def _put(self, m: Message) -> Message:
        facts = [Fact.from_dict(d) for d in self._list(m, "facts")]
        postings = [Posting.from_list(v) for v in self._list(m, "postings")]
        for f in facts:
            check_fact_id(f.id)
        for p in postings:
            check_fact_id(p.fact_id)
        inserted = self.store.put_facts(facts) if facts else []
        if postings:
            self.store.put_postings(postings)
        # what was refused because it is forgotten: the coordinator stores that content
        # anew under its next incarnation's id rather than report a write that did nothing
        refused = {f.id for f, new in zip(facts, inserted, strict=True) if not new}
        refused |= {p.fact_id for p in postings}
        tomb = self.store.tombstoned(sorted(refused)) if refused else set()
        return {"inserted": inserted, "tombstoned": sorted(tomb)}

    def _postings(self, m: Message) -> Message:
        """Pages of posting lists as columns: per term the next ``limit`` postings in
        (impact desc, fact id) order after ``after[term]`` (a cursor from the last page),
        or with ``only`` the postings of given facts."""
        terms = [str(t) for t in self._list(m, "terms")]
        avgdl = float(m.get("avgdl") or 1.0)
        limit = m.get("limit")
        only: dict[str, list[str]] | None = m.get("only")
        after: dict[str, list[Any]] = m.get("after") or {}
        out: dict[str, Any] = {}
        for term, cols in self.store.columns(terms).items():
            if only is not None:
                out[term] = cols.only(str(i) for i in only.get(term, []))
                continue
            cursor = after.get(term)
            out[term] = cols.page(
                avgdl,
                None if limit is None else int(limit),
                (float(cursor[0]), str(cursor[1])) if cursor else None,
            )
        return {"lists": out}

    def _facts(self, m: Message) -> Message:
        ids = [check_fact_id(i) for i in self._list(m, "ids")]
        got = self.store.get_facts(ids)
        tomb = self.store.tombstoned([i for i in ids if i not in got])
        return {"facts": [f.to_dict() for f in got.values()], "tombstoned": sorted(tomb)}

    def _forget(self, m: Message) -> Message:
        tombs = [Tombstone.from_list(v) for v in self._list(m, "tombstones")]
        for t in tombs:
            check_fact_id(t.fact_id)
        return {"removed": self.store.forget(tombs)}

    def _corpus(self, m: Message) -> Message:
        count, total = self.store.term_stats(CORPUS_TERM)
        return {"count": count, "total_length": total}

    def _stats(self, m: Message) -> Message:
        return {
            "agent": self.name,
            "facts": self.store.fact_count(),
            "postings": self.store.posting_count(),
            "ready": self.ready,
            # records held for an owner that was down, or left after a membership change
            "hints_pending": (
                len(self.repair.holdings().misplaced) if self.repair is not None else 0
            ),
        }

    def _export(self, m: Message) -> Message:
        return {"shard": self.store.export().to_dict()}

    def _import(self, m: Message) -> Message:
        self.store.import_(ShardExport.from_dict(m["shard"]))
        return {"ok": True}
