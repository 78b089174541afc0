"""Anti-entropy repair on the in-process hive, against a plain model of what should be where.

The model is three sets of facts: *live* (remembered and acknowledged, not forgotten),
*forgotten*, and *maybe* (a write that was not acknowledged: it may be anywhere or nowhere).
The nemesis drops records from replicas (never the last copy: that would be data loss, not
something repair can undo), copies records onto any agent including non-owners (as a hinted
write or a stale replica would), applies tombstones at only some replicas, marks agents down
during writes, forgets and repairs with agents down. After ceil(log2 N) + 2 rounds with every
agent up, every record must be exactly on its ring owners, and a further round moves nothing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from amplihack_hive import Hive
from amplihack_hive.errors import TransportError, WriteQuorumError
from amplihack_hive.memory.node import MemoryNode
from amplihack_hive.memory.records import CORPUS_TERM, Fact, ShardExport, Tombstone, fact_id_for
from amplihack_hive.memory.repair import RepairReport, RepairService
from amplihack_hive.memory.store import InMemoryStore
from amplihack_hive.memory.text import TOKENIZER, term_counts
from amplihack_hive.transport.inprocess import InProcessTransport

WORDS = [f"w{i}" for i in range(12)]


# -- helpers ----------------------------------------------------------------------------------


def transport(hive: Hive) -> InProcessTransport:
    t = hive._transport
    assert isinstance(t, InProcessTransport)
    return t


def owners(hive: Hive, key: str) -> set[str]:
    return set(hive._coordinator.owners(key))


def terms_of(content: str) -> list[str]:
    """The lists a fact is on: its terms' and the corpus list."""
    return sorted([*term_counts(content)[0], CORPUS_TERM])


def _id(content: str) -> str:
    return Fact.new(content).id


def touched(node: MemoryNode) -> None:
    """A store changed behind the node's back (the nemesis): drop repair's cached digests."""
    assert node.repair is not None
    node.repair.touched()


def moved(reports: list[RepairReport]) -> int:
    return sum(r.pushed + r.pulled + r.handed_off for r in reports)


def rounds_until_quiet(hive: Hive, limit: int = 20) -> int:
    """Repair rounds until one moves nothing; returns the rounds that moved something."""
    for n in range(limit + 1):
        if moved(hive.repair()) == 0:
            return n
    raise AssertionError(f"repair did not go quiet in {limit} rounds")


def round_bound(agents: int) -> int:
    return math.ceil(math.log2(agents)) + 2


def new_node(hive: Hive, name: str) -> MemoryNode:
    store = InMemoryStore()
    r = hive._coordinator.replication
    return MemoryNode(name, store, RepairService(name, store, lambda: hive._coordinator.ring, r))


@dataclass
class Where:
    """Who holds what, read from every store."""

    bodies: dict[str, set[str]] = field(default_factory=dict)  # fact id -> agents
    postings: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (term, id)
    tombs: dict[str, set[str]] = field(default_factory=dict)  # fact id -> agents

    @classmethod
    def read(cls, hive: Hive) -> Where:
        w = cls()
        for name, node in transport(hive).nodes.items():
            for fid in node.store.fact_ids():
                w.bodies.setdefault(fid, set()).add(name)
            for key in node.store.posting_keys():
                w.postings.setdefault(key, set()).add(name)
            for t in node.store.tombstones():
                w.tombs.setdefault(t.fact_id, set()).add(name)
        return w

    def holders(self, term: str, fid: str) -> set[str]:
        return self.postings.get((term, fid), set())


def records_of(node: MemoryNode) -> tuple[set[str], set[tuple[str, str]]]:
    return set(node.store.fact_ids()), set(node.store.posting_keys())


def assert_placed(hive: Hive, contents: dict[str, str]) -> None:
    """Every fact of ``contents`` (id -> content) is exactly on its owners, each posting on
    its term's owners; no other body or posting exists anywhere."""
    where = Where.read(hive)
    for fid, content in contents.items():
        assert where.bodies.get(fid, set()) == owners(hive, fid), fid
        for term in terms_of(content):
            assert where.holders(term, fid) == owners(hive, term), (term, fid)
    assert set(where.bodies) == set(contents)
    expected = {(t, fid) for fid, c in contents.items() for t in terms_of(c)}
    assert set(where.postings) == expected


