"""The consistent-hash ring that places every fact and posting list on R agents.

Pure placement: no I/O, no clocks, no randomness. Two agents that know the same member names
and the same ``vnodes`` compute the same owners for every key, whatever order they learned
the members in, because every position comes from :func:`stable_hash` (never Python's
``hash()``, which is salted per process).

Consistent hashing follows Karger et al., "Consistent Hashing and Random Trees" (STOC 1997):
each node is mapped to many points ("virtual nodes") on a circle of 2**64 positions and a key
belongs to the first point clockwise from the key's hash, so adding or removing one of N nodes
moves only about 1/N of the keys, and only to or from that node. Replication follows
DeCandia et al., "Dynamo" (SOSP 2007) §4.2: a key's *preference list* is the first R
*distinct* physical nodes met walking clockwise, skipping further virtual nodes of a node
already chosen.

Failure domains follow Cassandra's rack-aware placement (NetworkTopologyStrategy): every node
has a domain (the process it runs in, its Container App, a zone) and the walk takes a node
only if no node of its domain is in the list yet, until every domain is represented; then it
fills the list with the nodes it skipped, in the order it met them. So whenever there are at
least R domains, the R owners of every key are in R distinct domains, and one process dying
with its disk never takes every copy of a record with it. A node without a domain is its own.
"""

from __future__ import annotations

import hashlib
import logging
from bisect import bisect_left
from collections.abc import Iterable, Mapping

from amplihack_hive.errors import InvalidInputError, NotFoundError

logger = logging.getLogger(__name__)

#: Number of positions on the ring: hashes are 64-bit unsigned integers.
RING_SPACE = 1 << 64
#: Virtual nodes per physical node unless told otherwise. With 100 nodes this keeps the
#: busiest node within ~25% of the mean load (see tests/test_ring.py for the measured figure).
DEFAULT_VNODES = 256

# Bound once: owners() runs millions of times in the benchmarks and these lookups show.
_blake2b = hashlib.blake2b
_from_bytes = int.from_bytes


def stable_hash(key: str) -> int:
    """A 64-bit unsigned hash of ``key``, identical on every machine and process.

    BLAKE2b with an 8-byte digest, read big-endian.
    """
    if not isinstance(key, str):
        raise InvalidInputError(f"ring keys are str, not {type(key).__name__}")
    return _from_bytes(_blake2b(key.encode(), digest_size=8).digest(), "big")


class _RingState:
    """One immutable snapshot of the ring's points, plus its lazily filled successor tables.

    ``add``/``remove`` build a new snapshot and swap it in with one assignment, so a reader
    that took ``self._state`` once never sees points and owners from two different rings.
    """

    __slots__ = ("domain_count", "domains", "epoch", "nodes", "owners", "points", "successors")

    def __init__(self, nodes: frozenset[str], vnodes: int, domains: dict[str, str]) -> None:
        # Karger et al. 1997: each node is replicated at `vnodes` pseudo-random points of the
        # circle. Ties between two nodes' points (astronomically rare at 64 bits) are broken
        # by node name so the order never depends on insertion order.
        pairs = sorted((stable_hash(f"{node}#{i}"), node) for node in nodes for i in range(vnodes))
        self.nodes: frozenset[str] = nodes
        self.points: list[int] = [p for p, _ in pairs]
        self.owners: list[str] = [n for _, n in pairs]
        # successors[r][i]: the preference list of length r starting at point index i, or None
        # until first asked. Filled on demand so a ring that is only ever asked for r=3 never
        # pays for other lengths; thrown away with the snapshot on add/remove.
        self.successors: dict[int, list[tuple[str, ...] | None]] = {}
        #: node -> its failure domain (every node has one; its own name by default)
        self.domains: dict[str, str] = {n: domains.get(n, n) for n in nodes}
        self.domain_count = len(set(self.domains.values()))
        self.epoch: str | None = None

    def walk(self, start: int, r: int) -> tuple[str, ...]:
        """The first ``r`` distinct nodes clockwise from point index ``start`` (r <= nodes),
        in distinct domains while any domain is not represented yet."""
        # Dynamo 2007 §4.2: walk clockwise, skipping virtual nodes of physical nodes already in
        # the preference list. Cassandra's NetworkTopologyStrategy: also skip (for now) nodes
        # whose domain is already represented, until every domain is; then the skipped nodes
        # come next, in the order they were met.
        owners = self.owners
        domains = self.domains
        size = len(owners)
        chosen: list[str] = []
        seen: set[str] = set()
        used: set[str] = set()
        skipped: list[str] = []
        all_domains = self.domain_count
        j = start
        for _ in range(size):
            if len(chosen) >= r:
                break
            node = owners[j]
            j += 1
            if j == size:
                j = 0
            if node in seen:
                continue
            seen.add(node)
            if len(used) == all_domains:
                chosen.append(node)
                continue
            domain = domains[node]
            if domain in used:
                skipped.append(node)
                continue
            used.add(domain)
            chosen.append(node)
            if len(used) == all_domains:
                take = skipped[: r - len(chosen)]
                chosen.extend(take)
                del skipped[: len(take)]
        # a full circle met every node; what is still skipped follows in the order met
        chosen.extend(skipped[: r - len(chosen)])
        return tuple(chosen)


