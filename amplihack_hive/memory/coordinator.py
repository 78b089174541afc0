"""The coordinator: turns remember / recall / forget into requests to the right agents.

Placement (DESIGN.md):
- a fact's body lives on the R ring owners of its id;
- each term's posting list lives on the R ring owners of the term;
- the corpus counters (fact count, total length: what BM25 needs besides the lists) live
  on the R owners of :data:`CORPUS_KEY`.

So recall never guesses where a fact lives from the question: it asks the owners of the
question's terms, which hold every posting of those terms. Agents contacted per recall is
about (terms + K + 1), whatever the number of agents.

Any agent (or a client) can coordinate; the coordinator holds no records itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from amplihack_hive.errors import (
    AgentUnavailableError,
    InvalidInputError,
    TransportError,
    WriteQuorumError,
)
from amplihack_hive.memory.index import (
    TermList,
    add_exact,
    apply_supersession,
    from_wire,
    rank,
)
from amplihack_hive.memory.records import (
    MAX_CONTENT_BYTES,
    Fact,
    Posting,
    Tombstone,
    check_fact_id,
)
from amplihack_hive.memory.repair import CORPUS_KEY
from amplihack_hive.memory.ring import HashRing
from amplihack_hive.memory.text import term_counts

logger = logging.getLogger(__name__)

Message = dict[str, Any]
#: Postings an owner sends per term before the coordinator asks for more.
FIRST_CUT = 256
#: The fields a remember item (a dict) may carry.
ITEM_FIELDS = ("content", "kind", "metadata", "subject", "supersedes", "created", "confidence")


class Transport(Protocol):
    """How a coordinator reaches agents. Implementations: in-process and HTTP."""

    async def request(self, agent: str, message: Message) -> Message:
        """Send one request; raise TransportError when the agent cannot answer."""
        ...


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    content: str
    score: float
    kind: str
    created: float
    subject: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "content": self.content,
            "score": round(self.score, 6),
            "kind": self.kind,
            "created": self.created,
            "subject": self.subject,
            "metadata": self.metadata,
        }


class Hits(list[Hit]):
    """Recall results, best first. ``complete`` is False when some replica set could not be
    reached, so the answer may miss facts."""

    complete: bool = True
    unreachable: tuple[str, ...] = ()


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

    async def send(self, agent: str, message: Message) -> Message:
        self.contacted.add(agent)
        return await self.transport.request(agent, message)

    async def send_all(self, batches: dict[str, Message]) -> dict[str, Message | Exception]:
        """Send one request per agent concurrently; failures come back as exceptions."""
        agents = list(batches)
        results = await asyncio.gather(
            *(self.send(a, batches[a]) for a in agents), return_exceptions=True
        )
        out: dict[str, Message | Exception] = {}
        for a, r in zip(agents, results, strict=True):
            if isinstance(r, BaseException) and not isinstance(r, Exception):
                raise r
            out[a] = r
        return out

    async def ask_owners(
        self,
        keys: Iterable[str],
        owners: Callable[[str], list[str]],
        build: Callable[[list[str]], Message],
        has: Callable[[str, Message], bool] | None = None,
    ) -> tuple[dict[str, tuple[str, Message]], set[str]]:
        """Ask one live owner per key, preferring agents already contacted; on failure (or
        when ``has`` says that owner's answer lacks the key) try the key's next owner.
        Returns key -> (agent, response) and the keys nobody served."""
        # replicas the failure detector suspects are asked last (sorted() is stable)
        pending = {k: sorted(owners(k), key=lambda a: a in self.suspects) for k in keys}
        served: dict[str, tuple[str, Message]] = {}
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
                    logger.warning("agent %s failed: %s; trying the next owner", agent, reply)
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
        self.fanout = Fanout()
        #: Agents the failure detector suspects (asked last); set by the agent process.
        self.suspects: Callable[[], set[str]] = set

    def _op(self) -> _Op:
        return _Op(self.transport, frozenset(self.suspects()))

    def owners(self, key: str) -> list[str]:
        return self.ring.owners(key, self.replication)

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

    def prepare(self, item: str | dict[str, Any], **defaults: Any) -> tuple[Fact, list[Posting]]:
        """Validate one item and build its fact and postings (no I/O)."""
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
        if args.get("supersedes") is not None:
            check_fact_id(args["supersedes"])
            args.setdefault("subject", None)
            if args["subject"] is None:
                args["subject"] = args["supersedes"]
        fact = Fact.new(content, agent=self.agent, **args)
        size = len(fact.content.encode("utf-8"))
        if size > self.max_content_bytes:
            raise InvalidInputError(
                f"content is {size} bytes; this hive takes at most {self.max_content_bytes}"
            )
        if fact.created == 0.0:
            fact = _replace(fact, created=self.clock())
        counts, length = term_counts(fact.content)
        fact = _replace(fact, length=length)
        postings = [
            Posting(t, fact.id, tf, length, fact.created, fact.subject) for t, tf in counts.items()
        ]
        return fact, postings

    async def remember_many(
        self, items: Sequence[str | dict[str, Any]], **defaults: Any
    ) -> list[str]:
        """Store facts; return their ids in input order. Raises TransportError naming the
        facts not stored on a write quorum of their owners."""
        return await self.remember_prepared([self.prepare(it, **defaults) for it in items])

    async def remember_prepared(self, prepared: Sequence[tuple[Fact, list[Posting]]]) -> list[str]:
        """Store facts already built by :meth:`prepare`; return their ids in order."""
        # the same content twice in one call is one fact
        unique: dict[str, tuple[Fact, list[Posting]]] = {}
        for fact, postings in prepared:
            unique.setdefault(fact.id, (fact, postings))
        batches: dict[str, dict[str, list[Any]]] = {}
        # (agent, position of the fact in that agent's batch): where to read "inserted"
        fact_slots: dict[str, list[tuple[str, int]]] = {}
        term_owners: dict[str, list[str]] = {}

        def batch(agent: str) -> dict[str, list[Any]]:
            b = batches.get(agent)
            if b is None:
                b = batches[agent] = {"facts": [], "postings": []}
            return b

        for fact, postings in unique.values():
            owners = self.owners(fact.id)
            reached = set(owners)
            encoded = fact.to_dict()
            slots = fact_slots[fact.id] = []
            for a in owners:
                facts = batch(a)["facts"]
                slots.append((a, len(facts)))
                facts.append(encoded)
            for p in postings:
                towners = term_owners.get(p.term)
                if towners is None:
                    towners = term_owners[p.term] = self.owners(p.term)
                reached.update(towners)
                row = p.to_list()
                for a in towners:
                    batch(a)["postings"].append(row)
            self.fanout.facts += 1
            self.fanout.fact_agents += len(reached)
        op = self._op()
        replies = await op.send_all({a: {"op": "put", **b} for a, b in batches.items()})
        ok = {a for a, r in replies.items() if not isinstance(r, Exception)}
        down = set(batches) - ok
        # Sloppy quorum with hinted handoff (Dynamo §4.6): what a down owner should have
        # stored goes to the next agent on the ring; that agent holds it as a misplaced
        # record and hands it to the owner when it is back (memory/repair.py).
        extra_facts: dict[str, set[str]] = {}
        extra_terms: dict[str, set[str]] = {}
        sub_slots: dict[str, tuple[str, int]] = {}
        hreplies: dict[str, Message | Exception] = {}
        if down:
            hinted, fact_subs, term_subs = self._substitutes(batches, down)
            hreplies = await op.send_all({a: {"op": "put", **b} for a, b in hinted.items()})
            for agent, reply in hreplies.items():
                if isinstance(reply, Exception):
                    continue
                for fid, i in fact_subs.get(agent, []):
                    extra_facts.setdefault(fid, set()).add(agent)
                    sub_slots.setdefault(fid, (agent, i))
                for term in term_subs.get(agent, set()):
                    extra_terms.setdefault(term, set()).add(agent)
        term_ok = {
            t: self._acked(owners, [*(a for a in owners if a in ok), *extra_terms.get(t, ())])
            for t, owners in term_owners.items()
        }
        new_count = new_length = 0
        failed: list[str] = []
        for fact, postings in unique.values():
            acked = [(a, i) for a, i in fact_slots[fact.id] if a in ok]
            owners = [a for a, _ in fact_slots[fact.id]]
            if not self._acked(
                owners, [*(a for a, _ in acked), *extra_facts.get(fact.id, ())]
            ) or not all(term_ok[p.term] for p in postings):
                failed.append(fact.id)
                continue
            # count a fact once: when the first replica that answered says it is new to it
            if acked:
                agent, i = acked[0]
                reply = replies[agent]
            else:
                agent, i = sub_slots[fact.id]
                reply = hreplies[agent]
            assert not isinstance(reply, Exception)
            if reply["inserted"][i]:
                new_count += 1
                new_length += fact.length
        if new_count:
            try:
                await self._add_corpus(op, new_count, new_length)
            except AgentUnavailableError as exc:
                # the facts are stored durably; only ranking statistics lag (repair keeps
                # the largest counter), so the write is not reported as failed
                logger.warning("corpus counters not updated for %d facts: %s", new_count, exc)
        if failed:
            errors = sorted(
                {a for a, r in [*replies.items(), *hreplies.items()] if isinstance(r, Exception)}
            )
            lost = set(failed)
            raise WriteQuorumError(
                f"{len(failed)} of {len(unique)} facts were not stored on a write quorum "
                f"of their replicas; unreachable: {', '.join(errors)}",
                stored=[f.id for f, _ in prepared if f.id not in lost],
                failed=failed,
                unreachable=errors,
            )
        return [f.id for f, _ in prepared]

    def _substitutes(
        self, batches: dict[str, dict[str, list[Any]]], down: set[str]
    ) -> tuple[
        dict[str, dict[str, list[Any]]], dict[str, list[tuple[str, int]]], dict[str, set[str]]
    ]:
        """Re-address the batches of ``down`` agents: each record to the first agent after
        its owners on the ring that is up. Returns the new batches, and per substitute the
        (fact id, position) and terms it stands in for."""
        hinted: dict[str, dict[str, list[Any]]] = {}
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
                order = self.ring.owners(key, everyone)
                owners = order[: self.replication]
                taken = {domain(a) for a in owners if a not in down}
                live = [a for a in order[self.replication :] if a not in down]
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
            for d in batches[agent]["facts"]:
                sub = stand_in(d["id"], agent)
                if sub is not None:
                    b = hinted.setdefault(sub, {"facts": [], "postings": []})
                    fact_subs.setdefault(sub, []).append((d["id"], len(b["facts"])))
                    b["facts"].append(d)
            for row in batches[agent]["postings"]:
                sub = stand_in(row[0], agent)
                if sub is not None:
                    hinted.setdefault(sub, {"facts": [], "postings": []})["postings"].append(row)
                    term_subs.setdefault(sub, set()).add(row[0])
        return hinted, fact_subs, term_subs

    async def _add_corpus(self, op: _Op, count: int, length: int) -> None:
        owners = self.owners(CORPUS_KEY)
        replies = await op.send_all({a: {"op": "corpus", "add": [count, length]} for a in owners})
        if not any(not isinstance(r, Exception) for r in replies.values()):
            raise AgentUnavailableError("no owner of the corpus counters could be reached")

    async def corpus(self, op: _Op) -> tuple[int, float]:
        served, _ = await op.ask_owners(
            [CORPUS_KEY], lambda k: self.owners(k), lambda ks: {"op": "corpus"}
        )
        if CORPUS_KEY not in served:
            raise AgentUnavailableError("no owner of the corpus counters could be reached")
        reply = served[CORPUS_KEY][1]
        count, total = int(reply["count"]), int(reply["total_length"])
        return count, (total / count if count > 0 else 1.0)

    # -- recall -----------------------------------------------------------------------

    async def recall(self, question: str, limit: int = 10) -> Hits:
        if not isinstance(question, str) or not question.strip():
            raise InvalidInputError("the question is empty")
        if limit < 1:
            raise InvalidInputError(f"limit must be at least 1, got {limit}")
        counts, _ = term_counts(question)
        hits = Hits()
        if not counts:
            return hits
        op = self._op()
        try:
            n_docs, avgdl = await self.corpus(op)
            # counters that lag the postings (an update lost while their owners were down)
            # never hide facts: idf uses at least each list's length (rank() floors N by df)
            lists, lost = await self._term_lists(op, list(counts), avgdl, self.first_cut)
            # one question term weighs as much as its repetitions in the question
            want = limit * 2 + 5
            ranking = rank(lists, n_docs, avgdl, dict(counts))
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
                ranking = rank(lists, n_docs, avgdl, dict(counts))
            ordered = apply_supersession(ranking.top(want))
            await self._fetch_bodies(op, ordered, limit, hits, lost)
            # some term or fact no replica could answer for: say so, and who failed
            hits.complete = not lost
            hits.unreachable = tuple(sorted(op.failed))
            return hits
        finally:
            self.fanout.recalls += 1
            self.fanout.recall_agents += len(op.contacted)

    async def _term_lists(
        self,
        op: _Op,
        terms: list[str],
        avgdl: float,
        limit: int | None,
        after: dict[str, tuple[float, str] | None] | None = None,
    ) -> tuple[dict[str, TermList], set[str]]:
        def build(ts: list[str]) -> Message:
            message: Message = {"op": "postings", "terms": ts, "avgdl": avgdl, "limit": limit}
            cursors = {t: c for t in ts if (c := (after or {}).get(t)) is not None}
            if cursors:
                message["after"] = {t: list(c) for t, c in cursors.items()}
            return message

        served, lost = await op.ask_owners(terms, self.owners, build)
        lists = {term: from_wire(reply["lists"][term]) for term, (_, reply) in served.items()}
        return lists, lost

    async def _exact(
        self, op: _Op, asked: dict[str, list[str]], avgdl: float
    ) -> dict[str, TermList]:
        served, _ = await op.ask_owners(
            list(asked),
            self.owners,
            lambda ts: {
                "op": "postings",
                "terms": ts,
                "avgdl": avgdl,
                "only": {t: asked[t] for t in ts},
            },
        )
        return {t: from_wire(reply["lists"][t]) for t, (_, reply) in served.items()}

    async def _fetch_bodies(
        self, op: _Op, ordered: list[Any], limit: int, hits: Hits, lost: set[str]
    ) -> None:
        """The bodies of the best facts, in order, until ``limit`` are found. A replica that
        lacks a body (it missed the write, or was rebuilt) sends the request on to the next
        owner; a fact no owner could answer for makes the result incomplete."""
        scores = {c.fact_id: c.score for c in ordered}
        queue = [c.fact_id for c in ordered]

        def has(fid: str, reply: Message) -> bool:
            return fid in reply["tombstoned"] or any(d["id"] == fid for d in reply["facts"])

        while queue and len(hits) < limit:
            batch, queue = queue[: limit - len(hits)], queue[limit - len(hits) :]
            served, missing = await op.ask_owners(
                batch, self.owners, lambda ids: {"op": "facts", "ids": ids}, has
            )
            lost |= missing
            found: dict[str, Fact] = {}
            for _agent, reply in served.values():
                for d in reply["facts"]:
                    found[d["id"]] = Fact.from_dict(d)
            for fid in batch:
                f = found.get(fid)
                if f is None:
                    continue  # forgotten meanwhile, or no owner could say
                hits.append(
                    Hit(
                        f.id, f.content, scores[fid], f.kind.value, f.created, f.subject, f.metadata
                    )
                )

    # -- forget -----------------------------------------------------------------------

    def _check_tomb_quorum(
        self, fact_id: str, groups: list[list[str]], ok: set[str], down: set[str]
    ) -> None:
        short = [g for g in groups if not self._acked(g, [a for a in g if a in ok])]
        if short:
            raise TransportError(
                f"the tombstone of {fact_id} did not reach a quorum of {len(short)} replica "
                f"set(s); unreachable: {', '.join(sorted(down))}; forget again to finish"
            )

    async def forget(self, fact_id: str) -> bool:
        """Tombstone a fact on its owners and on the owners of its terms. Returns True when
        the fact existed. Forgetting twice is fine.

        Every body owner is asked for the body (one may have lost its copy), so the terms
        are known; the tombstone must reach a write quorum of the body's owners and of each
        term's owners, so that repair can carry it to the rest (a posting pushed to a
        replica holding the tombstone is refused and the tombstone comes back)."""
        check_fact_id(fact_id)
        op = self._op()
        body_owners = self.owners(fact_id)
        asked = await op.send_all({a: {"op": "facts", "ids": [fact_id]} for a in body_owners})
        body: Fact | None = None
        for reply in asked.values():
            if not isinstance(reply, Exception) and reply["facts"]:
                body = Fact.from_dict(reply["facts"][0])
                break
        term_groups = (
            [self.owners(t) for t in term_counts(body.content)[0]] if body is not None else []
        )
        tomb = Tombstone(fact_id, self.clock()).to_list()
        # Phase 1, the terms' owners (but not the body's): if some term's replica set cannot
        # take the tombstone, stop while the body is still there to tell a retry its terms.
        first = {a for g in term_groups for a in g} - set(body_owners)
        replies = await op.send_all({a: {"op": "forget", "tombstones": [tomb]} for a in first})
        ok = {a for a, r in replies.items() if not isinstance(r, Exception)}
        can = ok | set(body_owners)
        self._check_tomb_quorum(fact_id, term_groups, can, first - ok)
        # Phase 2, the body's owners.
        second = await op.send_all({a: {"op": "forget", "tombstones": [tomb]} for a in body_owners})
        replies.update(second)
        ok |= {a for a, r in second.items() if not isinstance(r, Exception)}
        self._check_tomb_quorum(fact_id, [body_owners, *term_groups], ok, set(replies) - ok)
        removed = any(
            not isinstance(r, Exception) and r["removed"][0]
            for a, r in replies.items()
            if a in body_owners
        )
        if body is not None:
            await self._add_corpus(op, -1, -body.length)
        return body is not None or removed


def _replace(fact: Fact, **changes: Any) -> Fact:
    from dataclasses import replace

    return replace(fact, **changes)