# -- the model-based test ---------------------------------------------------------------------


class RepairMachine(RuleBasedStateMachine):
    """Random remembers, forgets, drops, duplicates, partial tombstones and outages."""

    def __init__(self) -> None:
        super().__init__()
        self.hive: Hive | None = None
        self.content: dict[str, str] = {}  # fact id -> content (every fact ever written)
        self.token: dict[str, str] = {}  # fact id -> its unique word
        self.live: set[str] = set()
        self.maybe: set[str] = set()  # writes not acknowledged
        self.forgotten: set[str] = set()
        self.unacked_forgets: set[str] = set()  # forgets not acknowledged: retried later
        # forgotten through the hive with every agent up: never recalled again, at any step
        # (after a forget that missed a replica, a recall before repair may still find the
        # fact there: reads ask one replica)
        self.firmly_forgotten: set[str] = set()
        #: where a partial forget left its tombstone (fact id -> agents)
        self.tombstoned_at: dict[str, set[str]] = {}
        self.counter = 0

    @initialize(agents=st.integers(3, 9), replication=st.integers(1, 3), w=st.integers(1, 3))
    def setup(self, agents: int, replication: int, w: int) -> None:
        self.hive = Hive.in_process(agents, replication, write_quorum=min(w, replication))
        self.names = list(self.hive.agents)

    def teardown(self) -> None:
        if self.hive is not None:
            try:
                self.converge_and_check()
            finally:
                self.hive.close()

    @property
    def h(self) -> Hive:
        assert self.hive is not None
        return self.hive

    @property
    def nodes(self) -> dict[str, MemoryNode]:
        return transport(self.h).nodes

    # -- writes through the hive --------------------------------------------------------

    @rule(words=st.lists(st.lists(st.sampled_from(WORDS), max_size=5), min_size=1, max_size=4))
    def remember(self, words: list[list[str]]) -> None:
        items = []
        for ws in words:
            self.counter += 1
            token = f"uniq{self.counter}"
            items.append(" ".join([token, *ws]))
        ids = [_id(i) for i in items]
        failed: set[str] = set()
        try:
            assert self.h.remember_many(items) == ids
        except WriteQuorumError as exc:
            failed = set(exc.failed)
        except TransportError:  # e.g. no owner of the corpus counters: nothing acknowledged
            failed = set(ids)
        for fid, text in zip(ids, items, strict=True):
            self.content[fid] = text
            self.token[fid] = text.split()[0]
            (self.maybe if fid in failed else self.live).add(fid)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def forget(self, data: st.DataObject) -> None:
        fid = data.draw(st.sampled_from(sorted(self.live)))
        self.live.discard(fid)
        self.forgotten.add(fid)
        everyone_up = not transport(self.h).down
        try:
            self.h.forget(fid)
        except TransportError:
            self.unacked_forgets.add(fid)  # the client retries it (converge_and_check)
        else:
            if everyone_up:
                self.firmly_forgotten.add(fid)

    @precondition(lambda self: self.forgotten)
    @rule(data=st.data())
    def remember_a_forgotten_fact_again(self, data: st.DataObject) -> None:
        """Forgotten content remembered again: a new fact (its next incarnation's id); the
        forgotten one stays forgotten."""
        fid = data.draw(st.sampled_from(sorted(self.forgotten)))
        text = self.content[fid]
        down = transport(self.h).down
        owners_down = owners(self.h, fid) <= down
        try:
            new = self.h.remember(text)
        except TransportError:
            # not acknowledged: any of its next lives may or may not be stored
            for k in range(1, 12):
                cand = fact_id_for(text, k)
                if cand not in self.live | self.forgotten:
                    self.content[cand], self.token[cand] = text, self.token[fid]
                    self.maybe.add(cand)
            return
        if new in self.forgotten:
            # Its forget was not acknowledged (it may have reached no replica): the fact is
            # still there, and the client's retry of that forget removes it. Or every owner
            # of the body that holds the tombstone is down: stand-ins cannot know (the
            # documented limit). Or write quorums need not meet (2W <= R, e.g. W=1 of R=2):
            # the forget's replica and the remember's are not the same. In each case the
            # forget wins when repair meets them.
            c = self.h._coordinator
            disjoint = 2 * min(c.write_quorum, c.replication) <= c.replication
            # a forget that reached only some replicas: its tombstone's holders are down
            holders = self.tombstoned_at.get(new, set()) & owners(self.h, new)
            tombstone_down = bool(holders) and holders <= down
            assert new in self.unacked_forgets or owners_down or disjoint or tombstone_down
            return
        self.content[new], self.token[new] = text, self.token[fid]
        self.maybe.discard(new)
        self.live.add(new)

    @rule(down=st.sets(st.integers(0, 8), max_size=3))
    def set_down(self, down: set[int]) -> None:
        transport(self.h).down = {self.names[i % len(self.names)] for i in down}

    @rule()
    def all_up(self) -> None:
        transport(self.h).down.clear()

    @rule()
    def repair_round(self) -> None:
        """A round with whatever is down: unreachable peers are skipped, not fatal."""
        self.h.repair()

    # -- the nemesis on the stores directly ---------------------------------------------

    @rule(data=st.data(), agent=st.integers(0, 8))
    def drop_records(self, data: st.DataObject, agent: int) -> None:
        """Lose some records from one replica; never the last copy of anything."""
        name = self.names[agent % len(self.names)]
        node = self.nodes[name]
        fids, pkeys = sorted(node.store.fact_ids()), sorted(node.store.posting_keys())
        if not fids and not pkeys:
            return
        drop_f = data.draw(st.lists(st.sampled_from(fids), max_size=6)) if fids else []
        drop_p = data.draw(st.lists(st.sampled_from(pkeys), max_size=12)) if pkeys else []
        where = Where.read(self.h)
        drop_f = [f for f in set(drop_f) if len(where.bodies[f]) > 1]
        drop_p = [k for k in set(drop_p) if len(where.postings[k]) > 1]
        node.store.drop(drop_f, drop_p)
        touched(node)

    @rule(data=st.data(), src=st.integers(0, 8), dst=st.integers(0, 8))
    def duplicate_records(self, data: st.DataObject, src: int, dst: int) -> None:
        """Copy some of one agent's records onto any agent, owner or not (a hinted write,
        a stale replica coming back)."""
        a = self.nodes[self.names[src % len(self.names)]]
        b = self.nodes[self.names[dst % len(self.names)]]
        export = a.store.export()
        pick = data.draw(st.lists(st.booleans(), min_size=3, max_size=3))
        shard = ShardExport(
            facts=[f for i, f in enumerate(export.facts) if pick[i % 3]],
            postings=[p for i, p in enumerate(export.postings) if pick[(i + 1) % 3]],
            tombstones=[t for i, t in enumerate(export.tombstones) if pick[(i + 2) % 3]],
        )
        b.handle({"op": "import", "shard": shard.to_dict(), "tokenizer": TOKENIZER})

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def forget_at_some_replicas(self, data: st.DataObject) -> None:
        """A forget that reached only some of its targets (one body owner at least, as an
        acknowledged forget does); repair must finish it."""
        fid = data.draw(st.sampled_from(sorted(self.live)))
        body_owners = sorted(owners(self.h, fid))
        others = sorted(
            set().union(*(owners(self.h, t) for t in terms_of(self.content[fid])))
            - set(body_owners)
        )
        at = {data.draw(st.sampled_from(body_owners))}
        at |= data.draw(st.sets(st.sampled_from(body_owners + others))) if others else set()
        tomb = Tombstone(fid, 1.0).to_list()
        for name in at:
            self.nodes[name].handle({"op": "forget", "tombstones": [tomb], "tokenizer": TOKENIZER})
        self.tombstoned_at[fid] = at
        self.live.discard(fid)
        self.forgotten.add(fid)

    @invariant()
    def forgotten_facts_are_never_recalled(self) -> None:
        if self.hive is None or not self.firmly_forgotten or transport(self.h).down:
            return
        fid = max(self.firmly_forgotten)  # one per step keeps the test fast
        assert fid not in {h.id for h in self.h.recall(self.token[fid])}

    # -- the end state ------------------------------------------------------------------

    def converge_and_check(self) -> None:
        hive = self.h
        transport(hive).down.clear()
        for fid in sorted(self.unacked_forgets):
            hive.forget(fid)
        self.unacked_forgets.clear()
        # A tombstone written straight into some stores (the partial-forget rule bypasses
        # the coordinator) may reach no owner of some term; that term's postings then stay
        # until the fact is forgotten through the hive. Those facts are checked more loosely.
        where = Where.read(hive)
        clean = {
            fid
            for fid in self.forgotten
            if all(
                owners(hive, t) & where.tombs.get(fid, set()) for t in terms_of(self.content[fid])
            )
        }
        for _ in range(round_bound(len(self.names))):
            hive.repair()
        where = Where.read(hive)
        for fid in self.live:
            assert where.bodies.get(fid, set()) == owners(hive, fid)
            for t in terms_of(self.content[fid]):
                assert where.holders(t, fid) == owners(hive, t), (t, fid)
        for fid in self.maybe:
            assert where.bodies.get(fid, set()) in (set(), owners(hive, fid))
            for t in terms_of(self.content[fid]):
                assert where.holders(t, fid) in (set(), owners(hive, t)), (t, fid)
        for fid in self.forgotten:
            assert fid not in where.bodies
            for t in terms_of(self.content[fid]):
                if fid in clean:
                    assert not where.holders(t, fid), (t, fid)
                else:
                    assert where.holders(t, fid) in (set(), owners(hive, t)), (t, fid)
        known = self.live | self.maybe | self.forgotten
        assert set(where.bodies) <= self.live | self.maybe
        assert {fid for _, fid in where.postings} <= known
        for t, fid in where.postings:
            assert t in terms_of(self.content[fid])
        for fid in self.live:
            assert fid in {h.id for h in hive.recall(self.token[fid])}, fid
        for fid in self.forgotten:
            assert fid not in {h.id for h in hive.recall(self.token[fid])}, fid
        assert moved(hive.repair()) == 0


