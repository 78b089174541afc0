"""The coordinator: turns remember / recall / forget into requests to the right agents.

Placement (DESIGN.md):
- a fact's body lives on the R ring owners of its id;
- each term's posting list lives on the R ring owners of the term;
- the corpus list (:data:`~amplihack_hive.memory.records.CORPUS_TERM`), a posting list
  every live fact is on with its length, gives what BM25 needs besides the term lists (the
  fact count and total length); it lives on the R owners of its key like any list, so
  its figures are what its owners hold, never counters that a retried or lost message
  could make drift.

So recall never guesses where a fact lives from the question: it asks the owners of the
question's terms, which hold every posting of those terms. Agents contacted per recall is
about (terms + K + 1), whatever the number of agents.

Any agent (or a client) can coordinate; the coordinator holds no records itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from amplihack_hive.errors import (
    AgentUnavailableError,
    ForbiddenError,
    HiveError,
    HiveStateError,
    IndexVersionError,
    InvalidInputError,
    NotFoundError,
    TransportError,
    WriteQuorumError,
)
from amplihack_hive.memory import protocol as pr
from amplihack_hive.memory.embed import embed_off_loop
from amplihack_hive.memory.hits import Hit, Hits
from amplihack_hive.memory.index import (
    Candidate,
    Ranking,
    TermList,
    add_exact,
    apply_supersession,
    from_wire,
    rank,
)
from amplihack_hive.memory.protocol import Reply, Request, expect
from amplihack_hive.memory.records import (
    CORPUS_TERM,
    MAX_CONTENT_BYTES,
    Fact,
    Posting,
    Tombstone,
    check_fact_id,
    decode_vector,
    fact_id_for,
)
from amplihack_hive.memory.restate import COVER_TOP, head_first
from amplihack_hive.memory.ring import HashRing
from amplihack_hive.memory.scopes import (
    HIVE,
    Access,
    agent_scope,
    corpus_key,
    group_scope,
    place,
    scoped,
    split_key,
)
from amplihack_hive.memory.semantic import (
    CENTROIDS,
    CENTROIDS_TTL,
    CentroidSet,
    NearFact,
    Semantic,
    due,
    embed_text,
    filed,
    filed_all,
    from_f16,
    merge_tops,
    new_centroids,
    read_centroids,
    served,
    to_f16,
    vector_key,
)
from amplihack_hive.memory.text import TOKENIZER, check_tokenizer, term_counts
from amplihack_hive.memory.vectors import fuse, list_count, train_centroids

logger = logging.getLogger(__name__)

Message = dict[str, Any]
#: Postings an owner sends per term before the coordinator asks for more.
FIRST_CUT = 256
#: Most facts one recall returns.
MAX_LIMIT = 10_000
#: How many of the best facts are put newest first (restate.py compares them pairwise).
RESTATE_TOP = 100
#: Facts past the limit whose bodies a recall may read to find restatements (restate.py),
#: and how close to the fact they may restate their score must be.
RESTATE_WINDOW = 5
RESTATE_SCORE = 0.8
#: Results of at most this many facts look for restatements of each; longer ones of their
#: first (measured on test_memory_hive's fan-out corpus, 200 agents, k=5: 8.57 agents
#: contacted per recall looking for none, 9.40 for the first's, 11.43 for the first five's).
RESTATE_ALL = 3
#: A posting of a list as read whole (the centroids, vectors to re-file): id, tf, length,
#: created, subject, vector.
ListRow = tuple[str, int, int, float, "str | None", "bytes | None"]
#: Candidates of each ranking, lexical and vector, fused when recall uses vectors
#: (memory/semantic.py): bench_semantic chose the fusion with 50 of each.
FUSED_CANDIDATES = 50
#: Times content may be forgotten and remembered again (each life has its own id).
MAX_INCARNATIONS = 64
#: The fields a remember item (a dict) may carry.
ITEM_FIELDS = (
    "content",
    "kind",
    "metadata",
    "subject",
    "supersedes",
    "created",
    "confidence",
    "context",
    "scope",
)


def index_fact(fact: Fact, tokenizer: int) -> tuple[Fact, list[Posting]]:
    """``fact`` with its length, and its postings in ``tokenizer``'s terms: one per term of
    its content or its context, with the term's frequency in each (BM25F, index.py), on
    the lists of the fact's scope (memory/scopes.py)."""
    counts, length = term_counts(fact.content, tokenizer)
    fact = _replace(fact, length=length)
    scope = fact.scope
    if not fact.context:
        return fact, [
            Posting(scoped(scope, t), fact.id, tf, length, fact.created, fact.subject)
            for t, tf in counts.items()
        ]
    around, around_length = term_counts(fact.context, tokenizer)
    postings = [
        Posting(
            scoped(scope, t),
            fact.id,
            counts.get(t, 0),
            length,
            fact.created,
            fact.subject,
            n,
            around_length,
        )
        for t, n in ((t, around.get(t, 0)) for t in {**counts, **around})
    ]
    return fact, postings


def corpus_posting(fact: Fact, postings: Sequence[Posting]) -> Posting:
    """``fact`` on the corpus list: every live fact is, so N and the total length are the
    list's size and sum (``fact.length`` and ``postings`` as :func:`index_fact` made them:
    each of them carries the context's length)."""
    around = postings[0].ctx_length if postings else 0
    return Posting(corpus_key(fact.scope), fact.id, 1, fact.length, 0.0, None, 0, around)


class Transport(Protocol):
    """How a coordinator reaches agents. Implementations: in-process and HTTP."""

    async def request(self, agent: str, message: Request) -> Reply:
        """Send one request; its reply (of ``message.reply``'s type). Raise TransportError
        when the agent cannot answer."""
        ...


@dataclass
class Fanout:
    """Distinct agents contacted, summed over operations (for ``stats()["fanout"]``)."""

    recalls: int = 0
    recall_agents: int = 0
    facts: int = 0
    fact_agents: int = 0

    def as_dict(self) -> dict[str, float]:
        return {
            "recall": self.recall_agents / self.recalls if self.recalls else 0.0,
            "remember": self.fact_agents / self.facts if self.facts else 0.0,
        }