class HashRing:
    """Consistent-hash ring of named nodes with ``vnodes`` virtual nodes each.

    >>> ring = HashRing(["a", "b", "c"], vnodes=64)
    >>> sorted(ring.owners("some fact id", 2)) == sorted(set(ring.owners("some fact id", 2)))
    True
    """

    def __init__(
        self,
        nodes: Iterable[str] = (),
        vnodes: int = DEFAULT_VNODES,
        domains: Mapping[str, str] | None = None,
    ) -> None:
        if isinstance(vnodes, bool) or not isinstance(vnodes, int) or vnodes < 1:
            raise InvalidInputError(f"vnodes must be an int >= 1, got {vnodes!r}")
        self._vnodes = vnodes
        names: set[str] = set()
        for node in nodes:
            _check_node_name(node)
            if node in names:
                raise InvalidInputError(f"node {node!r} given twice")
            names.add(node)
        self._domains: dict[str, str] = {}
        for node, domain in (domains or {}).items():
            if not isinstance(domain, str) or not domain:
                raise InvalidInputError(f"the domain of {node!r} must be a non-empty str")
            self._domains[node] = domain
        self._state = _RingState(frozenset(names), vnodes, self._domains)

    # -- membership ---------------------------------------------------------------------------

    @property
    def vnodes(self) -> int:
        """Virtual nodes per physical node."""
        return self._vnodes

    def domain(self, node: str) -> str:
        """The failure domain of ``node`` (its own name unless one was given)."""
        return self._state.domains.get(node) or self._domains.get(node, node)

    @property
    def domains(self) -> dict[str, str]:
        """Node -> failure domain, for every member."""
        return dict(self._state.domains)

    @property
    def domain_count(self) -> int:
        """How many distinct failure domains the members are in."""
        return self._state.domain_count

    @property
    def epoch(self) -> str:
        """A fingerprint of the membership (members, their domains, vnodes): two rings
        with the same epoch place every key alike. Agents send theirs with every reply, so
        a client holding another ring knows to refresh it."""
        state = self._state
        cached = state.epoch
        if cached is None:
            # placement depends on which nodes share a domain, not on the domains' names:
            # each domain is named by its first member here, so rings that group the same
            # nodes alike (by process record or by URL) have the same epoch
            first: dict[str, str] = {}
            for n in sorted(state.nodes):
                first.setdefault(state.domains[n], n)
            text = "\n".join(f"{n}\t{first[state.domains[n]]}" for n in sorted(state.nodes))
            digest = _blake2b(f"{self._vnodes}\n{text}".encode(), digest_size=8).hexdigest()
            cached = state.epoch = digest
        return cached

    @property
    def nodes(self) -> tuple[str, ...]:
        """Member names, sorted."""
        return tuple(sorted(self._state.nodes))

    def __len__(self) -> int:
        return len(self._state.nodes)

    def __contains__(self, node: object) -> bool:
        return node in self._state.nodes

    def __repr__(self) -> str:
        return f"HashRing(nodes={len(self)}, vnodes={self._vnodes})"

    def add(self, node: str, domain: str | None = None) -> None:
        """Add ``node`` (in ``domain``, else its own); refuses a name already on the ring."""
        _check_node_name(node)
        state = self._state
        if node in state.nodes:
            raise InvalidInputError(f"node {node!r} is already on the ring")
        if domain is not None:
            if not isinstance(domain, str) or not domain:
                raise InvalidInputError(f"the domain of {node!r} must be a non-empty str")
            self._domains[node] = domain
        self._state = _RingState(state.nodes | {node}, self._vnodes, self._domains)
        logger.debug("ring: added %s (%d nodes)", node, len(self._state.nodes))

    def remove(self, node: str) -> None:
        """Remove ``node``; :class:`NotFoundError` if it is not on the ring."""
        state = self._state
        if node not in state.nodes:
            raise NotFoundError(f"node {node!r} is not on the ring")
        self._state = _RingState(state.nodes - {node}, self._vnodes, self._domains)
        logger.debug("ring: removed %s (%d nodes)", node, len(self._state.nodes))

    # -- placement ----------------------------------------------------------------------------

    def owners(self, key: str, r: int) -> list[str]:
        """The preference list of ``key``: its first ``r`` distinct nodes clockwise.

        The first element is the primary owner (the node of the first point at or after
        ``stable_hash(key)``, wrapping past the top). When ``r`` exceeds the number of nodes,
        every node is returned, in ring order.
        """
        if not isinstance(r, int) or r < 1:
            raise InvalidInputError(f"r must be an int >= 1, got {r!r}")
        return self._lookup(stable_hash(key), r)

    def owners_of_hash(self, h: int, r: int) -> list[str]:
        """As :meth:`owners`, for a precomputed :func:`stable_hash` value ``h``."""
        if not isinstance(r, int) or r < 1:
            raise InvalidInputError(f"r must be an int >= 1, got {r!r}")
        if not isinstance(h, int) or not 0 <= h < RING_SPACE:
            raise InvalidInputError(f"hash {h!r} is not an int in [0, 2**64)")
        return self._lookup(h, r)

    def _lookup(self, h: int, r: int) -> list[str]:
        state = self._state
        points = state.points
        if not points:
            raise NotFoundError("the ring has no nodes")
        n = len(state.nodes)
        if r > n:
            r = n
        table = state.successors.get(r)
        if table is None:
            table = state.successors.setdefault(r, [None] * len(points))
        # Karger et al. 1997: the key belongs to the first point at or after its hash,
        # wrapping around past the largest point.
        i = bisect_left(points, h)
        if i == len(points):
            i = 0
        prefs = table[i]
        if prefs is None:
            prefs = table[i] = state.walk(i, r)
        return list(prefs)


def _check_node_name(node: object) -> None:
    if not isinstance(node, str) or not node:
        raise InvalidInputError(f"node names are non-empty str, got {node!r}")