RepairMachine.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_repair_against_a_model = RepairMachine.TestCase


# -- a lost disk ------------------------------------------------------------------------------


def test_an_agent_that_lost_its_disk_is_rebuilt_in_one_round() -> None:
    with Hive.in_process(10, 3) as hive:
        hive.remember_many([f"fact {i} about item{i} and w{i % 37}" for i in range(1000)])
        gone = [hive.remember_many([f"gone {i} w{i}"])[0] for i in range(20)]
        for fid in gone:
            hive.forget(fid)
        assert rounds_until_quiet(hive) == 0
        victim = "agent-3"
        t = transport(hive)
        before = records_of(t.nodes[victim])
        corpus = t.nodes[victim].handle({"op": "corpus", "tokenizer": TOKENIZER})
        # the tombstones it keeps as a fact owner (those it keeps as a term owner only guard
        # postings that are gone: nobody needs them back)
        tombs = {x.fact_id for x in t.nodes[victim].store.tombstones()}
        tombs = {fid for fid in tombs if victim in owners(hive, fid)}
        assert before[0] and before[1] and tombs
        t.nodes[victim] = new_node(hive, victim)

        first = hive.repair()
        assert records_of(t.nodes[victim]) == before
        assert t.nodes[victim].handle({"op": "corpus", "tokenizer": TOKENIZER}) == corpus
        assert tombs <= {x.fact_id for x in t.nodes[victim].store.tombstones()}
        assert moved(first) > 0
        rounds = 1 + rounds_until_quiet(hive)
        assert rounds <= round_bound(10)
        assert records_of(t.nodes[victim]) == before