class _Op:
    """One coordinated operation: remembers which agents it contacted."""

    def __init__(self, transport: Transport, suspects: frozenset[str] = frozenset()) -> None:
        self.transport = transport
        self.suspects = suspects
        self.contacted: set[str] = set()
        self.failed: set[str] = set()
        #: ring epochs the agents that answered route by (Reply.epoch, from the HTTP transport)
        self.epochs: set[str] = set()

    async def send(self, agent: str, message: Request) -> Reply:
        self.contacted.add(agent)
        reply = expect(await self.transport.request(agent, message), message.reply)
        if reply.epoch is not None:
            self.epochs.add(reply.epoch)
        return reply

    async def send_all(
        self,
        batches: dict[str, Request],
        send: Callable[[str, Any], Awaitable[Reply]] | None = None,
    ) -> dict[str, Reply | Exception]:
        """Send one request per agent concurrently (through ``send``, else :meth:`send`);
        failures come back as exceptions."""
        agents = list(batches)
        results = await asyncio.gather(
            *((send or self.send)(a, batches[a]) for a in agents), return_exceptions=True
        )
        out: dict[str, Reply | Exception] = {}
        for a, r in zip(agents, results, strict=True):
            if isinstance(r, BaseException) and not isinstance(r, Exception):
                raise r
            if isinstance(r, IndexVersionError):
                raise r  # not a failed agent: this coordinator's terms are of another version
            out[a] = r
        return out

    async def send_puts(self, batches: dict[str, pr.Put]) -> dict[str, Reply | Exception]:
        """:meth:`send_all` for writes: an agent's batch goes in parts of at most
        :data:`~amplihack_hive.memory.protocol.MAX_BATCH` facts and postings (what an agent
        takes in one request; contexts make a batch's postings many), one after the other;
        the agent failed when any part did (the parts before it are kept: writes are
        idempotent)."""

        async def send(agent: str, put: pr.Put) -> Reply:
            if len(put.facts) <= pr.MAX_BATCH and len(put.postings) <= pr.MAX_BATCH:
                return await self.send(agent, put)
            inserted: list[bool] = []
            tombstoned: set[str] = set()
            size = pr.MAX_BATCH
            for i in range(0, max(len(put.facts), len(put.postings)), size):
                part = pr.Put(
                    put.facts[i : i + size],
                    put.postings[i : i + size],
                    tokenizer=put.tokenizer,
                    rows=None if put.rows is None else put.rows[i : i + size],
                    fact_rows=None if put.fact_rows is None else put.fact_rows[i : i + size],
                )
                reply = expect(await self.send(agent, part), pr.PutReply)
                inserted += reply.inserted
                tombstoned.update(reply.tombstoned)
            return pr.PutReply(inserted, sorted(tombstoned))

        return await self.send_all(dict(batches), send)

    async def ask_owners(
        self,
        keys: Iterable[str],
        owners: Callable[[str], list[str]],
        build: Callable[[list[str]], Request],
        has: Callable[[str, Any], bool] | None = None,
    ) -> tuple[dict[str, tuple[str, Any]], set[str]]:
        """Ask one live owner per key, preferring agents already contacted; on failure (or
        when ``has`` says that owner's answer lacks the key) try the key's next owner.
        Returns key -> (agent, response) and the keys nobody served."""
        # replicas the failure detector suspects are asked last (sorted() is stable)
        pending = {k: sorted(owners(k), key=lambda a: a in self.suspects) for k in keys}
        served: dict[str, tuple[str, Any]] = {}
        while pending:
            groups: dict[str, list[str]] = {}
            for key, cands in pending.items():
                if not cands:
                    continue
                pick = next((a for a in cands if a in groups or a in self.contacted), cands[0])
                groups.setdefault(pick, []).append(key)
            if not groups:
                break
            replies = await self.send_all({a: build(ks) for a, ks in groups.items()})
            for agent, reply in replies.items():
                if isinstance(reply, Exception):
                    self.failed.add(agent)
                    # the result says who could not be reached; this is the detail (-v)
                    logger.info("agent %s failed: %s; trying the next owner", agent, reply)
                for key in groups[agent]:
                    if isinstance(reply, Exception) or (has is not None and not has(key, reply)):
                        pending[key].remove(agent)
                    else:
                        served[key] = (agent, reply)
                        del pending[key]
        return served, set(pending)


