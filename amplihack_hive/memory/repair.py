"""Anti-entropy between replicas, and handoff of records an agent no longer owns.

Every record an agent holds has a *record key* and a *placement key*:

- a fact body ``f|<id>`` and a tombstone ``t|<id>`` are placed by the fact id;
- a posting ``p|<term>|<id>`` is placed by its term (the corpus list's too: it is a posting
  list, so replicas of the corpus figures converge like any list, exactly).

Two agents A and B *share* a record when both are among its R ring owners. Repair compares
the records A and B share by a hash tree over their 64-bit record hashes (Merkle 1987;
Dynamo §4.7 uses the same idea per key range): each node of the tree is a prefix of the hash
space with the count and XOR of the hashes under it, 64 children per level. Equal digests
end the descent; a bucket only one side holds anything in is sent whole without listing
keys; small differing buckets exchange their keys. So an exchange between replicas in sync
costs one request with 64 digests, and the bytes otherwise grow with the difference, not
with the shard. The comparison is exact (a full-width XOR and a count per bucket, down to
single keys), so, unlike a Bloom filter, a false positive cannot hide a missing record.

Tombstones win: records a peer refuses because it holds a tombstone come back as tombstones,
which the sender applies; records the receiver refuses are reported back the same way.

Records an agent holds but does not own under the current ring (written to it as a hinted
substitute while an owner was down, or left over after the membership changed) are handed to
their owners and dropped once every owner has them (:meth:`Repairer.handoff`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from amplihack_hive.errors import BusyError, InvalidInputError
from amplihack_hive.memory import protocol as p
from amplihack_hive.memory.records import ShardExport, Tombstone, check_fact_id
from amplihack_hive.memory.ring import HashRing
from amplihack_hive.memory.scopes import place
from amplihack_hive.memory.store import Store
from amplihack_hive.memory.text import TOKENIZER

logger = logging.getLogger(__name__)

R = TypeVar("R", bound=p.Reply)
T = TypeVar("T")
#: Runs a store call where the node runs its store calls (its worker thread in an agent).
Runner = Callable[..., Awaitable[Any]]
SEP = "\x1f"
LEVEL_BITS = 6
FANOUT = 1 << LEVEL_BITS
MAX_BITS = 30
#: A differing bucket with at most this many records on each side exchanges its keys.
LEAF = 24
#: Every write makes a store's listing stale, and listing costs in proportion to the store
#: (measured: 1.1 s of CPU for 27.5k facts and 234k postings), on the worker that serves its
#: writes. So while it is written to, a store lists itself again for a peer starting an
#: exchange only once the time since its last listing is (1 / LISTING_SHARE - 1) times that
#: listing's duration: listing takes at most this share of its time. A peer asking sooner is
#: told to come back (BusyError, with the wait): repair waits for the load to ease instead
#: of starving it. Measured without this bound: a learn of 700,000 paragraphs into 10 agents
#: had stored 91k after 6 minutes, 86 items/s in the last of them, about half of each
#: agent's time spent listing for peers (every request of every exchange listed anew).
LISTING_SHARE = 0.1
#: A listing shorter than this is always made afresh: stores of up to about 10k facts never
#: wait (a busy machine's tests included).
LISTING_FREE_S = 0.5
#: A store counts as written to while a client wrote to it within this many seconds:
#: otherwise it lists itself whenever asked, and its agent's rounds do not wait
#: (agent/brain.py).
WRITTEN_TO_S = 2.0


def record_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def placement(key: str) -> str:
    kind, _, rest = key.partition(SEP)
    if kind == "p":
        return place(rest.rpartition(SEP)[0])  # by its term (which may hold a scope)
    return rest


@dataclass
class Shared:
    """The records one agent shares with one peer, sorted by hash."""

    hashes: np.ndarray
    keys: list[str]

    @classmethod
    def of(cls, keys: list[str]) -> Shared:
        hs = np.fromiter((record_hash(k) for k in keys), dtype=np.uint64, count=len(keys))
        order = np.argsort(hs, kind="stable")
        return cls(hs[order], [keys[i] for i in order])

    def _span(self, bits: int, prefix: int) -> tuple[int, int]:
        if bits == 0:
            return 0, len(self.keys)
        shift = 64 - bits
        lo = np.uint64(prefix << shift)
        i = int(np.searchsorted(self.hashes, lo, side="left"))
        if prefix + 1 >= 1 << bits:
            return i, len(self.keys)
        hi = np.uint64((prefix + 1) << shift)
        return i, int(np.searchsorted(self.hashes, hi, side="left"))

    def digest(self, bits: int, prefix: int) -> list[int]:
        """[count, xor of hashes] of one bucket."""
        i, j = self._span(bits, prefix)
        return [j - i, int(np.bitwise_xor.reduce(self.hashes[i:j])) if j > i else 0]

    def children(self, bits: int, prefix: int) -> list[list[int]]:
        """The digests of the 64 children of a bucket."""
        return [self.digest(bits + LEVEL_BITS, (prefix << LEVEL_BITS) | c) for c in range(FANOUT)]

    def bucket_keys(self, bits: int, prefix: int) -> list[str]:
        i, j = self._span(bits, prefix)
        return self.keys[i:j]


@dataclass
class Holdings:
    """Everything one agent holds, keyed for repair: per peer, the records they share;
    and the records this agent holds but does not own."""

    shared: dict[str, Shared]
    misplaced: dict[str, list[str]]  # record key -> its owners
    guards: dict[str, list[str]]  # tombstones held here for facts owned elsewhere -> owners

    def with_peer(self, peer: str) -> Shared:
        """The records shared with ``peer`` (none when it shares nothing)."""
        return self.shared.get(peer) or Shared.of([])


def ring_key(ring: HashRing) -> tuple[int, tuple[str, ...]]:
    """What decides where records belong: a listing made under another is void."""
    return ring.vnodes, ring.nodes


def holdings(me: str, store: Store, ring: HashRing, replication: int) -> Holdings:
    keys: list[str] = [f"f{SEP}{i}" for i in store.fact_ids()]
    keys += [f"p{SEP}{t}{SEP}{i}" for t, i in store.posting_keys()]
    tombs = [f"t{SEP}{t.fact_id}" for t in store.tombstones()]
    per_peer: dict[str, list[str]] = {}
    misplaced: dict[str, list[str]] = {}
    guards: dict[str, list[str]] = {}
    owners_of: dict[str, list[str]] = {}
    for key in keys + tombs:
        where = placement(key)
        owners = owners_of.get(where)
        if owners is None:
            owners = owners_of[where] = ring.owners(where, replication)
        if me not in owners:
            # tombstones stay wherever they were sent (they guard against late copies)
            (guards if key[0] == "t" else misplaced)[key] = owners
            continue
        for peer in owners:
            if peer != me:
                per_peer.setdefault(peer, []).append(key)
    return Holdings({q: Shared.of(ks) for q, ks in per_peer.items()}, misplaced, guards)


def select(store: Store, keys: Iterable[str]) -> ShardExport:
    """The records of ``keys`` held here, as an export."""
    fact_ids, posting_keys, tomb_ids = [], [], set()
    for key in keys:
        kind, _, rest = key.partition(SEP)
        if kind == "f":
            fact_ids.append(rest)
        elif kind == "p":
            term, _, fid = rest.rpartition(SEP)
            posting_keys.append((term, fid))
        elif kind == "t":
            tomb_ids.add(rest)
    facts = store.get_facts(fact_ids)
    tombs = [t for t in store.tombstones() if t.fact_id in tomb_ids] if tomb_ids else []
    return ShardExport(
        facts=list(facts.values()),
        postings=store.postings_by_key(posting_keys),
        tombstones=tombs,
    )


def absorb(store: Store, shard: ShardExport) -> list[Tombstone]:
    """Import records; return the tombstones that made this store refuse some of them, so
    the sender can apply them too."""
    ids = {f.id for f in shard.facts} | {q.fact_id for q in shard.postings}
    for fid in ids | {t.fact_id for t in shard.tombstones}:
        check_fact_id(fid)  # a peer's records never name the store's reserved rows
    store.import_(shard)
    refused = store.tombstoned(sorted(ids)) if ids else set()
    if not refused:
        return []
    return [t for t in store.tombstones() if t.fact_id in refused]


class RepairService:
    """The responder side of repair, served by a node. ``ring`` gives the current ring.

    The listing of the store is cached until the store or the ring changes. An exchange
    starts against a current listing: comparing stale listings lets a repair stop short of
    convergence (the nemesis test lost acknowledged facts that way), so an agent under a
    write load defers its background rounds instead (:attr:`last_client_write`, see
    agent/brain.py), and a store lists itself again at most :data:`LISTING_SHARE` of its
    time. The later requests of an exchange read the listing it started against (or a newer
    one): one consistent snapshot, as a Merkle tree is; what was written since is compared
    in the next round."""

    def __init__(
        self,
        me: str,
        store: Store,
        ring: Callable[[], HashRing],
        replication: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        tokenizer: int = TOKENIZER,
    ) -> None:
        self.me = me
        #: the tokenizer of this store's postings, named in the repair requests that carry
        #: postings (a peer of another version refuses them: memory/node.py)
        self.tokenizer = tokenizer
        self.store = store
        self.ring = ring
        self.replication = replication
        self.clock = clock
        #: (store version, ring_key) of the listing, and the listing
        self._cache: tuple[tuple[int, tuple[int, tuple[str, ...]]], Holdings] | None = None
        #: when the last listing ended (clock seconds) and how long it took
        self._listed_at = -float("inf")
        self._listing_s = 0.0
        self.version = 0
        #: When a client's write or forget last changed the store (clock seconds).
        self.last_client_write = -float("inf")

    def touched(self, *, by_client: bool = False) -> None:
        """The store changed (``by_client``: a client's write or forget, not repair)."""
        self.version += 1
        if by_client:
            self.last_client_write = self.clock()

    def holdings(self, *, bounded: bool = False) -> Holdings:
        """The current listing, made now if the store or the ring changed since the last.
        ``bounded``: raise BusyError instead when listing again now would take more than
        :data:`LISTING_SHARE` of the store's time."""
        ring = self.ring()
        stamp = (self.version, ring_key(ring))
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        wait = self.listing_wait()
        if bounded and wait > 0:
            raise BusyError(
                f"agent {self.me} is being written to, and listing its records for repair "
                f"took {self._listing_s:.1f} s; ask again in {wait:.1f} s",
                retry_after=wait,
            )
        started = self.clock()
        held = holdings(self.me, self.store, ring, self.replication)
        self._listed_at = self.clock()
        self._listing_s = self._listed_at - started
        self._cache = (stamp, held)
        return held

    def written_to(self) -> bool:
        """Whether a client wrote to this store in the last :data:`WRITTEN_TO_S`."""
        return self.clock() - self.last_client_write < WRITTEN_TO_S

    def listing_wait(self) -> float:
        """Seconds until listing again keeps listing within :data:`LISTING_SHARE` of the
        time: 0 when it does now, when no client is writing to the store, and always for a
        listing under :data:`LISTING_FREE_S`."""
        if self._listing_s < LISTING_FREE_S or not self.written_to():
            return 0.0
        due = self._listed_at + self._listing_s * (1.0 / LISTING_SHARE - 1.0)
        return max(0.0, due - self.clock())

    def latest(self) -> Holdings:
        """The latest listing, though records were written since (a new one only when the
        ring changed or none was made): what the later requests of an exchange compare."""
        if self._cache is not None and self._cache[0][1] == ring_key(self.ring()):
            return self._cache[1]
        return self.holdings()

    def misplaced_count(self) -> int:
        """Records held here for other owners (hints, or left by a membership change), as of
        the latest listing when listing again now would exceed the share."""
        return len((self.latest() if self.listing_wait() > 0 else self.holdings()).misplaced)

    def answer(self, r: p.Request) -> p.Reply:
        """Answer one of repair's requests (protocol.REPAIR_REQUESTS) from ``r.peer``."""
        if isinstance(r, p.RepairDigest):
            # per bucket (bits, prefix, count, xor) as the peer sees it: None when this side
            # agrees, else the digests of its 64 children. The root starts an exchange: it
            # is compared with a current listing, the deeper levels with the same one.
            starts = any(b == 0 for b, _, _, _ in r.buckets)
            held = self.holdings(bounded=True) if starts else self.latest()
            shared = held.with_peer(r.peer)
            out: list[list[tuple[int, int]] | None] = []
            for b, pre, count, x in r.buckets:
                same = shared.digest(b, pre) == [count, x]
                out.append(None if same else [(c[0], c[1]) for c in shared.children(b, pre)])
            return p.RepairDigestReply(out)
        if isinstance(r, p.RepairKeys):
            shared = self.latest().with_peer(r.peer)
            return p.RepairKeysReply(
                [k for b, pre in r.buckets for k in shared.bucket_keys(b, pre)]
            )
        if isinstance(r, p.RepairGet):
            shared = self.latest().with_peer(r.peer)
            keys = list(r.keys)
            for b, pre in r.buckets:
                keys += shared.bucket_keys(b, pre)
            return p.RepairGetReply(p.for_asker(r, select(self.store, keys)))
        if isinstance(r, p.RepairPut):
            tombs = absorb(self.store, r.shard)
            self.touched()
            return p.RepairPutReply(tombs)
        raise InvalidInputError(f"repair does not answer {type(r).__name__}")


@dataclass
class RepairReport:
    peers: int = 0
    failed_peers: list[str] = field(default_factory=list)
    #: of those, the peers that said they were busy (they hold what they hold)
    busy_peers: list[str] = field(default_factory=list)
    pushed: int = 0
    pulled: int = 0
    handed_off: int = 0
    #: records still to hand off after the round (an owner could not take them)
    left: int = 0
    requests: int = 0
    seconds: float = 0.0
    finished: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "peers": self.peers,
            "failed_peers": self.failed_peers,
            "busy_peers": self.busy_peers,
            "pushed": self.pushed,
            "pulled": self.pulled,
            "handed_off": self.handed_off,
            "left": self.left,
            "requests": self.requests,
            "seconds": round(self.seconds, 4),
            "finished": self.finished,
        }


