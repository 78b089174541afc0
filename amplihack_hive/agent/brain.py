"""The agent's loop: observe, orient, decide, act.

- observe: content to learn and questions arrive over HTTP;
- orient: content is checked and tokenized (its id is its content address, so a repeat
  is recognised as the same fact); a question is oriented by recalling from the hive;
- decide: which items can be stored and which are refused (and why); which recalled
  sentences answer the question;
- act: remember on a write quorum, or answer; and, on a timer, upkeep: probe peers
  (failure detection), adopt membership changes, repair replicas and hand off records.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from amplihack_hive.agent.answer import Answer, extractive_answer
from amplihack_hive.agent.detector import FailureDetector
from amplihack_hive.agent.llm import LlmAnswerer, cited
from amplihack_hive.errors import HiveError, InvalidInputError, TransportError, WriteQuorumError
from amplihack_hive.memory.coordinator import Coordinator
from amplihack_hive.memory.node import MemoryNode
from amplihack_hive.memory.protocol import Put, Stats, StatsReply, expect
from amplihack_hive.memory.records import CORPUS_TERM, Fact, Posting
from amplihack_hive.memory.repair import Repairer
from amplihack_hive.memory.ring import HashRing
from amplihack_hive.memory.scopes import Access

logger = logging.getLogger(__name__)

#: Corpus-list postings per request when an older store's facts are put on the list...
BACKFILL_CHUNK = 20_000
#: ... and seconds before trying again when too few of the list's owners took them (an
#: owner that missed them gets them from its replicas, like any posting).
BACKFILL_RETRY_S = 30.0
#: Items accepted in one learn request.
MAX_LEARN_BATCH = 5000
#: Background repair waits while a client is writing to this agent (a write in the last
#: repair.WRITTEN_TO_S), but never longer than this since the last round...
MAX_REPAIR_DEFER_S = 60.0
#: ... and, waiting for the listing share of its stores, never longer than this.
MAX_REPAIR_DEFER_LOADED_S = 300.0
#: An idle hive's rounds back off: after a round that found every replica in step, with no
#: write served here and no peer's state changed since, the next waits twice as long, up to
#: this. A write or a change brings back the usual pace. Measured (100 agents, 5 per
#: process, idle): the rounds every 5 s took 0.77 of the hive's 0.85 cores in use.
REPAIR_IDLE_MAX_S = 60.0


class AgentBrain:
    def __init__(
        self,
        nodes: dict[str, MemoryNode],
        coordinator: Coordinator,
        prompts: dict[str, str] | None = None,
        *,
        members: Callable[[], list[str] | None] | None = None,
        domains: Callable[[], dict[str, str]] = dict,
        detector: FailureDetector | None = None,
        upkeep_s: float = 30.0,
        probe_s: float = 1.0,
        repair_s: float = 5.0,
        llm: LlmAnswerer | None = None,
        groups: Callable[[], dict[str, tuple[str, ...]]] = dict,
    ) -> None:
        self.nodes = nodes
        #: the hive's groups (memory/scopes.py), read when a request's access is decided
        self.groups = groups
        self.llm = llm
        self.coordinator = coordinator
        self.prompts = prompts or {}
        self.members = members
        #: agent -> failure domain, read with the membership
        self.domains = domains
        self.detector = detector
        self.upkeep_s = upkeep_s
        self.probe_s = probe_s
        self.repair_s = repair_s
        #: Items stored and questions answered by this process as coordinator (its own
        #: /learn and /ask; clients that coordinate themselves are counted by the nodes).
        self.learned = 0
        self.answered = 0
        #: Records pulled from replicas per hosted agent until it was ready.
        self._pulled: dict[str, int] = {}
        #: Per hosted agent still catching up: the peers it has synced with (a later round
        #: asks only the others: a peer that answered gave what it held).
        self._synced: dict[str, set[str]] = {}
        #: Why this process must stop (a store it hosts is broken), once it is known.
        self.fatal: str | None = None
        #: Called once when :attr:`fatal` is set (the agent process stops serving).
        self.on_fatal: Callable[[], None] = lambda: None
        self.repairers = {
            name: Repairer(node.repair, coordinator.transport.request, node.run)
            for name, node in nodes.items()
            if node.repair is not None
        }
        self._rounds = 0
        #: whether the last round found every hosted agent's replicas in step
        self.last_round_quiet = False
        self._backfill_after = 0.0
        self._repair_lock = asyncio.Lock()
        if detector is not None:
            detector.set_members(coordinator.ring.nodes)
            coordinator.suspects = detector.suspects
        # An agent that (re)starts in a hive of several catches up with its replicas (the
        # writes it missed were held for it as hints) before it answers reads.
        if len(coordinator.ring) > 1:
            for node in nodes.values():
                node.ready = False

    @property
    def hosted(self) -> list[str]:
        return list(self.nodes)

    @property
    def ready(self) -> bool:
        return all(n.ready for n in self.nodes.values())

    async def local_stats(self) -> dict[str, dict[str, Any]]:
        """Records per hosted agent (counted on each store's worker)."""
        out: dict[str, dict[str, Any]] = {}
        for name, n in self.nodes.items():
            counts = expect(await n.run(n.answer, Stats()), StatsReply)
            last = self.repairers[name].last if name in self.repairers else None
            out[name] = {
                "facts": counts.facts,
                "postings": counts.postings,
                "ready": n.ready,
                "hints_pending": counts.hints_pending,
                "last_repair": last.to_dict() if last else None,
            }
        return out

    def peer_view(self) -> dict[str, str]:
        return self.detector.view() if self.detector is not None else {}

    def refresh_members(self) -> bool:
        """Adopt a changed membership (agents added or removed); True when it changed."""
        if self.members is None:
            return False
        names = self.members()
        if not names:
            return False
        domains = self.domains()
        current = self.coordinator.ring
        if sorted(names) == list(current.nodes) and all(
            current.domain(n) == domains.get(n, n) for n in names
        ):
            return False
        # the same virtual nodes as the ring it replaces (the hive's setting)
        ring = HashRing(names, vnodes=current.vnodes, domains=domains)
        self.coordinator.ring = ring
        if self.detector is not None:
            self.detector.set_members(names)
        logger.info("membership changed: %d agents", len(names))
        return True

    async def repair_now(self) -> dict[str, Any]:
        """One repair round (with handoff) for every agent hosted here."""
        async with self._repair_lock:
            reports = {}
            quiet = True
            for name, repairer in self.repairers.items():
                node = self.nodes[name]
                # catching up means syncing with every peer, not only the pairs it leads,
                # once each: in a hive that starts, the first rounds find most peers still
                # starting, and asked all of them again every second
                synced = self._synced.setdefault(name, set())
                peers = (
                    None
                    if node.ready
                    else [p for p in self.coordinator.ring.nodes if p not in synced]
                )
                report = await repairer.round(peers)
                reports[name] = report.to_dict()
                quiet = quiet and Repairer.quiet(report)
                if peers is not None:
                    synced.update(set(peers) - set(report.failed_peers))
                if not node.ready:
                    pulled = self._pulled[name] = self._pulled.get(name, 0) + report.pulled
                # peers that did not answer may be down for good: after three rounds, go on
                # without them; a peer that said it is busy is waited for
                if not node.ready and (
                    not report.failed_peers or (self._rounds >= 3 and not report.busy_peers)
                ):
                    node.ready = True
                    if pulled:
                        logger.info(
                            "agent %s rebuilt from its replicas (%d records); serving reads",
                            name,
                            pulled,
                        )
                    else:
                        logger.info("agent %s in step with its replicas; serving reads", name)
            self._rounds += 1
            self.last_round_quiet = quiet and self.ready
            return reports

    def access(self, agent: str | None) -> Access:
        """What a request may read and write: the admin's (``agent`` None: the hive token)
        or that agent's, with the hive's groups as this agent knows them now."""
        groups = self.groups()
        return Access.admin(groups) if agent is None else Access.of_agent(agent, groups)

    async def learn(
        self, items: list[Any], access: Access | None = None, scope: str | None = None
    ) -> dict[str, Any]:
        """Store items (in ``scope``, else each item's own, else the hive's); each one is
        stored durably or reported as failed, never dropped."""
        if len(items) > MAX_LEARN_BATCH:
            raise InvalidInputError(f"at most {MAX_LEARN_BATCH} items per learn request")
        access = access or self.access(None)
        defaults = {} if scope is None else {"scope": access.check(scope)}
        valid: list[tuple[Fact, list[Posting]]] = []
        errors: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            try:
                valid.append(self.coordinator.prepare(item, access, **defaults))
            except HiveError as exc:
                errors.append({"index": i, "error": str(exc)})
        ids: list[str] = []
        if valid:
            try:
                ids = await self.coordinator.remember_prepared(valid)
            except WriteQuorumError as exc:
                ids = list(exc.stored)
                errors += [
                    {"index": None, "id": fid, "error": "not stored on a write quorum"}
                    for fid in exc.failed
                ]
            except HiveError as exc:
                logger.warning("learn batch of %d failed: %s", len(valid), exc)
                return {
                    "stored": 0,
                    "failed": len(items),
                    "ids": [],
                    "errors": [*errors, {"index": None, "error": str(exc)}],
                }
        self.learned += len(ids)
        return {"stored": len(ids), "failed": len(errors), "ids": ids, "errors": errors}

    async def ask(
        self,
        question: str,
        limit: int = 10,
        scopes: list[str] | None = None,
        access: Access | None = None,
    ) -> Answer:
        hits = await self.coordinator.recall(question, limit, scopes, access or self.access(None))
        self.answered += 1
        answer = extractive_answer(
            question, list(hits), complete=hits.complete, unreachable=hits.unreachable
        )
        if self.llm is None or not hits:
            return answer
        try:
            # the coordinating agent's prompt (create/add-agent --prompt) is its system prompt
            text = await self.llm.answer(question, list(hits), self.prompts.get(self.hosted[0]))
        except TransportError as exc:
            logger.warning("LLM answer failed, answering extractively: %s", exc)
            return answer
        return replace(answer, answer=text, sources=cited(text, list(hits)), answerer="llm")

    async def check_stores(self) -> bool:
        """Every hosted store's health check (off the loop); True, after logging an ERROR
        and calling :attr:`on_fatal`, when one is broken: the process stops so that it is
        restarted, and its next start sets an unreadable database aside and rebuilds."""
        for name, node in self.nodes.items():
            reason = node.broken or await node.run(node.check)
            if reason is not None and self.fatal is None:
                self.fatal = f"agent {name}: {reason}"
                logger.error(
                    "store of agent %s is broken (%s); stopping this process", name, reason
                )
                self.on_fatal()
        return self.fatal is not None

    async def backfill_corpus(self) -> bool:
        """Put the facts of stores written before the corpus list existed on it (once per
        store; the postings go to the list's owners like any write). True when none is left
        to do; a failure is retried on the next upkeep tick."""
        if self._rounds < 1 or time.monotonic() < self._backfill_after:
            # after a repair round, so tombstones this replica missed have reached it (a
            # body forgotten elsewhere must not be put on the list)
            return False
        done = True
        owners = self.coordinator.owners(CORPUS_TERM)
        for node in self.nodes.values():
            postings = await node.run(node.store.pending_corpus)
            if not postings:
                continue
            for i in range(0, len(postings), BACKFILL_CHUNK):
                message = Put(
                    [], postings[i : i + BACKFILL_CHUNK], tokenizer=self.coordinator.tokenizer
                )
                replies = await asyncio.gather(
                    *(self.coordinator.transport.request(a, message) for a in owners),
                    return_exceptions=True,
                )
                failed = [r for r in replies if isinstance(r, BaseException)]
                if len(replies) - len(failed) < self.coordinator._quorum(owners):
                    logger.warning(
                        "agent %s: corpus list backfill waits for its owners: %s",
                        node.name,
                        failed[0],
                    )
                    done = False
                    self._backfill_after = time.monotonic() + BACKFILL_RETRY_S
                    break
            else:
                await node.run(node.store.corpus_done)
                logger.info("agent %s: put %d facts on the corpus list", node.name, len(postings))
        return done

    def _activity(self) -> tuple[int, frozenset[str]]:
        """What makes a repair round worth running soon: writes served by the agents hosted
        here (clients', replicas', repair's) and the peers suspected down."""
        writes = sum(node.served["writes"] for node in self.nodes.values())
        suspects = frozenset(self.detector.suspects()) if self.detector is not None else frozenset()
        return writes, suspects

    def _defer_repair(self, since_last: float) -> bool:
        """Whether to skip a background repair round now: while clients are writing to this
        agent (a write in the last ``repair.WRITTEN_TO_S``), for at most
        :data:`MAX_REPAIR_DEFER_S` since the last round. A round lists and hashes every
        record held, in proportion to the store and holding the GIL, and each write makes
        the listing stale, so rounds under a bulk load starve the agent (measured: 89 items/s
        through learn into 10 agents, against 423 without them). Repair exists for faults:
        hints and missed writes wait until the load pauses. Past that bound, a round under
        the load still waits until every store may list itself again within its share of
        the time (memory/repair.py, ``LISTING_SHARE``), up to
        :data:`MAX_REPAIR_DEFER_LOADED_S`: the bigger the stores, the rarer the rounds.
        An agent that is rebuilding never defers (it refuses reads until it has
        caught up)."""
        if not self.ready:
            return False
        services = [n.repair for n in self.nodes.values() if n.repair is not None]
        if not any(r.written_to() for r in services):
            return False
        if since_last < MAX_REPAIR_DEFER_S:
            return True
        if since_last >= MAX_REPAIR_DEFER_LOADED_S:
            return False
        return any(r.listing_wait() > 0 for r in services)

    async def upkeep_forever(self) -> None:
        """Probe peers every ``probe_s``, adopt membership changes, repair every
        ``repair_s`` and log a summary every ``upkeep_s``. Errors are logged, never fatal."""
        # the schedule is in time, not in ticks: a slow step does not stretch the intervals
        start = time.monotonic()
        next_repair = start
        next_log = start + self.upkeep_s
        last_repair = start
        backfilled = False
        quiet_rounds = 0  # rounds in a row that found nothing to do, nothing changed since
        seen = self._activity()
        while True:
            clock = time.monotonic()
            try:
                if await self.check_stores():
                    return
                if self.refresh_members():
                    next_repair = clock
                    quiet_rounds = 0
                if not backfilled:
                    backfilled = await self.backfill_corpus()
                if self.detector is not None:
                    await self.detector.tick()
                if self._activity() != seen:
                    # a write served here or a peer's state changed: the usual pace again
                    quiet_rounds = 0
                    next_repair = min(next_repair, last_repair + self.repair_s)
                since = time.monotonic() - last_repair
                if clock >= next_repair and not self._defer_repair(since):
                    seen = self._activity()
                    await self.repair_now()
                    last_repair = time.monotonic()
                    quiet_rounds = quiet_rounds + 1 if self.last_round_quiet else 0
                    pace = min(self.repair_s * 2**quiet_rounds, REPAIR_IDLE_MAX_S)
                    # an agent still rebuilding retries soon (its peers may be starting too)
                    next_repair = last_repair + (
                        max(pace, self.repair_s) if self.ready else self.probe_s
                    )
                if clock >= next_log:
                    served = {
                        kind: sum(node.served[kind] for node in self.nodes.values())
                        for kind in ("writes", "reads")
                    }
                    logger.info(
                        "upkeep: facts held %s; requests served %d writes, %d reads; as "
                        "coordinator %d items learned, %d questions answered; suspects %s",
                        # facts only: counting postings and hints walks the whole index
                        {
                            n: await node.run(node.store.fact_count)
                            for n, node in self.nodes.items()
                        },
                        served["writes"],
                        served["reads"],
                        self.learned,
                        self.answered,
                        sorted(self.detector.suspects()) if self.detector else [],
                    )
                    next_log = clock + self.upkeep_s
            except HiveError as exc:
                logger.warning("upkeep step failed: %s", exc)
            except Exception:
                # upkeep must outlive any bug in one step, and say what it was
                logger.exception("upkeep step failed unexpectedly")
            await asyncio.sleep(self.probe_s)