# -- membership -------------------------------------------------------------------------------


def _filled(agents: int, facts: int) -> tuple[Hive, dict[str, str]]:
    hive = Hive.in_process(agents, 3)
    items = [f"member fact {i} token{i} w{i % 29}" for i in range(facts)]
    ids = hive.remember_many(items)
    assert rounds_until_quiet(hive) == 0  # a running hive: every agent's holdings cached
    return hive, dict(zip(ids, items, strict=True))


def test_a_new_agent_gets_exactly_its_ranges() -> None:
    hive, contents = _filled(6, 400)
    with hive:
        t = transport(hive)
        hive._coordinator.ring.add("agent-new")
        t.nodes["agent-new"] = new_node(hive, "agent-new")
        hive._agents.append("agent-new")
        rounds = rounds_until_quiet(hive)
        assert 1 <= rounds <= round_bound(7)
        assert_placed(hive, contents)
        mine = {fid for fid in contents if "agent-new" in owners(hive, fid)}
        assert mine and set(t.nodes["agent-new"].store.fact_ids()) == mine
        for token in ("token7", "token123", "token399"):
            assert hive.recall(token)[0].content.split()[3] == token


def test_a_removed_agent_hands_everything_to_the_new_owners() -> None:
    hive, contents = _filled(7, 400)
    with hive:
        t = transport(hive)
        leaving = "agent-2"
        assert t.nodes[leaving].store.fact_count() > 0
        hive._coordinator.ring.remove(leaving)  # still reachable, still runs its rounds
        rounds = rounds_until_quiet(hive)
        assert 1 <= rounds <= round_bound(7)
        assert_placed(hive, contents)
        store = t.nodes[leaving].store
        assert store.fact_count() == store.posting_count() == 0
        for token in ("token7", "token123", "token399"):
            assert hive.recall(token)[0].content.split()[3] == token