class Repairer:
    """The initiator side: one repair round with every peer this agent leads, then handoff."""

    def __init__(
        self,
        service: RepairService,
        send: Callable[[str, p.Request], Awaitable[p.Reply]],
        run: Runner | None = None,
    ) -> None:
        self.service = service
        self.send = send  # async (agent, request) -> reply
        self.run: Runner = run or _inline
        self.last: RepairReport | None = None
        self._guarded_for: tuple[str, ...] | None = None

    @property
    def me(self) -> str:
        return self.service.me

    def leads(self, peer: str) -> bool:
        """One side of each pair starts the exchange; alternate by a hash of the pair so the
        work spreads evenly."""
        a, b = sorted((self.me, peer))
        first = record_hash(a + SEP + b) & 1 == 0
        return (self.me == a) == first

    async def round(self, peers: Iterable[str] | None = None) -> RepairReport:
        started = time.monotonic()
        report = RepairReport()
        began_under = ring_key(self.service.ring())
        held = await self.run(self.service.holdings)
        targets = sorted(
            peer
            for peer in (peers if peers is not None else self.service.ring().nodes)
            if peer != self.me and (peers is not None or self.leads(peer))
        )
        report.peers = len(targets)
        results = await asyncio.gather(
            *(self._with(q, held.with_peer(q), report) for q in targets),
            return_exceptions=True,
        )
        for peer, result in zip(targets, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                logger.info("repair with %s failed: %s", peer, result)
                report.failed_peers.append(peer)
                if isinstance(result, BusyError):
                    report.busy_peers.append(peer)
        now = self.service.ring()
        # the listing the round began with, while the ring is the same and no guards are
        # due (tombstones sent during the round must be guarded too): one listing a round
        same = ring_key(now) == began_under and self._guarded_for == now.nodes
        await self.handoff(report, held if same else None)
        report.seconds = time.monotonic() - started
        report.finished = time.time()
        self.last = report
        return report

    @staticmethod
    def quiet(report: RepairReport) -> bool:
        """Whether a round found every replica in step: nothing pushed, pulled, handed off
        or left to hand off, and every peer answered."""
        return not report.failed_peers and not (
            report.pushed or report.pulled or report.handed_off or report.left
        )

    async def _ask(self, peer: str, request: p.Request, kind: type[R], report: RepairReport) -> R:
        report.requests += 1
        return p.expect(await self.send(peer, request), kind)

    async def _with(self, peer: str, local: Shared, report: RepairReport) -> None:
        store = self.service.store
        frontier: list[tuple[int, int]] = [(0, 0)]
        push_buckets: list[tuple[int, int]] = []
        pull_buckets: list[tuple[int, int]] = []
        key_buckets: list[tuple[int, int]] = []
        while frontier:
            asked: list[tuple[int, int, int, int]] = []
            for b, pre in frontier:
                count, x = local.digest(b, pre)
                asked.append((b, pre, count, x))
            reply = await self._ask(
                peer, p.RepairDigest(self.me, asked), p.RepairDigestReply, report
            )
            nxt: list[tuple[int, int]] = []
            for (bits, prefix), remote in zip(frontier, reply.digests, strict=True):
                if remote is None:
                    continue
                mine = local.children(bits, prefix)
                for c in range(FANOUT):
                    (lc, lx), (rc, rx) = mine[c], remote[c]
                    if lc == rc and lx == rx:
                        continue
                    child = (bits + LEVEL_BITS, (prefix << LEVEL_BITS) | c)
                    if rc == 0:
                        push_buckets.append(child)
                    elif lc == 0:
                        pull_buckets.append(child)
                    elif max(lc, rc) <= LEAF or child[0] + LEVEL_BITS > MAX_BITS:
                        key_buckets.append(child)
                    else:
                        nxt.append(child)
            frontier = nxt
        push_keys = [k for b, pre in push_buckets for k in local.bucket_keys(b, pre)]
        pull_keys: list[str] = []
        if key_buckets:
            keys = await self._ask(
                peer, p.RepairKeys(self.me, key_buckets), p.RepairKeysReply, report
            )
            theirs = set(keys.keys)
            ours = {k for b, pre in key_buckets for k in local.bucket_keys(b, pre)}
            push_keys += sorted(ours - theirs)
            pull_keys = sorted(theirs - ours)
        if pull_keys or pull_buckets:
            got = await self._ask(
                peer,
                p.RepairGet(self.me, pull_keys, pull_buckets, tokenizer=self.service.tokenizer),
                p.RepairGetReply,
                report,
            )
            shard = got.shard
            refused = await self.run(absorb, store, shard)
            self.service.touched()
            report.pulled += len(shard.facts) + len(shard.postings) + len(shard.tombstones)
            if refused:
                await self._ask(
                    peer, p.Forget(refused, tokenizer=self.service.tokenizer), p.ForgetReply, report
                )
        if push_keys:
            shard = await self.run(select, store, push_keys)
            put = await self._ask(
                peer,
                p.RepairPut(self.me, shard, tokenizer=self.service.tokenizer),
                p.RepairPutReply,
                report,
            )
            report.pushed += len(shard.facts) + len(shard.postings) + len(shard.tombstones)
            if put.tombstones:
                await self.run(store.forget, put.tombstones)
                self.service.touched()

    async def handoff(
        self, report: RepairReport | None = None, held: Holdings | None = None
    ) -> int:
        """Send misplaced records to their owners; drop them here once all owners have them.
        ``held``: the listing to hand off from (by default, a current one); records it
        misses are handed off in the next round.

        When the membership changed, tombstones held for facts owned elsewhere go to the
        (new) owners first, so a copy a stale replica hands over cannot bring a forgotten
        fact back; they are kept here as guards."""
        report = report or RepairReport()
        if held is None:
            held = await self.run(self.service.holdings)
        ring_now = self.service.ring().nodes
        if self._guarded_for != ring_now:
            got = await self._deliver(held.guards, report) if held.guards else {}
            late = [k for k, o in held.guards.items() if not got.get(k, set()) >= set(o)]
            if not late:
                self._guarded_for = ring_now  # else: again next round
            report.left += len(late)
        misplaced = held.misplaced
        if not misplaced:
            return 0
        delivered = await self._deliver(misplaced, report)
        store = self.service.store
        done = [k for k, owners in misplaced.items() if delivered.get(k, set()) >= set(owners)]
        facts = [k.partition(SEP)[2] for k in done if k[0] == "f"]
        postings = [tuple(k.split(SEP)[1:3]) for k in done if k[0] == "p"]
        if facts or postings:
            await self.run(store.drop, facts, postings)
        self.service.touched()
        report.handed_off += len(done)
        report.left += len(misplaced) - len(done)
        return len(done)

    async def _deliver(
        self, records: dict[str, list[str]], report: RepairReport
    ) -> dict[str, set[str]]:
        """Push each record to each of its owners; return record key -> owners that took it."""
        store = self.service.store
        by_owner: dict[str, list[str]] = {}
        for key, owners in records.items():
            for o in owners:
                by_owner.setdefault(o, []).append(key)
        delivered: dict[str, set[str]] = {}

        async def give(owner: str, keys: list[str]) -> None:
            shard = await self.run(select, store, keys)
            put = await self._ask(
                owner,
                p.RepairPut(self.me, shard, tokenizer=self.service.tokenizer),
                p.RepairPutReply,
                report,
            )
            if put.tombstones:
                await self.run(store.forget, put.tombstones)
                self.service.touched()
            for k in keys:
                delivered.setdefault(k, set()).add(owner)

        results = await asyncio.gather(
            *(give(o, ks) for o, ks in by_owner.items()), return_exceptions=True
        )
        for owner, result in zip(by_owner, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                logger.info("handoff to %s failed: %s", owner, result)
        return delivered


async def _inline(fn: Callable[..., T], *args: object) -> T:
    return fn(*args)
