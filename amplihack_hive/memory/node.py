"""One agent's side of the memory protocol: it answers the requests other agents send.

The requests and their replies are the typed messages of :mod:`amplihack_hive.memory.protocol`
(``Put``, ``Postings``, ``Vectors``, ``Facts``, ``Forget``, ``Corpus``, ``Stats``, ``Export``,
``Import``, ``Ping`` and repair's four), the same over the in-process transport and over
HTTP. :meth:`MemoryNode.answer` answers one; :meth:`MemoryNode.handle` is the wire entry
(a JSON-compatible dict in, one out). The node only reads and writes its own store; it
never calls another agent (that is the coordinator's job).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from amplihack_hive import wirejson
from amplihack_hive.errors import (
    HiveStateError,
    IndexVersionError,
    InvalidInputError,
    StorageError,
)
from amplihack_hive.memory import protocol as p
from amplihack_hive.memory.protocol import Reply, Request, decode_request, encode
from amplihack_hive.memory.records import CORPUS_TERM
from amplihack_hive.memory.repair import RepairService
from amplihack_hive.memory.semantic import page_columns, top_columns
from amplihack_hive.memory.store import Store
from amplihack_hive.memory.text import TOKENIZER
from amplihack_hive.memory.worker import StoreWorker

T = TypeVar("T")

logger = logging.getLogger(__name__)

Message = dict[str, Any]

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
        tokenizer: int = TOKENIZER,
    ) -> None:
        self.name = name
        self.store = store
        #: The tokenizer the store's postings are built with: requests whose terms come
        #: from another are refused (IndexVersionError), never answered with mixed terms.
        self.tokenizer = tokenizer
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
        self._answers: dict[type[Request], Callable[[Any], Reply]] = {
            p.Put: self._put,
            p.Postings: self._postings,
            p.Vectors: self._vectors,
            p.Facts: self._facts,
            p.Forget: self._forget,
            p.Corpus: self._corpus,
            p.Stats: self._stats,
            p.Export: self._export,
            p.Import: self._import,
            p.Ping: lambda r: p.PingReply(self.name),
        }
        if repair is not None:
            for kind in p.REPAIR_REQUESTS:
                self._answers[kind] = repair.answer

    async def serve(self, request: Request) -> Reply:
        """Answer one request from the event loop: on the store's worker when there is one
        (raising BusyError when it is saturated), else inline. A ping never waits."""
        if self.worker is None or isinstance(request, p.Ping):
            return self.answer(request)
        return await self.worker.run(self.answer, request)

    async def serve_encoded(self, raw: bytes) -> bytes:
        """As :meth:`serve`, for a request still in JSON: decoding it and encoding the reply
        happen where the store work happens, so a large write batch does not hold the
        event loop while it is parsed."""
        if self.worker is None:
            return self._handle_encoded(raw)
        return await self.worker.run(self._handle_encoded, raw)

    def _handle_encoded(self, raw: bytes) -> bytes:
        try:
            message = wirejson.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"the body is not valid JSON: {exc}") from None
        except RecursionError:
            raise InvalidInputError("the body is JSON nested too deeply") from None
        reply = self.handle(message)
        return wirejson.dumps(reply)

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

    def drain(self) -> None:
        """Refuse store calls from now on and drop the queued ones (StoreWorker.drain)."""
        if self.worker is not None:
            self.worker.drain()

    def close(self) -> None:
        """Finish the call in progress, then close the store."""
        if self.worker is not None:
            self.worker.close()
        self.store.close()

    def handle(self, message: Message) -> Message:
        """Answer one request in its wire form (:mod:`~amplihack_hive.memory.protocol`);
        malformed requests raise InvalidInputError."""
        return encode(self.answer(decode_request(message)))

    def answer(self, request: Request) -> Reply:
        """Answer one typed request."""
        handler = self._answers.get(type(request))
        if handler is None:
            raise InvalidInputError(f"operation {request.op!r} is not served here")
        if self.broken is not None:
            raise HiveStateError(f"agent {self.name}'s store is broken: {self.broken}")
        if not self.ready and request.reads:
            raise HiveStateError(f"agent {self.name} is rebuilding its replicas")
        self._check_tokenizer(request)
        try:
            reply = handler(request)
            if request.writes:
                self.served["writes"] += 1
                if self.repair is not None:
                    self.repair.touched(by_client=request.client_write)
            elif request.reads:
                self.served["reads"] += 1
            return reply
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
            if isinstance(exc, InvalidInputError):
                raise
            # a request that decoded but cannot be answered as given (what decoding does
            # not check): refused as malformed, as the wire entry always did
            raise InvalidInputError(f"malformed {request.op!r} request: {exc!r}") from exc
        except StorageError as exc:
            # files gone or the posting index latched (store.check), or the engine failed to
            # write or read its files: nothing more is acknowledged. Other engine errors (a
            # query it refused, memory for one large batch) fail this request only.
            reason = self.store.check()
            if reason is not None or _io_failure(str(exc)):
                self.mark_broken(reason or str(exc))
            raise

    def _check_tokenizer(self, request: Request) -> None:
        if not isinstance(request, p.Indexed) or (
            isinstance(request, p.Put) and not request.postings
        ):
            return  # bodies alone are the same whatever the tokenizer
        version = request.tokenizer
        if version != self.tokenizer:
            raise IndexVersionError(
                f"agent {self.name} indexes with tokenizer {self.tokenizer}, and this "
                f"{request.op!r} request was built with tokenizer {version}: the sender "
                "read the hive's config before a reindex (reconnect), or names another "
                "tokenizer than the hive's"
            )

    def _put(self, r: p.Put) -> p.PutReply:
        inserted = self.store.put_facts(r.facts) if r.facts else []
        if r.postings:
            self.store.put_postings(r.postings)
        # what was refused because it is forgotten: the coordinator stores that content
        # anew under its next incarnation's id rather than report a write that did nothing
        refused = {f.id for f, new in zip(r.facts, inserted, strict=True) if not new}
        refused |= {posting.fact_id for posting in r.postings}
        tomb = self.store.tombstoned(sorted(refused)) if refused else set()
        return p.PutReply(inserted, sorted(tomb))

    def _postings(self, r: p.Postings) -> p.PostingsReply:
        out: dict[str, Any] = {}
        for term, cols in self.store.columns(r.terms).items():
            if r.only is not None:
                out[term] = cols.only(r.only.get(term, []))
                continue
            out[term] = cols.page(r.avgdl, r.limit, (r.after or {}).get(term))
        return p.PostingsReply(out)

    def _vectors(self, r: p.Vectors) -> p.VectorsReply:
        lists = self.store.postings(r.keys)
        if r.query is None:
            after = r.after or {}
            return p.VectorsReply(
                {key: page_columns(ps, after.get(key), r.k) for key, ps in lists.items()}
            )
        query = np.frombuffer(r.query, dtype="<f4")
        return p.VectorsReply({key: top_columns(ps, query, r.k) for key, ps in lists.items()})

    def _facts(self, r: p.Facts) -> p.FactsReply:
        got = self.store.get_facts(r.ids)
        tomb = self.store.tombstoned([i for i in r.ids if i not in got])
        return p.FactsReply(list(got.values()), sorted(tomb))

    def _forget(self, r: p.Forget) -> p.ForgetReply:
        return p.ForgetReply(self.store.forget(r.tombstones))

    def _corpus(self, r: p.Corpus) -> p.CorpusReply:
        if r.terms is None:
            count, total = self.store.term_stats(CORPUS_TERM)
            return p.CorpusReply(count, total)
        lists = {t: self.store.term_stats(t) for t in r.terms}
        count, total = lists[r.terms[0]] if r.terms else (0, 0.0)
        return p.CorpusReply(count, total, lists)

    def _stats(self, r: p.Stats) -> p.StatsReply:
        return p.StatsReply(
            self.name,
            self.store.fact_count(),
            self.store.posting_count(),
            self.ready,
            # records held for an owner that was down, or left after a membership change
            self.repair.misplaced_count() if self.repair is not None else 0,
        )

    def _export(self, r: p.Export) -> p.ExportReply:
        return p.ExportReply(p.for_asker(r, self.store.export()))

    def _import(self, r: p.Import) -> p.ImportReply:
        self.store.import_(r.shard)
        return p.ImportReply(True)