class Coordinator:
    """Routes memory operations over a ring of agents through a transport."""

    def __init__(
        self,
        ring: HashRing,
        transport: Transport,
        *,
        replication: int = 3,
        write_quorum: int = 2,
        agent: str = "",
        clock: Callable[[], float] = time.time,
        first_cut: int | None = FIRST_CUT,
        max_content_bytes: int = MAX_CONTENT_BYTES,
        tokenizer: int = TOKENIZER,
        access: Access | None = None,
        semantic: Semantic | None = None,
    ) -> None:
        if replication < 1:
            raise InvalidInputError(f"replication must be at least 1, got {replication}")
        if write_quorum < 1:
            raise InvalidInputError(f"write quorum must be at least 1, got {write_quorum}")
        self.ring = ring
        self.transport = transport
        self.replication = replication
        self.write_quorum = write_quorum
        self.agent = agent
        self.clock = clock
        self.first_cut = first_cut
        self.max_content_bytes = min(max_content_bytes, MAX_CONTENT_BYTES)
        #: the tokenizer of the hive's postings (memory/text.py), named in every request
        #: that reads or writes them
        self.tokenizer = check_tokenizer(tokenizer)
        #: what a request that names no access may do (memory/scopes.py): the admin's by
        #: default (this process holds the hive token), with the hive's groups
        self.access = access or Access.admin()
        self.fanout = Fanout()
        #: Agents the failure detector suspects (asked last, written around); set by the
        #: agent process and by clients.
        self.suspects: Callable[[], set[str]] = set
        #: Where a newer ring comes from when agents answer with another epoch (None: this
        #: coordinator's ring is fixed, e.g. in process).
        self.refresh: Callable[[], HashRing | None] | None = None
        #: How this coordinator embeds facts and questions (memory/semantic.py), or None:
        #: lexical recall only, as a hive without an embedder.
        self.semantic = semantic
        #: The centroid versions served, as last read (at ``_sets_at``, monotonic seconds).
        self._sets: list[CentroidSet] | None = None
        self._sets_at = 0.0

    def _op(self) -> _Op:
        return _Op(self.transport, frozenset(self.suspects()))

    def owners(self, key: str) -> list[str]:
        return self.ring.owners(place(key), self.replication)

    def _quorum(self, owners: Sequence[object]) -> int:
        """Acks needed among ``owners`` (all of them when there are fewer than W)."""
        return min(self.write_quorum, len(owners))

    def _acked(self, owners: Sequence[str], acks: Iterable[str]) -> bool:
        """Whether ``acks`` make a write quorum for a record owned by ``owners``: W distinct
        agents (all owners when there are fewer) in W distinct failure domains (all domains
        when there are fewer), so two replicas that die together never make a quorum."""
        agents = set(acks)
        need = self._quorum(owners)
        if len(agents) < need:
            return False
        domain = self.ring.domain
        return len({domain(a) for a in agents}) >= min(need, self.ring.domain_count)

    # -- remember ---------------------------------------------------------------------

    def prepare(
        self, item: str | dict[str, Any], access: Access | None = None, **defaults: Any
    ) -> tuple[Fact, list[Posting]]:
        """Validate one item and build its fact and postings (no I/O). Its scope (the
        item's, else ``defaults``', else hive) must be one ``access`` may write
        (ForbiddenError)."""
        if isinstance(item, dict):
            if "content" not in item:
                raise InvalidInputError("an item needs a 'content' field")
            unknown = set(item) - set(ITEM_FIELDS)
            if unknown:
                raise InvalidInputError(f"unknown item field(s): {', '.join(sorted(unknown))}")
            args = {**defaults, **{k: v for k, v in item.items() if v is not None}}
            content = args.pop("content")
        else:
            args = dict(defaults)
            content = item
        access = access or self.access
        args["scope"] = access.check(args.get("scope") or HIVE)
        if args.get("supersedes") is not None:
            check_fact_id(args["supersedes"])
            args.setdefault("subject", None)
            if args["subject"] is None:
                args["subject"] = args["supersedes"]
        # who said it: the agent whose credential sent it, else the one coordinating
        fact = Fact.new(content, agent=access.agent or self.agent, **args)
        size = len(fact.content.encode("utf-8"))
        if size > self.max_content_bytes:
            raise InvalidInputError(
                f"content is {size} bytes; this hive takes at most {self.max_content_bytes}"
            )
        if fact.created == 0.0:
            fact = _replace(fact, created=self.clock())
        return index_fact(fact, self.tokenizer)

    async def remember_many(
        self,
        items: Sequence[str | dict[str, Any]],
        access: Access | None = None,
        **defaults: Any,
    ) -> list[str]:
        """Store facts; return their ids in input order. Raises TransportError naming the
        facts not stored on a write quorum of their owners."""
        return await self.remember_prepared([self.prepare(it, access, **defaults) for it in items])

    async def remember_prepared(self, prepared: Sequence[tuple[Fact, list[Posting]]]) -> list[str]:
        """Store facts already built by :meth:`prepare`; return their ids in order.

        Content that was forgotten is stored anew under its next incarnation's id
        (:func:`~amplihack_hive.memory.records.fact_id_for`): a body owner that holds the
        tombstone says so, the postings just sent under the dead id are tombstoned on their
        terms' owners (one of them may never have heard of the forget), and the fact is
        written again under the next id. The returned id is the one stored."""
        prepared = await self._with_vectors(prepared)
        # the same content twice in one call is one fact
        unique: dict[str, tuple[Fact, list[Posting]]] = {}
        for fact, postings in prepared:
            unique.setdefault(fact.id, (fact, postings))
        final = {fid: fid for fid in unique}  # id asked for -> id stored
        pending = dict(unique)  # id asked for -> (fact, postings) of its current incarnation
        failed: list[str] = []
        unreachable: set[str] = set()
        for incarnation in range(MAX_INCARNATIONS):
            if not pending:
                break
            current = {pair[0].id: asked for asked, pair in pending.items()}
            lost, dead, errors = await self._put_once(list(pending.values()))
            unreachable |= errors
            if lost - dead and self.suspects():
                # written around suspected owners and still short: ask them after all
                retry = [pending[current[fid]] for fid in lost - dead]
                again_lost, again_dead, errors = await self._put_once(retry, avoid=False)
                unreachable |= errors
                lost = (lost - {f.id for f, _ in retry}) | again_lost
                dead |= again_dead
            failed += [current[fid] for fid in lost if fid not in dead]
            if dead:
                cleared, errors = await self._bury({fid: pending[current[fid]] for fid in dead})
                unreachable |= errors
                failed += [current[fid] for fid in dead if fid not in cleared]
            else:
                cleared = set()
            again: dict[str, tuple[Fact, list[Posting]]] = {}
            for fid in dead & cleared:
                asked = current[fid]
                again[asked] = self._reincarnate(pending[asked], incarnation + 1)
                final[asked] = again[asked][0].id
            pending = again
        else:
            if pending:
                failed += list(pending)
                unreachable.add(f"(content forgotten more than {MAX_INCARNATIONS} times)")
        if failed:
            lost_ids = set(failed)
            errors_s = sorted(unreachable)
            raise WriteQuorumError(
                f"{len(lost_ids)} of {len(unique)} facts were not stored on a write quorum "
                f"of their replicas; unreachable: {', '.join(errors_s)}",
                stored=[final[f.id] for f, _ in prepared if f.id not in lost_ids],
                failed=[fid for fid in unique if fid in lost_ids],
                unreachable=errors_s,
            )
        return [final[f.id] for f, _ in prepared]

    async def _with_vectors(
        self, prepared: Sequence[tuple[Fact, list[Posting]]]
    ) -> list[tuple[Fact, list[Posting]]]:
        """``prepared`` with each fact's vector (embedded here, off the event loop, when this
        coordinator has an embedder and the fact has none) and its vector postings under
        every centroid version served (memory/semantic.py)."""
        out = list(prepared)
        if self.semantic is not None:
            need = [i for i, (f, _) in enumerate(out) if f.vector is None]
            step = self.semantic.batch
            for start in range(0, len(need), step):
                part = need[start : start + step]
                texts = [embed_text(out[i][0]) for i in part]
                vectors = await embed_off_loop(self.semantic.embedder, texts)
                for i, vec in zip(part, vectors, strict=True):
                    fact, postings = out[i]
                    out[i] = (_replace(fact, vector=to_f16(vec)), postings)
        if not any(f.vector is not None for f, _ in out):
            return out
        sets = await self._centroid_sets(self._op())
        have = [i for i, (f, _) in enumerate(out) if f.vector is not None]
        for i, vector_postings in zip(
            have, filed_all([out[i][0] for i in have], sets), strict=True
        ):
            out[i] = (out[i][0], [*out[i][1], *vector_postings])
        return out

    async def _centroid_sets(self, op: _Op, *, fresh: bool = False) -> list[CentroidSet]:
        """The centroid versions served (memory/semantic.py), read from a read quorum of
        the centroid list's owners (one that missed a write cannot hide a version), kept
        for CENTROIDS_TTL seconds. With fewer owners up, what those hold (a write must not
        fail because two of the list's three owners are down; at worst a vector written
        then is filed under the older version only, and found by its words)."""
        now = time.monotonic()
        if not fresh and self._sets is not None and now - self._sets_at < CENTROIDS_TTL:
            return self._sets
        rows = (await self._read_lists(op, [CENTROIDS], quorum=False))[CENTROIDS]
        self._sets = served(read_centroids(rows))
        self._sets_at = now
        return self._sets

    async def _read_lists(
        self, op: _Op, keys: Sequence[str], *, quorum: bool = True
    ) -> dict[str, list[ListRow]]:
        """Every posting of the lists ``keys``: the union of what a read quorum of each
        list's owners holds (R - W + 1: it meets every write quorum); without ``quorum``,
        of what the owners that answer hold (at least one)."""
        got = await asyncio.gather(*(self._read_list(op, k, quorum) for k in keys))
        return dict(zip(keys, got, strict=True))

    async def _read_list(self, op: _Op, key: str, quorum: bool) -> list[ListRow]:
        owners = sorted(self.owners(key), key=lambda a: a in op.suspects)
        need = len(owners) - self._quorum(owners) + 1
        rows: dict[str, ListRow] = {}
        answered = 0
        for agent in owners:
            if answered >= need:
                break
            try:
                await self._page_list(op, agent, key, rows)
            except (HiveError, ValueError) as exc:
                op.failed.add(agent)
                logger.info("agent %s failed: %s; trying the next owner", agent, exc)
                continue
            answered += 1
        if answered < need and (quorum or not answered):
            raise AgentUnavailableError(
                f"too few owners of the vector list {key!r} answered ({answered} of the "
                f"{need} needed)"
            )
        if answered < need:
            logger.warning(
                "only %d of the %d owners of the vector list %r needed answered",
                answered,
                need,
                key,
            )
        return list(rows.values())

    async def _page_list(self, op: _Op, agent: str, key: str, rows: dict[str, ListRow]) -> None:
        """Add every posting ``agent`` holds on list ``key`` to ``rows``, page by page."""
        after: str | None = None
        while True:
            request = pr.Vectors([key], None, pr.MAX_VECTOR_K, {key: after} if after else None)
            reply = expect(await op.send(agent, request), pr.VectorsReply)
            cols = reply.lists.get(key) or {"ids": []}
            ids = cols["ids"]
            for j, fid in enumerate(ids):
                raw = cols["vectors"][j]
                rows[fid] = (
                    fid,
                    int(cols["tf"][j]),
                    int(cols["length"][j]),
                    float(cols["created"][j]),
                    cols["subjects"][j],
                    decode_vector(raw) if raw else None,
                )
            if len(ids) < pr.MAX_VECTOR_K:
                return
            after = ids[-1]

    async def _put_postings(self, postings: Sequence[Posting]) -> None:
        """Write postings without facts (centroids, re-filed vectors) to their lists'
        owners; TransportError unless each list's write reached a quorum."""
        op = self._op()
        batches: dict[str, list[Posting]] = {}
        owners: dict[str, list[str]] = {}
        for posting in postings:
            got = owners.get(posting.term)
            if got is None:
                got = owners[posting.term] = self.owners(posting.term)
            for a in got:
                batches.setdefault(a, []).append(posting)
        replies = await op.send_puts(
            {a: pr.Put([], b, tokenizer=self.tokenizer) for a, b in batches.items()}
        )
        ok = {a for a, r in replies.items() if not isinstance(r, Exception)}
        short = [k for k, o in owners.items() if not self._acked(o, [a for a in o if a in ok])]
        if short:
            raise TransportError(
                f"{len(short)} vector list(s) missed a write quorum; unreachable: "
                f"{', '.join(sorted(set(replies) - ok))}; train again to finish"
            )

    async def train_vectors(
        self,
        lists: int | None = None,
        *,
        seed: int = 0,
        sample: int = 50_000,
        settle: float = CENTROIDS_TTL,
    ) -> CentroidSet:
        """Train new centroids on the vectors the hive holds and re-file every vector under
        them, without stopping writes or recalls (memory/semantic.py): ``lists`` centroids
        (None: about the square root of the vectors held), k-means on at most ``sample``
        of them (seeded: the same vectors and seed give the same centroids). ``settle``:
        seconds to wait after writing the centroids, so that every coordinator files new
        vectors under them before the old lists are read (CENTROIDS_TTL; 0 when this is the
        only coordinator writing). Returns the new version. The admin's only."""
        if not self.access.is_admin:
            raise ForbiddenError("training the centroids takes the hive token")
        op = self._op()
        base = (await self._centroid_sets(op, fresh=True))[0]
        held = (await self.corpus(op, self._every_scope()))[2]
        keys = [vector_key(s, base.version, c) for s in held for c in range(len(base))]
        found = await self._read_lists(op, keys)
        vectors = [r[5] for rows in found.values() for r in rows if r[5] is not None]
        if not vectors:
            raise InvalidInputError(
                "no vectors to train on: remember facts through a hive with an embedder first"
            )
        dims = {len(v) for v in vectors}
        if len(dims) != 1:
            raise HiveStateError(
                "the hive holds vectors of several dimensions (facts embedded by different "
                "models); train on one model's"
            )
        matrix = np.stack([from_f16(v) for v in vectors]).astype(np.float32)
        if len(matrix) > sample:
            rng = np.random.default_rng(seed)
            matrix = matrix[np.sort(rng.choice(len(matrix), sample, replace=False))]
        at = self.clock()
        new = new_centroids(
            train_centroids(matrix, lists or list_count(len(vectors)), seed=seed), at
        )
        await self._put_postings(new.postings(at))
        self._sets = None
        if settle > 0:
            await asyncio.sleep(settle)
        # read again: what was written before every writer knew the new version
        found = await self._read_lists(op, keys)
        refiled: list[Posting] = []
        for key, rows in found.items():
            scope = split_key(key)[0]
            have = [r for r in rows if r[5] is not None and len(r[5]) == next(iter(dims))]
            if not have:
                continue
            stack = np.stack([from_f16(r[5]) for r in have if r[5] is not None])
            lists_of = new.lists(stack.astype(np.float32))[:, 0]
            refiled += [
                Posting(
                    vector_key(scope, new.version, int(c)),
                    fid,
                    tf,
                    length,
                    created,
                    subject,
                    0,
                    0,
                    vec,
                )
                for (fid, tf, length, created, subject, vec), c in zip(
                    have, lists_of.tolist(), strict=True
                )
            ]
        for start in range(0, len(refiled), pr.MAX_BATCH):
            await self._put_postings(refiled[start : start + pr.MAX_BATCH])
        await self._put_postings([new.done_posting(at, len(vectors))])
        self._sets = None
        return dataclasses.replace(new, done=True, trained_on=len(vectors))

    def _every_scope(self) -> list[str]:
        """Every scope facts may be in: the hive's, each group's, each agent's."""
        return [
            HIVE,
            *(group_scope(g) for g in self.access.groups),
            *(agent_scope(a) for a in self.ring.nodes),
        ]

    async def train_vectors_if_due(
        self, *, seed: int = 0, settle: float = CENTROIDS_TTL
    ) -> CentroidSet | None:
        """:meth:`train_vectors` when the hive outgrew its centroids (semantic.due: one list
        still at AUTO_TRAIN_MIN facts, or RETRAIN_GROWTH times what they were trained on),
        else None. The admin's, with an embedder only."""
        if self.semantic is None or not self.access.is_admin:
            return None
        op = self._op()
        sets = await self._centroid_sets(op, fresh=True)
        facts = (await self.corpus(op, self._every_scope()))[0]
        if not due(sets, facts):
            return None
        return await self.train_vectors(seed=seed, settle=settle)

    def _reincarnate(
        self, pair: tuple[Fact, list[Posting]], incarnation: int
    ) -> tuple[Fact, list[Posting]]:
        """The same fact under the id of its ``incarnation``-th life."""
        fact, postings = pair
        fid = fact_id_for(fact.content, incarnation, fact.context, fact.scope)
        return _replace(fact, id=fid), [_replace_posting(p, fid) for p in postings]

    async def _bury(self, dead: dict[str, tuple[Fact, list[Posting]]]) -> tuple[set[str], set[str]]:
        """Tombstone facts found forgotten at a body owner on their terms' owners (and the
        corpus list's); returns the ids buried on a quorum of every one, and who failed."""
        op = self._op()
        at = self.clock()
        groups: dict[str, list[list[str]]] = {}
        batches: dict[str, list[Tombstone]] = {}
        for fid, (fact, postings) in dead.items():
            # the body's owners too: a term owner's tombstone may be of a forget that stopped
            # before it reached the body (it said "forget again"); this finishes it
            keys = {p.term for p in postings} | {corpus_key(fact.scope)}
            groups[fid] = [self.owners(fid), *(self.owners(t) for t in keys)]
            for a in {a for g in groups[fid] for a in g}:
                batches.setdefault(a, []).append(Tombstone(fid, at))
        replies = await op.send_all(
            {a: pr.Forget(b, tokenizer=self.tokenizer) for a, b in batches.items()}
        )
        ok = {a for a, r in replies.items() if not isinstance(r, Exception)}
        buried = {
            fid
            for fid, gs in groups.items()
            if all(self._acked(g, [a for a in g if a in ok]) for g in gs)
        }
        return buried, set(replies) - ok

    async def _put_once(
        self, prepared: Sequence[tuple[Fact, list[Posting]]], *, avoid: bool = True
    ) -> tuple[set[str], set[str], set[str]]:
        """One write of ``prepared`` (unique ids) to their owners, hinted stand-ins for owners
        that are down, and (with ``avoid``) for owners the failure detector suspects: a
        paused agent costs a write no timeout. Returns the ids that missed a write quorum,
        the ids some body owner holds a tombstone of, and the agents that failed."""
        batches: dict[str, pr.Put] = {}
        fact_owners: dict[str, list[str]] = {}
        term_owners: dict[str, tuple[str, ...]] = {}

        def batch(agent: str) -> pr.Put:
            b = batches.get(agent)
            if b is None:
                b = batches[agent] = pr.Put([], [], tokenizer=self.tokenizer, rows=[], fact_rows=[])
            return b

        # postings grouped by their owners first, then handed to each owner's batch in one
        # extend per group: a write of 1,000 facts has ~10,000 postings on 3 owners each
        groups: dict[tuple[str, ...], tuple[list[Posting], list[list[Any]]]] = {}
        for fact, postings in prepared:
            owners = fact_owners[fact.id] = self.owners(fact.id)
            reached = set(owners)
            wire = fact.to_dict()  # once, for all of its owners
            for a in owners:
                b = batch(a)
                b.facts.append(fact)
                b.fact_rows.append(wire)  # type: ignore[union-attr]
            for p in (*postings, corpus_posting(fact, postings)):
                towners = term_owners.get(p.term)
                if towners is None:
                    towners = term_owners[p.term] = tuple(self.owners(p.term))
                reached.update(towners)
                group = groups.get(towners)
                if group is None:
                    group = groups[towners] = ([], [])
                group[0].append(p)
                group[1].append(p.to_list())  # once, for all of its owners
            self.fanout.facts += 1
            self.fanout.fact_agents += len(reached)
        for towners, (posts, rows) in groups.items():
            for a in towners:
                b = batch(a)
                b.postings.extend(posts)
                b.rows.extend(rows)  # type: ignore[union-attr]
        op = self._op()
        skipped = set(batches) & op.suspects if avoid else set()
        replies = await op.send_puts({a: b for a, b in batches.items() if a not in skipped})
        ok = {a for a, r in replies.items() if not isinstance(r, Exception)}
        down = set(batches) - ok
        dead: set[str] = set()
        for r in replies.values():
            if not isinstance(r, Exception):
                dead.update(expect(r, pr.PutReply).tombstoned)
        # Sloppy quorum with hinted handoff (Dynamo §4.6): what a down owner should have
        # stored goes to the next agent on the ring; that agent holds it as a misplaced
        # record and hands it to the owner when it is back (memory/repair.py).
        extra_facts: dict[str, set[str]] = {}
        extra_terms: dict[str, set[str]] = {}
        hreplies: dict[str, Reply | Exception] = {}
        if down:
            hinted, fact_subs, term_subs = self._substitutes(batches, down, skipped | op.suspects)
            hreplies = await op.send_puts(dict(hinted))
            for agent, reply in hreplies.items():
                if isinstance(reply, Exception):
                    continue
                dead.update(expect(reply, pr.PutReply).tombstoned)
                for fid, _ in fact_subs.get(agent, []):
                    extra_facts.setdefault(fid, set()).add(agent)
                for term in term_subs.get(agent, set()):
                    extra_terms.setdefault(term, set()).add(agent)
        # many terms share their owners: decide each set of owners once (the decision for
        # a term with hinted stand-ins depends on those too)
        plain: dict[tuple[str, ...], bool] = {}
        term_ok: dict[str, bool] = {}
        for t, towners in term_owners.items():
            extra = extra_terms.get(t)
            if extra:
                term_ok[t] = self._acked(towners, [*(a for a in towners if a in ok), *extra])
                continue
            known = plain.get(towners)
            if known is None:
                known = plain[towners] = self._acked(towners, [a for a in towners if a in ok])
            term_ok[t] = known
        lost: set[str] = set()
        for fact, postings in prepared:
            owners = fact_owners[fact.id]
            acks = [*(a for a in owners if a in ok), *extra_facts.get(fact.id, ())]
            if (
                not self._acked(owners, acks)
                or not term_ok[corpus_key(fact.scope)]
                or not all(term_ok[p.term] for p in postings)
            ):
                lost.add(fact.id)
        errors = {a for a, r in [*replies.items(), *hreplies.items()] if isinstance(r, Exception)}
        return lost, dead, errors

    def _substitutes(
        self,
        batches: dict[str, pr.Put],
        down: set[str],
        avoid: set[str] | frozenset[str] = frozenset(),
    ) -> tuple[dict[str, pr.Put], dict[str, list[tuple[str, int]]], dict[str, set[str]]]:
        """Re-address the batches of ``down`` agents: each record to the first agent after
        its owners on the ring that is up. Returns the new batches, and per substitute the
        (fact id, position) and terms it stands in for."""
        hinted: dict[str, pr.Put] = {}
        fact_subs: dict[str, list[tuple[str, int]]] = {}
        term_subs: dict[str, set[str]] = {}
        everyone = len(self.ring)
        cache: dict[str, dict[str, str]] = {}
        domain = self.ring.domain

        def stand_in(key: str, owner: str) -> str | None:
            """The live agent after the key's owners that stands in for ``owner``: the k-th
            one for the k-th down owner, so two down owners never share a stand-in (one
            agent holding two "copies" would be one copy). Stand-ins in domains that hold
            none of the key's live copies come first, each in a domain of its own."""
            subs = cache.get(key)
            if subs is None:
                order = self.ring.owners(place(key), everyone)
                owners = order[: self.replication]
                taken = {domain(a) for a in owners if a not in down}
                after = [a for a in order[self.replication :] if a not in down]
                # suspected agents stand in last (they may be paused)
                live = [a for a in after if a not in avoid] + [a for a in after if a in avoid]
                fresh: list[str] = []
                for a in live:
                    if domain(a) not in taken:
                        taken.add(domain(a))
                        fresh.append(a)
                ranked = fresh + [a for a in live if a not in fresh]
                dead = sorted(a for a in owners if a in down)
                subs = cache[key] = dict(zip(dead, ranked, strict=False))
            return subs.get(owner)

        for agent in down:
            for fact in batches[agent].facts:
                sub = stand_in(fact.id, agent)
                if sub is not None:
                    b = hinted.setdefault(sub, pr.Put([], [], tokenizer=self.tokenizer))
                    fact_subs.setdefault(sub, []).append((fact.id, len(b.facts)))
                    b.facts.append(fact)
            for posting in batches[agent].postings:
                sub = stand_in(posting.term, agent)
                if sub is not None:
                    put = hinted.setdefault(sub, pr.Put([], [], tokenizer=self.tokenizer))
                    put.postings.append(posting)
                    term_subs.setdefault(sub, set()).add(posting.term)
        return hinted, fact_subs, term_subs

    async def corpus(
        self, op: _Op, scopes: Sequence[str] = (HIVE,)
    ) -> tuple[int, float, tuple[str, ...]]:
        """N and the mean length, from the corpus lists of ``scopes`` (every live fact, tf
        1, its length): what their owners hold, not counters a coordinator adds to, so they
        cannot drift. Over several scopes, the sums of their lists (a fact is in one).
        Also the scopes whose lists hold any fact."""
        if tuple(scopes) == (HIVE,):
            # the hive's list alone: the request agents before scopes understand
            served, _ = await op.ask_owners(
                [CORPUS_TERM], self.owners, lambda ks: pr.Corpus(tokenizer=self.tokenizer)
            )
            if CORPUS_TERM not in served:
                raise AgentUnavailableError("no owner of the corpus list could be reached")
            reply: pr.CorpusReply = served[CORPUS_TERM][1]
            count, total = reply.count, reply.total_length
            return count, (total / count if count > 0 else 1.0), (HIVE,)
        keys = [corpus_key(s) for s in scopes]
        # every scope's corpus list lives with the hive's (place()): one set of owners.
        # A read quorum of them (R - W + 1: it meets every write quorum) answers, so a
        # scope is skipped as empty only when a replica that took its last write says
        # so, never on the word of one that missed it (it was down, the write went to a
        # stand-in). Those replicas answer concurrently (one round, not two).
        owners = sorted(self.owners(CORPUS_TERM), key=lambda a: a in op.suspects)
        need = len(owners) - self._quorum(owners) + 1
        request = pr.Corpus(keys, tokenizer=self.tokenizer)
        answers: dict[str, dict[str, tuple[int, float]]] = {}
        pending = list(owners)
        while pending and len(answers) < need:
            batch, pending = pending[: need - len(answers)], pending[need - len(answers) :]
            replies = await op.send_all({a: request for a in batch})
            for agent, got in replies.items():
                if isinstance(got, Exception):
                    op.failed.add(agent)
                    logger.info("agent %s failed: %s; trying the next owner", agent, got)
                    continue
                lists = expect(got, pr.CorpusReply).lists or {}
                if any(k not in lists for k in keys):
                    raise AgentUnavailableError(f"agent {agent} does not know scopes (upgrade it)")
                answers[agent] = lists
        if not answers:
            raise AgentUnavailableError("no owner of the corpus lists could be reached")
        count, total = 0, 0.0
        held: list[str] = []
        for key, scope in zip(keys, scopes, strict=True):
            # replicas agree but for writes one missed: the larger list is the fresher
            figures = max((lists[key] for lists in answers.values()), key=lambda f: f[0])
            count += figures[0]
            total += figures[1]
            # fewer than a read quorum answered: no answer of 0 can be trusted
            if figures[0] > 0 or len(answers) < need:
                held.append(scope)
        return count, (total / count if count > 0 else 1.0), tuple(held)

    # -- recall -----------------------------------------------------------------------

    def _follow(self, op: _Op) -> bool | None:
        """After an operation: None when every agent that answered routes by this ring;
        else refresh the ring, True when it changed (ask again), False when no newer one
        is known (the agents are catching up: the answer may be incomplete)."""
        before = self.ring.epoch
        if not op.epochs or op.epochs == {before}:
            return None
        ring = self.refresh() if self.refresh is not None else None
        if ring is not None and ring.epoch != before:
            logger.info("ring changed (%d agents); asking again", len(ring))
            self.ring = ring
            return True
        return False

    async def recall(
        self,
        question: str,
        limit: int = 10,
        scopes: Sequence[str] | None = None,
        access: Access | None = None,
    ) -> Hits:
        """The ``limit`` best facts for ``question`` among the facts of ``scopes`` (None:
        what ``access`` sees, memory/scopes.py), ranked as one agent holding just those.
        Complete only when every replica set that mattered answered, on the ring the agents
        route by: agents that answer with another ring's epoch make this coordinator
        refresh its ring and ask again."""
        seen = (access or self.access).scopes(scopes)
        for _ in range(3):
            hits, op = await self._recall_once(question, limit, seen)
            changed = self._follow(op)
            if changed is None:
                return hits
            if not changed:
                hits.complete = False
                return hits
        hits.complete = False
        return hits

    async def _recall_once(
        self, question: str, limit: int, scopes: Sequence[str] = (HIVE,)
    ) -> tuple[Hits, _Op]:
        if not isinstance(question, str) or not question.strip():
            raise InvalidInputError("the question is empty")
        if limit < 1 or limit > MAX_LIMIT:
            raise InvalidInputError(f"limit must be from 1 to {MAX_LIMIT}, got {limit}")
        counts, _ = term_counts(question, self.tokenizer)
        hits = Hits()
        op = self._op()
        if not counts and self.semantic is None:
            return hits, op
        keys: dict[str, str] = {}
        near: asyncio.Future[tuple[list[NearFact], set[str]]] | None = None
        weights: dict[str, int] = {}

        def ranked(lists: dict[str, TermList]) -> Ranking:
            if len(scopes) == 1:
                return rank(lists, n_docs, avgdl, weights)
            df: dict[str, int] = {}
            for k, tl in lists.items():
                df[keys[k]] = df.get(keys[k], 0) + tl.df
            return rank(lists, n_docs, avgdl, weights, {k: df[keys[k]] for k in lists})

        try:
            n_docs, avgdl, held = await self.corpus(op, scopes)
            # each term's list in each scope, in the question's order (memory/scopes.py);
            # not in a scope whose corpus list is empty (an asker's own scope, often): no
            # fact there has postings (a read quorum of its replicas says so, corpus()).
            # Measured in bench_scopes --quick (an agent in one of 100 groups): 13.10
            # agents contacted per recall; 14.95 asking every scope's lists.
            keys.update({scoped(s, t): t for t in counts for s in held})
            # one question term weighs as much as its repetitions in the question
            weights.update({k: counts[t] for k, t in keys.items()})
            if not held or (not keys and self.semantic is None):
                return hits, op  # nothing in any scope asked for
            want = limit * 2 + 5
            if self.semantic is not None:
                # each ranking's candidates for the fusion, as bench_semantic fused them
                want = max(want, FUSED_CANDIDATES)
            # the vectors' lists, asked while the lexical lists are (memory/semantic.py)
            near = (
                asyncio.ensure_future(self._vector_hits(op, question, held, want))
                if self.semantic is not None
                else None
            )
            # counters that lag the postings (an update lost while their owners were down)
            # never hide facts: idf uses at least each list's length (rank() floors N by df)
            lists, lost = await self._term_lists(op, list(keys), avgdl, self.first_cut)
            ranking = ranked(lists)
            for _ in range(32):
                asked = ranking.needs_exact(want)
                if asked:
                    found = await self._exact(op, asked, avgdl)
                    add_exact(ranking, found, asked, avgdl)
                    continue
                if ranking.is_safe(want):
                    break
                grow = [t for t, tl in lists.items() if not tl.complete]
                # the next page of each incomplete list, three times what it has
                more, more_lost = await self._term_lists(
                    op,
                    grow,
                    avgdl,
                    max(len(lists[t]) for t in grow) * 3,
                    {t: lists[t].cursor for t in grow},
                )
                lost |= more_lost
                for t, page in more.items():
                    lists[t].extend(page)
                ranking = ranked(lists)
            top = ranking.top(want)
            if near is not None:
                vector_hits, vector_lost = await near
                lost |= vector_lost
                # whether the index knows every word of the question (fuse's "adaptive")
                known = {keys[k] for k, tl in lists.items() if tl.df > 0}
                top = self._fused(top, vector_hits, want, covered=set(counts) <= known)
            ordered = apply_supersession(top)
            # at least COVER_TOP bodies, which covering_first orders: the first fact of a
            # short result is the first of a long one
            await self._fetch_bodies(op, ordered, max(limit, COVER_TOP), hits, lost)
            # a newer fact restating one of the first few with another value may rank a
            # little lower, below the result: read the few that could (same terms
            # matched, newer, close in score). Then the newest comes first (restate.py).
            extra = Hits()
            maybe = _restatement_candidates(ordered, hits, lists)
            if maybe:
                await self._fetch_bodies(op, maybe, len(maybe), extra, set())
            # (on the first RESTATE_TOP: the step compares facts pairwise, on the loop)
            # then, among the first few, the facts that hold most of the question's terms,
            # statements before questions (restate.py)
            head = head_first([*hits[:RESTATE_TOP], *extra], question)
            hits[:] = [*head, *hits[RESTATE_TOP:]][:limit]
            # some term or fact no replica could answer for: say so, and who failed
            hits.complete = not lost
            hits.unreachable = tuple(sorted(op.failed))
            return hits, op
        finally:
            if near is not None and not near.done():
                near.cancel()  # the lexical part failed: nobody waits for the vectors
            self.fanout.recalls += 1
            self.fanout.recall_agents += len(op.contacted)

    async def _vector_hits(
        self, op: _Op, question: str, scopes: Sequence[str], k: int
    ) -> tuple[list[NearFact], set[str]]:
        """The ``k`` facts of ``scopes`` nearest to the question by their vectors: the
        ``nprobe`` nearest lists of each centroid version served, one owner each."""
        assert self.semantic is not None
        try:
            sets = await self._centroid_sets(op)
            (vec,) = await embed_off_loop(self.semantic.embedder, [question])
        except TransportError as exc:
            # the embedder's endpoint or every owner of the centroids is unreachable: the
            # words still answer, and the result says it is incomplete
            logger.warning("recall without vectors: %s", exc)
            return [], {CENTROIDS}
        query = np.asarray(vec, dtype="<f4")
        keys = [
            vector_key(scope, s.version, int(c))
            for s in sets
            for c in s.lists(query[None, :], self.semantic.nprobe)[0]
            for scope in scopes
        ]
        raw = query.tobytes()
        served_, lost = await op.ask_owners(
            keys, self.owners, lambda ks: pr.Vectors(ks, raw, min(k, pr.MAX_VECTOR_K))
        )
        tops = [served_[key][1].lists[key] for key in keys if key in served_]
        return merge_tops(tops, k), lost

    def _fused(
        self, lexical: list[Any], vector: list[NearFact], k: int, *, covered: bool = True
    ) -> list[Any]:
        """The best ``k`` of both rankings by :func:`vectors.fuse` (the method and weights
        bench_semantic chose: ``weight_uncovered`` when some word of the question is in no
        fact, when set), as candidates with their fused scores."""
        assert self.semantic is not None
        info = {c.fact_id: (c.created, c.subject) for c in lexical}
        for h in vector:
            info.setdefault(h.fact_id, (h.created, h.subject))
        fused = fuse(
            [(c.fact_id, c.score) for c in lexical],
            [(h.fact_id, h.score) for h in vector],
            limit=k,
            **self.semantic.fusion(covered),
        )
        return [
            Candidate(fid, score, created=info[fid][0], subject=info[fid][1])
            for fid, score in fused
        ]

    async def _term_lists(
        self,
        op: _Op,
        terms: list[str],
        avgdl: float,
        limit: int | None,
        after: dict[str, tuple[float, str] | None] | None = None,
    ) -> tuple[dict[str, TermList], set[str]]:
        def build(ts: list[str]) -> Request:
            cursors = {t: c for t in ts if (c := (after or {}).get(t)) is not None}
            return pr.Postings(ts, avgdl, limit, after=cursors or None, tokenizer=self.tokenizer)

        served, lost = await op.ask_owners(terms, self.owners, build)
        # in the question's order, whoever answered first: rank() adds each fact's terms in
        # the order of the lists, and floating-point sums depend on it (a hive of 7 ranked a
        # fact 2e-16 above one agent when its owners answered in another order)
        lists = {t: from_wire(served[t][1].lists[t]) for t in terms if t in served}
        return lists, lost

    async def _exact(
        self, op: _Op, asked: dict[str, list[str]], avgdl: float
    ) -> dict[str, TermList]:
        served, _ = await op.ask_owners(
            list(asked),
            self.owners,
            lambda ts: pr.Postings(
                ts, avgdl, only={t: asked[t] for t in ts}, tokenizer=self.tokenizer
            ),
        )
        return {t: from_wire(reply.lists[t]) for t, (_, reply) in served.items()}

    async def _fetch_bodies(
        self, op: _Op, ordered: list[Any], limit: int, hits: Hits, lost: set[str]
    ) -> None:
        """The bodies of the best facts, in order, until ``limit`` are found. A replica that
        lacks a body (it missed the write, or was rebuilt) sends the request on to the next
        owner; a fact no owner could answer for makes the result incomplete."""
        scores = {c.fact_id: c.score for c in ordered}
        queue = [c.fact_id for c in ordered]

        def has(fid: str, reply: pr.FactsReply) -> bool:
            return fid in reply.tombstoned or any(f.id == fid for f in reply.facts)

        while queue and len(hits) < limit:
            batch, queue = queue[: limit - len(hits)], queue[limit - len(hits) :]
            served, missing = await op.ask_owners(
                batch, self.owners, lambda ids: pr.Facts(ids), has
            )
            lost |= missing
            found: dict[str, Fact] = {}
            for _agent, reply in served.values():
                for f in reply.facts:
                    found[f.id] = f
            for fid in batch:
                f = found.get(fid)
                if f is None:
                    continue  # forgotten meanwhile, or no owner could say
                hits.append(
                    Hit(
                        f.id,
                        f.content,
                        scores[fid],
                        f.kind.value,
                        f.created,
                        f.subject,
                        f.metadata,
                        context=f.context,
                        scope=f.scope,
                    )
                )

    # -- forget -----------------------------------------------------------------------

    async def _live_first(
        self,
        op: _Op,
        agents: Sequence[str],
        message: Request,
        enough: Callable[[dict[str, Reply | Exception]], bool],
    ) -> dict[str, Reply | Exception]:
        """Send ``message`` to the ``agents`` the failure detector does not suspect; to the
        suspected ones too only when those replies are not ``enough``. So an operation
        that needs W of R replicas costs no timeout for a paused one."""
        live = [a for a in agents if a not in op.suspects]
        replies = await op.send_all({a: message for a in live})
        rest = [a for a in agents if a in op.suspects]
        if rest and not enough(replies):
            replies.update(await op.send_all({a: message for a in rest}))
        return replies

    def _check_tomb_quorum(
        self, fact_id: str, groups: list[list[str]], ok: set[str], down: set[str]
    ) -> None:
        short = [g for g in groups if not self._acked(g, [a for a in g if a in ok])]
        if short:
            raise TransportError(
                f"the tombstone of {fact_id} did not reach a quorum of {len(short)} replica "
                f"set(s); unreachable: {', '.join(sorted(down))}; forget again to finish"
            )

    async def forget(self, fact_id: str, access: Access | None = None) -> bool:
        """Tombstone a fact on its owners and on the owners of its terms. Returns True when
        the fact existed. Forgetting twice is fine. A fact in a scope ``access`` may not
        use is left alone and reported as not found (False): the caller learns nothing
        about it, not even that it exists; so is one whose body no owner has, unless the
        caller is the admin (who may finish a forget that stopped part way).

        Every body owner is asked for the body (one may have lost its copy), so the terms
        are known; the tombstone must reach a write quorum of the body's owners and of each
        term's owners, so that repair can carry it to the rest (a posting pushed to a
        replica holding the tombstone is refused and the tombstone comes back)."""
        check_fact_id(fact_id)
        op = self._op()
        body_owners = self.owners(fact_id)

        def found(replies: dict[str, Reply | Exception]) -> bool:
            return any(isinstance(r, pr.FactsReply) and r.facts for r in replies.values())

        asked = await self._live_first(op, body_owners, pr.Facts([fact_id]), found)
        body: Fact | None = None
        for reply in asked.values():
            if isinstance(reply, pr.FactsReply) and reply.facts:
                body = reply.facts[0]
                break
        access = access or self.access
        if (body is None and not access.is_admin) or (
            body is not None and not access.may(body.scope)
        ):
            return False
        # the corpus list's owners always: a fact whose body is lost may still be counted
        # its content's terms and its context's (index_fact made postings of both)
        held = index_fact(body, self.tokenizer)[1] if body is not None else []
        if body is not None and body.vector is not None:
            # its vector's lists under every version served (memory/semantic.py)
            held += filed(body, await self._centroid_sets(op))
        terms = [*(p.term for p in held), corpus_key(body.scope if body else HIVE)]
        term_groups = [self.owners(t) for t in terms]
        tomb = Tombstone(fact_id, self.clock())
        # Phase 1, the terms' owners (but not the body's): if some term's replica set cannot
        # take the tombstone, stop while the body is still there to tell a retry its terms.
        first = sorted({a for g in term_groups for a in g} - set(body_owners))
        message = pr.Forget([tomb], tokenizer=self.tokenizer)

        def quorum(groups: list[list[str]], extra: set[str]) -> Callable[[dict[str, Any]], bool]:
            def enough(replies: dict[str, Reply | Exception]) -> bool:
                ok = {a for a, r in replies.items() if not isinstance(r, Exception)} | extra
                return all(self._acked(g, [a for a in g if a in ok]) for g in groups)

            return enough

        replies = await self._live_first(op, first, message, quorum(term_groups, set(body_owners)))
        ok = {a for a, r in replies.items() if not isinstance(r, Exception)}
        can = ok | set(body_owners)
        self._check_tomb_quorum(fact_id, term_groups, can, set(first) - ok)
        # Phase 2, the body's owners.
        second = await self._live_first(
            op, body_owners, message, quorum([body_owners, *term_groups], ok)
        )
        replies.update(second)
        ok |= {a for a, r in second.items() if not isinstance(r, Exception)}
        self._check_tomb_quorum(fact_id, [body_owners, *term_groups], ok, set(replies) - ok)
        removed = any(
            isinstance(r, pr.ForgetReply) and r.removed[0]
            for a, r in replies.items()
            if a in body_owners
        )
        return body is not None or removed

    # -- one fact -----------------------------------------------------------------------

    async def fact(self, fact_id: str, access: Access | None = None) -> Fact | None:
        """The fact ``fact_id`` as its owners hold it, or None: forgotten, never stored, or
        in a scope ``access`` may not see (the same answer: nothing about it).
        AgentUnavailableError when too few owners answered to say it is not there (fewer
        than a read quorum: those that did may have missed its write)."""
        check_fact_id(fact_id)
        access = access or self.access
        op = self._op()
        owners = self.owners(fact_id)
        served, _ = await op.ask_owners(
            [fact_id],
            lambda _: owners,
            lambda ids: pr.Facts(ids),
            lambda fid, reply: fid in reply.tombstoned or any(f.id == fid for f in reply.facts),
        )
        if fact_id not in served:
            answered = [a for a in owners if a not in op.failed]
            if len(answered) < len(owners) - self._quorum(owners) + 1:
                raise AgentUnavailableError(
                    f"too few owners of fact {fact_id} answered to say whether it is there "
                    f"(unreachable: {', '.join(sorted(set(owners) & op.failed))})"
                )
            return None
        body = next(iter(served[fact_id][1].facts), None)
        return body if body is not None and access.may(body.scope) else None

    # -- escalate -----------------------------------------------------------------------

    async def escalate(self, fact_id: str, scope: str, access: Access | None = None) -> str:
        """Move a fact to a wider scope (an agent's into one of its groups or the hive, a
        group's into the hive) and return its id there.

        The fact is stored in ``scope`` (its content, context, kind, time, subject and what
        it supersedes unchanged; an id of its own, since a scope is part of the id), then
        forgotten in the old one, so exactly one copy stays. Facts that superseded the old
        one keep doing so: the moved fact's subject is the old one's, else the old id
        (what ``supersedes`` joins). Not kept: the link of a fact written with
        ``supersedes`` of an old one that had a subject of its own (it names the old id,
        which the moved fact does not carry); give facts of one thing one subject.
        Stopped in between, the fact is in both scopes for a moment; escalating again
        finishes it (both steps are idempotent)."""
        access = access or self.access
        target = access.check(scope)
        body = await self.fact(fact_id, access)
        if body is None:
            raise NotFoundError(f"no fact {fact_id} (forgotten, or never remembered)")
        if body.scope == target:
            return fact_id
        if not access.widens(body.scope, target):
            raise InvalidInputError(
                f"scope {target} does not hold everyone scope {body.scope} does: a fact is "
                "escalated outward only (an agent's into one of its groups or the hive, a "
                "group's into the hive)"
            )
        moved = _replace(
            body,
            scope=target,
            id=fact_id_for(body.content, 0, body.context, target),
            # what superseded the old id joins the moved fact by this subject (index.py)
            subject=body.subject or fact_id,
        )
        [new_id] = await self.remember_prepared([index_fact(moved, self.tokenizer)])
        await self.forget(fact_id, Access.admin(self.access.groups))
        return new_id


