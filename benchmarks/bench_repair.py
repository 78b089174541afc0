"""Rebuilding an agent that lost its disk, and write latency by write quorum, with baselines.

    python -m benchmarks.bench_repair [--quick] [--strict]

At N = 20 and 100 (R=3, memory backend), one agent loses its disk (its store is replaced by
an empty one); repair rounds run on every agent until a round moves nothing. Printed beside
each other, all measured in the same run: the rounds taken and the ceil(log2 N) + 2 target;
the bytes repair sent (the in-process transport counts the JSON of every request and reply)
and the bytes of the records the agent lost (the JSON of one ``import`` request carrying its
whole former shard: the full-copy baseline, which after a whole-disk loss is also the
missing data); the naive baseline of every replica peer sending it its whole shard; and the
digest overhead, the bytes of one round while every replica is in sync. Then the latency of
single-fact ``remember`` with W = 1, 2, 3 (in process, so CPU only: the coordinator still
waits for every owner's reply, W only decides what counts as success). Progress goes to
stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from amplihack_hive import Hive
from amplihack_hive.memory.node import MemoryNode
from amplihack_hive.memory.repair import RepairService, holdings
from amplihack_hive.memory.store import InMemoryStore
from amplihack_hive.transport.inprocess import InProcessTransport
from benchmarks.bench_memory import Row, _progress, _x, finish, note, render
from benchmarks.corpus import filler_facts

REPLICATION = 3
#: the issue's targets: convergence within ceil(log2 N) + 2 rounds; repair bytes at most
#: twice the missing data plus digest overhead
BYTES_FACTOR = 2.0
MAX_ROUNDS = 30


def round_target(agents: int) -> int:
    return math.ceil(math.log2(agents)) + 2


def wire_bytes(message: dict[str, Any]) -> int:
    """What the transport counts for a request: its compact JSON."""
    return len(json.dumps(message, separators=(",", ":")))


def _transport(hive: Hive) -> InProcessTransport:
    t = hive._transport
    assert isinstance(t, InProcessTransport)
    return t


def _round(hive: Hive) -> tuple[int, int]:
    """One repair round on every agent: (bytes sent both ways, records moved)."""
    t = _transport(hive)
    before = t.bytes_sent
    reports = hive.repair()
    return t.bytes_sent - before, sum(r.pushed + r.pulled + r.handed_off for r in reports)


@dataclass
class Rebuild:
    agents: int
    facts: int
    victim: str = ""
    held: int = 0  # records (bodies + postings) the victim held
    missing_bytes: int = 0  # full copy of its former shard = the data it lost
    naive_bytes: int = 0  # every replica peer's whole shard
    peers: int = 0
    in_sync_bytes: int = 0  # one round with everything in sync: the digest overhead
    round_bytes: list[int] = field(default_factory=list)  # rounds that moved something
    quiet_bytes: int = 0  # the round that found nothing left to move
    back_after_one: int = 0  # records the victim held again after the first round
    identical: bool = False  # its records equal the ones it had, after convergence
    seconds: float = 0.0

    @property
    def rounds(self) -> int:
        return len(self.round_bytes)

    @property
    def repair_bytes(self) -> int:
        return sum(self.round_bytes)


def run_rebuild(agents: int, facts: int, seed: int) -> Rebuild:
    out = Rebuild(agents, facts)
    with Hive.in_process(agents=agents, replication=REPLICATION, backend="memory") as hive:
        hive.remember_many(
            filler_facts(facts, seed), progress=_progress(f"N={agents}: remember", facts)
        )
        t = _transport(hive)
        for _ in range(MAX_ROUNDS):  # hinted writes cannot happen here, but be sure
            spent, moved = _round(hive)
            if moved == 0:
                out.in_sync_bytes = spent
                break
        note(f"N={agents}: in sync; a round sends {out.in_sync_bytes:,} bytes")

        out.victim = random.Random(seed).choice(hive.agents)
        old = t.nodes[out.victim]
        before = old.store.export()
        mine = (set(old.store.fact_ids()), set(old.store.posting_keys()))
        out.held = len(mine[0]) + len(mine[1])
        out.missing_bytes = wire_bytes({"op": "import", "shard": before.to_dict()})
        ring = hive._coordinator.ring
        peers = holdings(out.victim, old.store, ring, REPLICATION).shared
        out.peers = len(peers)
        out.naive_bytes = sum(
            wire_bytes({"op": "import", "shard": t.nodes[p].store.export().to_dict()})
            for p in peers
        )
        note(
            f"N={agents}: {out.victim} loses its disk ({out.held:,} records, "
            f"{out.missing_bytes:,} bytes; {out.peers} replica peers)"
        )

        store = InMemoryStore()
        t.nodes[out.victim] = MemoryNode(
            out.victim,
            store,
            RepairService(out.victim, store, lambda: hive._coordinator.ring, REPLICATION),
        )
        started = time.perf_counter()
        for i in range(MAX_ROUNDS):
            spent, moved = _round(hive)
            if i == 0:
                out.back_after_one = len(set(store.fact_ids()) & mine[0]) + len(
                    set(store.posting_keys()) & mine[1]
                )
            if moved == 0:
                out.quiet_bytes = spent
                break
            out.round_bytes.append(spent)
            note(f"N={agents}: round {i + 1} moved {moved:,} records, {spent:,} bytes")
        out.seconds = time.perf_counter() - started
        out.identical = (set(store.fact_ids()), set(store.posting_keys())) == mine
    return out


@dataclass
class Latency:
    label: str
    ms: list[float]

    def pct(self, p: float) -> float:
        return float(np.percentile(np.asarray(self.ms), p))


def run_latency(agents: int, writes: int, seed: int) -> tuple[Latency, dict[int, Latency]]:
    """Single-fact writes to a 1-agent hive and to N-agent hives with W = 1, 2, 3, taken in
    turn (one write to each, repeated) so that drift in machine load hits all alike."""
    configs = {0: (1, 1, 1), **{w: (agents, REPLICATION, w) for w in (1, 2, 3)}}
    hives = {
        k: Hive.in_process(n, r, backend="memory", write_quorum=w)
        for k, (n, r, w) in configs.items()
    }
    try:
        for hive in hives.values():
            hive.remember_many(filler_facts(2000, seed))  # not an empty hive
        ms: dict[int, list[float]] = {k: [] for k in hives}
        for i in range(writes):
            for k, hive in hives.items():
                text = f"latency probe {i} for hive {k} seed {seed}"
                t = time.perf_counter()
                hive.remember(text)
                ms[k].append((time.perf_counter() - t) * 1000.0)
    finally:
        for hive in hives.values():
            hive.close()
    note(f"latency: {writes} single-fact writes to each of {len(hives)} hives")
    return Latency("1 agent", ms[0]), {w: Latency(f"W={w}", ms[w]) for w in (1, 2, 3)}


def _mb(n: float) -> str:
    return f"{n / 1e6:,.2f} MB" if n >= 1e5 else f"{n / 1e3:,.1f} kB"


def build_rows(
    rebuilds: Sequence[Rebuild], one: Latency, by_w: dict[int, Latency], agents: int
) -> list[Row]:
    rows: list[Row] = []
    for rb in rebuilds:
        n = rb.agents
        target = round_target(n)
        rows.append(
            Row(
                f"rounds to converge after a lost disk, N={n}, {rb.facts:,} facts",
                "full copy: 1 transfer",
                f"{rb.rounds} (+1 quiet)",
                "",
                f"<= {target} (ceil(log2 N)+2)",
                1 <= rb.rounds <= target,
            )
        )
        allowed = BYTES_FACTOR * rb.missing_bytes + rb.rounds * rb.in_sync_bytes
        rows.append(
            Row(
                f"repair bytes to rebuild, N={n}",
                f"missing data {_mb(rb.missing_bytes)}",
                _mb(rb.repair_bytes),
                _x(rb.repair_bytes, rb.missing_bytes),
                f"<= {BYTES_FACTOR:g}x + digests",
                rb.repair_bytes <= allowed,
            )
        )
        beyond = rb.repair_bytes - rb.rounds * rb.in_sync_bytes
        rows.append(
            Row(
                f"repair bytes beyond in-sync digests, N={n}",
                f"missing data {_mb(rb.missing_bytes)}",
                _mb(beyond),
                _x(beyond, rb.missing_bytes),
                f"<= {BYTES_FACTOR:g}x",
                beyond <= BYTES_FACTOR * rb.missing_bytes,
            )
        )
        rows.append(
            Row(
                f"repair bytes vs copying each peer's shard, N={n}",
                f"naive {_mb(rb.naive_bytes)} ({rb.peers} peers)",
                _mb(rb.repair_bytes),
                _x(rb.repair_bytes, rb.naive_bytes),
            )
        )
        rows.append(
            Row(
                f"digest overhead: one in-sync round, N={n}",
                f"missing data {_mb(rb.missing_bytes)}",
                _mb(rb.in_sync_bytes),
                _x(rb.in_sync_bytes, rb.missing_bytes),
            )
        )
        rows.append(
            Row(
                f"records back on {rb.victim} after 1 round, N={n}",
                f"held before {rb.held:,}",
                f"{rb.back_after_one:,}",
                _x(rb.back_after_one, rb.held),
                "all, and exactly them at the end",
                rb.back_after_one == rb.held and rb.identical,
            )
        )
    base = one
    for w in sorted(by_w):
        lat = by_w[w]
        for p in (50, 99):
            rows.append(
                Row(
                    f"remember p{p} ms, N={agents}, R={REPLICATION}, W={w}",
                    f"{base.label} {base.pct(p):.2f}",
                    f"{lat.pct(p):.2f}",
                    _x(lat.pct(p), base.pct(p)),
                )
            )
        if w == 1:
            base = lat
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_repair", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="4k/10k facts, 100 writes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--writes", type=int, default=None, help="latency probes (default 300)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    sizes = {20: 4_000, 100: 10_000} if args.quick else {20: 20_000, 100: 50_000}
    writes = args.writes or (100 if args.quick else 300)
    latency_agents = 20

    rebuilds = [run_rebuild(n, f, args.seed) for n, f in sizes.items()]
    one, by_w = run_latency(latency_agents, writes, args.seed)
    rows = build_rows(rebuilds, one, by_w, latency_agents)

    print(
        f"repair benchmark: one agent loses its disk at N={', '.join(map(str, sizes))} "
        f"(filler facts, seed {args.seed}); backend memory, R={REPLICATION}, in process "
        f"(bytes = JSON both ways; latency is CPU only, median/p99 of {writes} single-fact "
        f"writes); {os.cpu_count()} cpus, Python {platform.python_version()}"
    )
    print(render(rows))
    per_round = "; ".join(
        f"N={rb.agents}: {', '.join(_mb(b) for b in rb.round_bytes)} (+ quiet "
        f"{_mb(rb.quiet_bytes)}), {rb.seconds:.1f} s"
        for rb in rebuilds
    )
    print(f"bytes per repair round: {per_round}")
    return finish(rows, args.strict)


if __name__ == "__main__":
    sys.exit(main())