def test_a_ring_change_alone_reaches_repair() -> None:
    hive, contents = _filled(6, 200)
    with hive:
        t = transport(hive)
        hive._coordinator.ring.add("agent-new")
        t.nodes["agent-new"] = new_node(hive, "agent-new")
        hive._agents.append("agent-new")
        rounds_until_quiet(hive)
        assert_placed(hive, contents)


# -- tombstones that miss every owner of a term -----------------------------------------------


@pytest.mark.parametrize("how", ["first owner lost the body", "term owners down"])
def test_orphan_postings_of_a_forgotten_fact_are_removed(how: str) -> None:
    with Hive.in_process(20, 3) as hive:
        # a one-word fact whose word's owners are none of the fact's owners
        content = next(
            c
            for c in (f"lonely{i}" for i in range(10_000))
            if not owners(hive, _id(c)) & owners(hive, c)
        )
        fid = hive.remember(content)
        t = transport(hive)
        if how == "first owner lost the body":
            # forget must still learn the terms from another owner
            node = t.nodes[hive._coordinator.owners(fid)[0]]
            node.store.drop([fid], [])
            touched(node)
            hive.forget(fid)
        else:
            t.down |= owners(hive, content)
            # not acknowledged: the term's replica set did not get the tombstone
            with pytest.raises(TransportError, match="forget again"):
                hive.forget(fid)
            t.down.clear()
            hive.forget(fid)
        rounds_until_quiet(hive)
        assert not Where.read(hive).holders(content, fid)


# -- bytes grow with the difference, not with the shard ---------------------------------------


def _round_bytes(hive: Hive) -> tuple[int, int]:
    t = transport(hive)
    before = t.bytes_sent
    reports = hive.repair()
    return t.bytes_sent - before, moved(reports)


def _synced(facts: int) -> Hive:
    hive = Hive.in_process(10, 3)
    hive.remember_many([f"sized fact {i} item{i} w{i % 41} v{i % 13}" for i in range(facts)])
    assert rounds_until_quiet(hive) == 0
    return hive