def _restatement_candidates(
    ordered: Sequence[Any], hits: Sequence[Hit], lists: dict[str, TermList]
) -> list[Any]:
    """The candidates ranked after the last of ``hits`` that could restate one of them
    (of a longer result than RESTATE_ALL, its first only: what a script reading the first
    line sees): matched by the same question terms, newer, and scored at least
    RESTATE_SCORE of it; at most RESTATE_WINDOW. None, often: then a recall reads no body
    more."""
    if not hits:
        return []
    ids = {t: set(tl.cols.ids.tolist()) for t, tl in lists.items()}

    def matched(fid: str) -> frozenset[str]:
        # the question's terms, whatever scope's list the fact is on
        return frozenset(split_key(t)[1] for t, have in ids.items() if fid in have)

    fetched = {h.id for h in hits}
    positions = [i for i, c in enumerate(ordered) if c.fact_id in fetched]
    scores = {c.fact_id: c.score for c in ordered}
    head = hits if len(hits) <= RESTATE_ALL else hits[:1]
    shown = [(matched(h.id), h.created, scores.get(h.id, 0.0)) for h in head]
    out = []
    for c in ordered[max(positions, default=-1) + 1 :]:
        m = matched(c.fact_id)
        if any(
            m == terms and c.created > created and c.score >= RESTATE_SCORE * score
            for terms, created, score in shown
        ):
            out.append(c)
            if len(out) == RESTATE_WINDOW:
                break
    return out


def _replace(fact: Fact, **changes: Any) -> Fact:
    return dataclasses.replace(fact, **changes)


def _replace_posting(p: Posting, fact_id: str) -> Posting:
    return dataclasses.replace(p, fact_id=fact_id)
