"""Placement with failure domains: 100 agents packed 5 per process, beside the plain ring.

    python -m benchmarks.bench_placement [--agents 100] [--per-process 5] [--keys 100000]

Issue 9, "Failure domains in placement": the R=3 owners of a key must be in 3 distinct
processes whenever there are at least 3 (target: 0 keys with 2 or more owners in one
process), with the load still balanced and about 1/N of the keys moving on a join. The
baseline is the same ring without domains (each agent its own domain), in the same run.
Pure computation: no agents, no disk. Progress to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from amplihack_hive.memory.ring import HashRing
from benchmarks.bench_memory import Row, finish, note, render


def measure(ring: HashRing, domains: dict[str, str], keys: list[str]) -> dict[str, float]:
    shared = all_in_one = 0
    load: Counter[str] = Counter()
    for key in keys:
        owners = ring.owners(key, 3)
        load.update(owners)
        distinct = len({domains[a] for a in owners})
        shared += distinct < 3
        all_in_one += distinct == 1
    mean = sum(load.values()) / len(load)
    return {
        "shared": shared / len(keys),
        "all": all_in_one / len(keys),
        "balance": max(load.values()) / mean,
    }


def moved_on_join(ring: HashRing, keys: list[str], newcomer: str, domain: str) -> float:
    grown = HashRing(ring.nodes, vnodes=ring.vnodes, domains=ring.domains)
    grown.add(newcomer, domain)
    return sum(set(ring.owners(k, 3)) != set(grown.owners(k, 3)) for k in keys) / len(keys)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--per-process", type=int, default=5)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--strict", action="store_true")
    args = ap.parse_args(argv)
    names = [f"agent-{i}" for i in range(args.agents)]
    domains = {a: f"p{i // args.per_process}" for i, a in enumerate(names)}
    keys = [f"fact-{i}" for i in range(args.keys)]
    note(f"{args.agents} agents, {args.per_process} per process, {args.keys} keys")
    plain = HashRing(names)
    aware = HashRing(names, domains=domains)
    base = measure(plain, domains, keys)
    ours = measure(aware, domains, keys)
    note("join")
    join_keys = keys[: min(len(keys), 20_000)]
    base_join = moved_on_join(plain, join_keys, "agent-new", "agent-new")
    ours_join = moved_on_join(aware, join_keys, "agent-new", domains[names[-1]])
    share = 3 / (args.agents + 1)
    procs = args.agents // args.per_process
    rows = [
        Row(
            f"keys with 2+ owners in one process ({args.agents} agents, {procs} processes)",
            f"{base['shared']:.2%}",
            f"{ours['shared']:.2%}",
            target="0",
            ok=ours["shared"] == 0,
        ),
        Row(
            "keys with all 3 owners in one process",
            f"{base['all']:.2%}",
            f"{ours['all']:.2%}",
            target="0",
            ok=ours["all"] == 0,
        ),
        Row(
            "busiest agent's copies / mean",
            f"{base['balance']:.3f}",
            f"{ours['balance']:.3f}",
            target="<= 1.25",
            ok=ours["balance"] <= 1.25,
        ),
        Row(
            "keys whose owners change when one agent joins (the last process's domain)",
            f"{base_join:.2%}",
            f"{ours_join:.2%}",
            f"{ours_join / share:.2f} shares",
            target=f"about 1/N ({share:.2%} = 3/(N+1))",
            ok=ours_join <= 2 * share,
        ),
    ]
    print(render(rows))
    return finish(rows, args.strict)


if __name__ == "__main__":
    sys.exit(main())