def test_in_sync_bytes_do_not_grow_with_the_shard() -> None:
    with _synced(1000) as small, _synced(4000) as big:
        b1, m1 = _round_bytes(small)
        b4, m4 = _round_bytes(big)
        assert m1 == m4 == 0
        assert 0 < b4 < 2 * b1


def test_repair_bytes_grow_with_the_difference() -> None:
    with _synced(2000) as hive:
        in_sync, _ = _round_bytes(hive)
        t = transport(hive)
        node = t.nodes["agent-4"]
        fids = sorted(node.store.fact_ids())
        # what one record weighs on the wire, on average
        record = len(json.dumps(node.store.export().to_dict())) / (
            node.store.fact_count() + node.store.posting_count()
        )
        costs = {}
        for k in (10, 100):
            dropped = fids[:k]
            keys = [key for key in node.store.posting_keys() if key[1] in set(dropped)]
            node.store.drop(dropped, keys)
            touched(node)
            spent, n_moved = _round_bytes(hive)
            assert n_moved >= k + len(keys)
            assert rounds_until_quiet(hive) == 0
            costs[k] = (spent - in_sync) / (k + len(keys))
            fids = fids[k:]
            # generous: digests down to the differing buckets, their keys, the records
            assert spent < in_sync + 40 * record * (k + len(keys)), (k, spent, in_sync)
        # per record, a larger difference costs no more than a small one
        assert costs[100] < 1.5 * costs[10]


# -- failure domains --------------------------------------------------------------------------


@pytest.mark.parametrize("per_domain", [5, 1])
def test_a_whole_process_lost_with_its_disk_loses_nothing_when_domains_are_known(
    per_domain: int,
) -> None:
    # 20 agents packed 5 per process; the process of agent-0..agent-4 dies with its disk.
    with Hive.in_process(20, 3, agents_per_domain=per_domain) as hive:
        items = [f"packed fact {i} token{i} w{i % 31}" for i in range(3000)]
        ids = hive.remember_many(items)
        t = transport(hive)
        for name in [f"agent-{i}" for i in range(5)]:
            t.nodes[name] = new_node(hive, name)
        rounds_until_quiet(hive)
        held = {fid for node in t.nodes.values() for fid in node.store.fact_ids()}
        lost = [fid for fid in ids if fid not in held]
        if per_domain == 5:
            assert lost == []
            assert_placed(hive, dict(zip(ids, items, strict=True)))
        else:
            # the same loss without domains: the model of the fault is not trivially survived
            assert lost


def test_stand_ins_and_quorums_are_in_distinct_domains() -> None:
    with Hive.in_process(20, 3, agents_per_domain=5) as hive:
        t = transport(hive)
        ring = hive._coordinator.ring
        t.down |= {f"agent-{i}" for i in range(5)}  # one whole process is down
        items = [f"written while a process is down {i} w{i}" for i in range(300)]
        ids = hive.remember_many(items)
        for fid in ids:
            holders = {n for n, node in t.nodes.items() if node.store.get_facts([fid])}
            assert len(holders) == 3
            assert len({ring.domain(a) for a in holders}) == 3  # a copy per domain
        # with only one live domain no write is acknowledged by two agents that die together
        t.down = {f"agent-{i}" for i in range(15)}
        with pytest.raises(WriteQuorumError):
            hive.remember_many(["two copies in one process are one copy"])


