"""Memory of one agent's store under a steady write, beside raw Kuzu doing the same writes.

    python -m benchmarks.bench_rss [--minutes 15] [--warm-minutes 2] [--strict]

Child processes, one after the other, each writing batches of facts for ``--minutes``
(150 facts and their postings per batch, as one agent of a 20-agent hive receives from a
500-fact learn batch), sampling their own RSS every 5 s:

- **ours**: a ``KuzuStore`` (bodies in Kuzu, postings in the posting index), through
  ``put_facts`` and ``put_postings``, default caps, in a process whose allocator is set up
  as an agent process sets it up (``agent/malloc.py``);
- **ours, allocator untouched**: the same without that (as a program embedding the
  library runs it);
- **raw Kuzu**: one database with the same caps, the same bodies by ``UNWIND ... CREATE``
  and the postings as rows of a second node table (no relation: the cheapest Kuzu can
  take them), one transaction per batch.

The figure is the growth of RSS from ``--warm-minutes`` to the end, in percent. Where the
MB are, from ``/proc/self/smaps``: ``[heap]`` (glibc's main arena: Python objects and small
C++ allocations), other anonymous mappings (Kuzu's buffer pool, the other arenas, large
buffers) and mapped files (libraries, posting segments).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.bench_memory import Row, finish, note, render

TARGET_GROWTH_PCT = 10.0
BATCH_FACTS = 150


KINDS = {"raw": "raw Kuzu", "ours": "ours", "untuned": "ours, allocator untouched"}


def _where() -> dict[str, float]:
    """RSS MB by kind of mapping: heap, other anonymous, files (Linux; else RSS alone)."""
    out = {"heap": 0.0, "anon": 0.0, "files": 0.0}
    kind = "anon"
    try:
        with open("/proc/self/smaps") as smaps:
            for line in smaps:
                head = line.split(maxsplit=6)
                if not head[0].endswith(":"):  # a mapping's first line: its path, if any
                    path = head[5].strip() if len(head) > 5 else ""
                    kind = "heap" if path == "[heap]" else "files" if path[:1] == "/" else "anon"
                elif head[0] == "Rss:":
                    out[kind] += int(head[1]) / 1024
    except OSError:
        return {}
    return out


def _child(kind: str, seconds: float, root: Path, pool_mb: int) -> None:
    import psutil

    if kind == "ours":
        from amplihack_hive.agent.malloc import tune_malloc

        tune_malloc()
    from amplihack_hive.memory.records import Fact, Posting
    from amplihack_hive.memory.text import term_counts
    from benchmarks.corpus import filler_facts

    proc = psutil.Process()
    texts = filler_facts(10_000_000, seed=9)
    if kind != "raw":
        from amplihack_hive.memory.kuzu_store import KuzuStore

        store = KuzuStore(root / "agent", buffer_pool_mb=pool_mb)
    else:
        from amplihack_hive.memory.engine import load_engine

        kuzu = load_engine("kuzu")
        # a larger cap than ours: its postings as nodes outgrow 4 GB within minutes
        db = kuzu.Database(
            str(root / "raw"), buffer_pool_size=pool_mb * 2**20, max_db_size=65536 * 2**20
        )
        conn = kuzu.Connection(db, num_threads=1)
        conn.execute(
            "CREATE NODE TABLE Doc(id STRING PRIMARY KEY, content STRING, length INT64,"
            " created DOUBLE)"
        )
        conn.execute(
            "CREATE NODE TABLE P(k STRING PRIMARY KEY, tf INT64, length INT64, created DOUBLE)"
        )
    samples: list[tuple[float, float]] = []
    where: list[tuple[float, dict[str, float]]] = []
    started = time.monotonic()
    next_sample = started
    facts_written = 0
    while time.monotonic() - started < seconds:
        facts, postings = [], []
        for _ in range(BATCH_FACTS):
            f = Fact.new(next(texts), created=1.0)
            counts, length = term_counts(f.content)
            facts.append(f)
            postings += [Posting(t, f.id, tf, length, 1.0) for t, tf in counts.items()]
        if kind != "raw":
            store.put_facts(facts)
            store.put_postings(postings)
        else:
            conn.execute("BEGIN TRANSACTION")
            conn.execute(
                "UNWIND $rows AS r CREATE (:Doc {id: r.id, content: r.c, length: r.l,"
                " created: 1.0})",
                {"rows": [{"id": f.id, "c": f.content, "l": 10} for f in facts]},
            )
            conn.execute(
                "UNWIND $rows AS r CREATE (:P {k: r.k, tf: r.tf, length: r.l, created: 1.0})",
                {"rows": [{"k": p.term + "|" + p.fact_id, "tf": p.tf, "l": 10} for p in postings]},
            )
            conn.execute("COMMIT")
        facts_written += len(facts)
        now = time.monotonic()
        if now >= next_sample:
            samples.append((now - started, proc.memory_info().rss / 2**20))
            where.append((now - started, _where()))
            next_sample = now + 5
    samples.append((time.monotonic() - started, proc.memory_info().rss / 2**20))
    where.append((time.monotonic() - started, _where()))
    print(json.dumps({"samples": samples, "where": where, "facts": facts_written}))


def _run(kind: str, seconds: float, pool_mb: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix=f"bench-rss-{kind}-") as root:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_rss",
                "--child",
                kind,
                str(seconds),
                root,
                str(pool_mb),
            ],
            capture_output=True,
            text=True,
        )
    if out.returncode != 0:  # said in the table, and the other sides still run
        why = (out.stderr.strip().splitlines() or [f"exit status {out.returncode}"])[-1]
        note(f"{KINDS[kind]} failed: {out.stderr.strip()[-2000:]}")
        return {"error": why}
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _at(samples: list[list[float]], t: float) -> float:
    return next((rss for when, rss in samples if when >= t), samples[-1][1])


def _where_at(where: list[list[Any]], t: float) -> dict[str, float]:
    return next((w for when, w in where if when >= t), where[-1][1])


def _mb(parts: dict[str, float]) -> str:
    return " / ".join(f"{parts[k]:.0f}" for k in ("heap", "anon", "files")) if parts else "-"


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], float(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_rss", description=__doc__)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--warm-minutes", type=float, default=2.0)
    parser.add_argument("--buffer-pool-mb", type=int, default=256)
    parser.add_argument("--only", choices=tuple(KINDS), help="run one side")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    seconds, warm = args.minutes * 60, args.warm_minutes * 60
    results: dict[str, Any] = {}
    kinds = [args.only] if args.only else list(KINDS)
    for kind in kinds:
        note(f"{KINDS[kind]}: writing for {args.minutes:g} min")
        results[kind] = _run(kind, seconds, args.buffer_pool_mb)
    if args.only:
        print(json.dumps(results[args.only]))
        return 0 if "error" not in results[args.only] else 1
    growth = {}
    for kind in kinds:
        if "error" in results[kind]:
            growth[kind] = f"failed ({results[kind]['error'][:60]})"
            continue
        samples = results[kind]["samples"]
        w, end = _at(samples, warm), samples[-1][1]
        growth[kind] = f"{(end - w) / w * 100:+.1f}"
        note(f"{kind}: {results[kind]['facts']:,} facts, RSS {w:.0f} MB at warm, {end:.0f} at end")
    ours_ok = "error" not in results["ours"]
    rows = [
        Row(
            f"RSS growth {args.warm_minutes:g}-{args.minutes:g} min of steady writes, %",
            f"raw Kuzu: {growth['raw']}",
            growth["ours"],
            f"untouched: {growth['untuned']}",
            f"<= {TARGET_GROWTH_PCT:.0f}%",
            ours_ok and float(growth["ours"]) <= TARGET_GROWTH_PCT,
        )
    ]
    for kind, label in KINDS.items():
        if "error" in results[kind]:
            continue
        samples, where = results[kind]["samples"], results[kind]["where"]
        rows.append(
            Row(
                f"{label}: facts written; RSS MB at {args.warm_minutes:g} min / end",
                "",
                f"{results[kind]['facts']:,}; {_at(samples, warm):.0f} / {samples[-1][1]:.0f}",
            )
        )
        rows.append(
            Row(
                f"{label}: heap / other anon / files MB at {args.warm_minutes:g} min",
                "",
                _mb(_where_at(where, warm)),
            )
        )
        rows.append(Row(f"{label}: heap / other anon / files MB at end", "", _mb(where[-1][1])))
    print(
        f"steady writes into one store, {BATCH_FACTS} facts per batch, buffer pool "
        f"{args.buffer_pool_mb} MB, {os.cpu_count()} cpus"
    )
    print(render(rows))
    return finish(rows, args.strict)


if __name__ == "__main__":
    sys.exit(main())