def test_an_idle_hives_rounds_back_off_and_a_write_brings_the_pace_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rounds that find every replica in step, with nothing written or suspected since,
    wait twice as long each time; a write brings the next one back within repair_s."""
    import asyncio
    import contextlib
    import time

    from amplihack_hive.agent.brain import AgentBrain
    from amplihack_hive.memory import repair as repair_module

    # (rounds wait while clients write: not what this measures)
    monkeypatch.setattr(repair_module, "WRITTEN_TO_S", 0.0)
    with Hive.in_process(4, 3) as hive:
        hive.remember_many([f"idle fact {i} w{i % 3}" for i in range(20)])
        t = hive._transport
        assert isinstance(t, InProcessTransport)
        brain = AgentBrain(dict(t.nodes), hive._coordinator, probe_s=0.01, repair_s=0.05)

        async def watch() -> tuple[int, list[bool], float]:
            upkeep = asyncio.create_task(brain.upkeep_forever())
            try:
                await asyncio.sleep(1.6)
                idle_rounds = brain._rounds
                quiet = [brain.last_round_quiet]
                before = brain._rounds
                fact, postings = hive._coordinator.prepare("a write wakes the repair up")
                await hive._coordinator.remember_prepared([(fact, postings)])
                asked = time.monotonic()
                while brain._rounds == before and time.monotonic() - asked < 10:
                    await asyncio.sleep(0.01)
                return idle_rounds, quiet, time.monotonic() - asked
            finally:
                upkeep.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await upkeep

        idle_rounds, quiet, woke = hive._loop.run(watch())
    # at a fixed pace 1.6 s holds about 32 rounds; backing off 0.05, 0.1, 0.2, 0.4, 0.8: 6
    assert brain.ready and quiet == [True]
    assert 3 <= idle_rounds <= 12, idle_rounds
    # the round it was waiting for was 0.8 s or more away
    assert woke < 0.6, woke


# -- the cost of listing under a write load ---------------------------------------------------


def test_a_store_written_to_lists_itself_for_repair_at_most_its_share_of_the_time() -> None:
    """Each write makes a store's listing stale. A peer starting an exchange sooner than the
    share allows is told when to come back, and nothing is listed; the later requests of an
    exchange, and /stats, read the listing it started against; once the wait is over, a
    current listing again."""
    from amplihack_hive.errors import BusyError
    from amplihack_hive.memory import protocol as p
    from amplihack_hive.memory.repair import LISTING_SHARE
    from amplihack_hive.memory.ring import HashRing

    now = [100.0]
    listings = [0]

    class SlowToList(InMemoryStore):
        def fact_ids(self) -> list[str]:  # listing this store takes a second
            listings[0] += 1
            now[0] += 1.0
            return super().fact_ids()

    store = SlowToList()
    ring = HashRing(["a", "b", "c"])
    svc = RepairService("a", store, lambda: ring, 3, clock=lambda: now[0])
    first, later = Fact.new("an otter fact"), Fact.new("a heron fact")
    root = p.RepairDigest("b", [(0, 0, 0, 0)])

    def keys_seen() -> list[str]:
        reply = svc.answer(p.RepairKeys("b", [(0, 0)]))
        assert isinstance(reply, p.RepairKeysReply)
        return reply.keys

    store.import_(ShardExport(facts=[first]))
    svc.touched(by_client=True)
    assert svc.answer(root) and listings[0] == 1  # listed, in one second
    assert keys_seen() == [f"f\x1f{first.id}"]

    store.import_(ShardExport(facts=[later]))
    svc.touched(by_client=True)
    with pytest.raises(BusyError) as refused:
        svc.answer(root)
    assert refused.value.retry_after == pytest.approx(1.0 / LISTING_SHARE - 1.0)
    # the rest of an exchange, and the count of misplaced records, use the last listing
    deeper = svc.answer(p.RepairDigest("b", [(6, 0, 0, 0)]))
    assert isinstance(deeper, p.RepairDigestReply)
    assert keys_seen() == [f"f\x1f{first.id}"] and svc.misplaced_count() == 0
    assert listings[0] == 1

    now[0] += refused.value.retry_after
    svc.answer(root)
    assert listings[0] == 2
    assert sorted(keys_seen()) == sorted(f"f\x1f{f.id}" for f in (first, later))

    # no client has written for a while: a change (repair's own) is listed whenever asked,
    # a second after the last listing took one
    svc.touched()
    assert svc.listing_wait() == 0
    svc.answer(root)
    assert listings[0] == 3


def test_a_round_under_a_write_load_waits_past_its_bound_for_the_listing_share() -> None:
    """While clients write, an agent defers its rounds up to MAX_REPAIR_DEFER_S; past it, a
    round still waits while listing again would exceed a store's share of the time."""
    import time

    from amplihack_hive.agent.brain import (
        MAX_REPAIR_DEFER_LOADED_S,
        MAX_REPAIR_DEFER_S,
        AgentBrain,
    )
    from amplihack_hive.memory.repair import LISTING_SHARE

    with Hive.in_process(3, 3) as hive:
        t = transport(hive)
        brain = AgentBrain(dict(t.nodes), hive._coordinator)
        for node in t.nodes.values():
            node.ready = True  # in step (a rebuilding agent never defers)
        svc = t.nodes["agent-1"].repair
        assert svc is not None
        assert not brain._defer_repair(since_last=0.0)  # nobody writes: no reason to wait
        svc.touched(by_client=True)
        assert brain._defer_repair(since_last=0.0)
        assert not brain._defer_repair(since_last=MAX_REPAIR_DEFER_S)  # listing is cheap
        svc._listing_s, svc._listed_at = 2.0, time.monotonic()  # 2 s, just ended
        assert brain._defer_repair(since_last=MAX_REPAIR_DEFER_S)
        assert not brain._defer_repair(since_last=MAX_REPAIR_DEFER_LOADED_S)  # the last bound
        svc._listed_at -= 2.0 * (1.0 / LISTING_SHARE - 1.0)  # as long ago as the share asks
        assert not brain._defer_repair(since_last=MAX_REPAIR_DEFER_S)


def test_an_agent_in_process_that_is_busy_listing_is_asked_again_after_its_wait() -> None:
    """The in-process transport treats a busy agent as HTTP does: it waits the pause the
    agent asked for and asks again, instead of counting the agent as down."""
    import time

    from amplihack_hive.memory import protocol as p
    from amplihack_hive.memory.repair import LISTING_FREE_S, LISTING_SHARE

    with Hive.in_process(3, 3) as hive:
        hive.remember_many(["a fact about kestrels", "a fact about plovers"])
        t = transport(hive)
        svc = t.nodes["agent-1"].repair
        assert svc is not None
        # its last listing took LISTING_FREE_S and the share lets it list again in 1 s
        svc._listing_s = LISTING_FREE_S
        svc._listed_at = time.monotonic() - LISTING_FREE_S * (1 / LISTING_SHARE - 1) + 1.0
        svc.touched(by_client=True)
        before, asked = t.requests["agent-1"], time.monotonic()
        reply = hive._loop.run(t.request("agent-1", p.RepairDigest("agent-0", [(0, 0, 0, 0)])))
        assert isinstance(reply, p.RepairDigestReply) and reply.digests[0] is not None
        assert time.monotonic() - asked >= 0.8
        assert t.requests["agent-1"] - before >= 2  # refused, then answered


def test_a_rebuilding_agent_waits_for_a_peer_that_is_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuilding agent goes on without peers that do not answer after three rounds, but
    not without one that said it is busy: that peer holds what it holds."""
    import time

    from amplihack_hive.agent.brain import AgentBrain
    from amplihack_hive.transport import busy

    monkeypatch.setattr(busy, "BUSY_ATTEMPTS", 1)  # refused is refused, at once
    with Hive.in_process(3, 3) as hive:
        hive.remember_many(["a fact about avocets", "a fact about dunlins"])
        t = transport(hive)
        brain = AgentBrain({"agent-0": t.nodes["agent-0"]}, hive._coordinator)
        assert not t.nodes["agent-0"].ready  # a hive of several: it catches up first
        peer = t.nodes["agent-1"].repair
        assert peer is not None
        peer._listing_s, peer._listed_at = 10.0, time.monotonic()  # listed for 10 s, just now
        peer.touched(by_client=True)  # and is being written to
        for _ in range(4):
            reports = hive._loop.run(brain.repair_now())
            assert reports["agent-0"]["busy_peers"] == ["agent-1"]
        assert not t.nodes["agent-0"].ready
        peer.last_client_write = -float("inf")  # the load is over
        hive._loop.run(brain.repair_now())
        assert t.nodes["agent-0"].ready
