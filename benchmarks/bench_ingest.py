"""Ingest into Kuzu-backed agents beside raw Kuzu ``COPY`` of the same records (the floor).

    python -m benchmarks.bench_ingest [--agents 20] [--facts 5000] [--preload 50000] [--strict]

Both sides get the same facts (``corpus.filler_facts``), the same ring placement (R=3) and
the same caps (buffer pool, max DB size, one thread). Each side writes a timed batch of
``--facts`` facts twice: into empty stores, and into stores that already hold
``--preload`` facts each (loaded first, untimed). The figure is facts per CPU-second of
this process (Kuzu's threads included), median of ``--repeats`` batches.

- **ours**: ``Hive.in_process(backend="kuzu")``, ``remember_many`` in batches of 500: the
  coordinator, the in-process transport, nodes and stores (bodies in Kuzu, postings in the
  posting index), tokenising included;
- **floor**: per agent, one Kuzu database with a ``Doc`` node table (bodies), ``Term`` and
  ``Ref`` node tables and a ``Posts`` relation between them (postings); the batch is
  tokenised, placed, written as CSV and loaded with ``COPY`` (one statement per table and
  agent for the whole batch: new terms, bodies, fact refs, then postings).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from amplihack_hive import Hive
from amplihack_hive.memory.engine import load_engine
from amplihack_hive.memory.records import fact_id_for, normalize_content
from amplihack_hive.memory.ring import HashRing
from amplihack_hive.memory.text import term_counts
from benchmarks.bench_memory import Row, finish, note, render
from benchmarks.corpus import filler_facts

REPLICATION = 3
BUFFER_POOL_MB = 256
MAX_DB_SIZE_MB = 4096
BATCH = 500
#: the issue's target: at least half the floor's rate
FLOOR_SHARE = 0.5


def _cpu() -> float:
    return time.process_time()


class Floor:
    """Raw Kuzu: one database per agent, loaded with COPY from CSV."""

    def __init__(self, root: Path, agents: int) -> None:
        kuzu = load_engine("kuzu")
        self.root = root
        self.names = [f"agent-{i}" for i in range(agents)]
        self.ring = HashRing(self.names)
        self.conns = {}
        self.terms: dict[str, set[str]] = {n: set() for n in self.names}
        self._keep = []
        for n in self.names:
            db = kuzu.Database(
                str(root / n),
                buffer_pool_size=BUFFER_POOL_MB * 2**20,
                max_db_size=MAX_DB_SIZE_MB * 2**20,
                max_num_threads=1,
            )
            conn = kuzu.Connection(db, num_threads=1)
            conn.execute(
                "CREATE NODE TABLE Doc(id STRING PRIMARY KEY, content STRING, length INT64,"
                " created DOUBLE)"
            )
            conn.execute("CREATE NODE TABLE Term(id STRING PRIMARY KEY)")
            # postings point at facts whose bodies live on other agents: a row per fact id
            conn.execute("CREATE NODE TABLE Ref(id STRING PRIMARY KEY)")
            conn.execute("CREATE REL TABLE Posts(FROM Term TO Ref, tf INT64, length INT64)")
            self._keep.append(db)
            self.conns[n] = conn
        self.batch = 0

    def load(self, texts: Sequence[str]) -> None:
        docs: dict[str, list[list[object]]] = {n: [] for n in self.names}
        posts: dict[str, list[list[object]]] = {n: [] for n in self.names}
        new_terms: dict[str, set[str]] = {n: set() for n in self.names}
        owners_of: dict[str, list[str]] = {}
        now = time.time()
        for text in texts:
            content = normalize_content(text)
            fid = fact_id_for(content)
            counts, length = term_counts(content)
            for a in self.ring.owners(fid, REPLICATION):
                docs[a].append([fid, content, length, now])
            for term, tf in counts.items():
                owners = owners_of.get(term)
                if owners is None:
                    owners = owners_of[term] = self.ring.owners(term, REPLICATION)
                for a in owners:
                    posts[a].append([term, fid, tf, length])
                    if term not in self.terms[a]:
                        new_terms[a].add(term)
        self.batch += 1
        for a in self.names:
            conn = self.conns[a]
            base = self.root / f"{a}-{self.batch}"
            if new_terms[a]:
                self._copy(
                    conn, "Term", base.with_suffix(".terms.csv"), [[t] for t in new_terms[a]]
                )
                self.terms[a] |= new_terms[a]
            if docs[a]:
                self._copy(conn, "Doc", base.with_suffix(".docs.csv"), docs[a])
            refs = {row[1] for row in posts[a]}  # the facts are new: so are their refs
            if refs:
                self._copy(conn, "Ref", base.with_suffix(".refs.csv"), [[r] for r in refs])
            if posts[a]:
                self._copy(conn, "Posts", base.with_suffix(".posts.csv"), posts[a])

    @staticmethod
    def _copy(conn: object, table: str, path: Path, rows: list[list[object]]) -> None:
        with open(path, "w", newline="") as fh:
            csv.writer(fh).writerows(rows)
        conn.execute(f"COPY {table} FROM '{path}' (header=false)")  # type: ignore[attr-defined]
        path.unlink()


def _rate(facts: int, seconds: float) -> float:
    return facts / seconds if seconds > 0 else float("inf")


def measure(agents: int, facts: int, preload: int, repeats: int) -> dict[str, float]:
    """facts per CPU-second for ours and the floor, from empty and after the preload."""
    per_store = preload * agents // REPLICATION  # facts in the hive for `preload` per store
    texts = list(filler_facts(per_store + facts * repeats * 2, seed=11))
    timed_empty = [texts[i * facts : (i + 1) * facts] for i in range(repeats)]
    rest = texts[repeats * facts :]
    preload_texts = rest[:per_store]
    timed_full = [rest[per_store + i * facts : per_store + (i + 1) * facts] for i in range(repeats)]
    out: dict[str, float] = {}
    for side in ("floor", "ours"):
        for case, batches in (("empty", timed_empty), ("full", timed_full)):
            rates = []
            for batch in batches:
                root = Path(tempfile.mkdtemp(prefix=f"bench-ingest-{side}-"))
                try:
                    if side == "floor":
                        floor = Floor(root, agents)
                        load = floor.load
                    else:
                        hive = Hive.in_process(
                            agents=agents,
                            replication=REPLICATION,
                            backend="kuzu",
                            path=root,
                            buffer_pool_mb=BUFFER_POOL_MB,
                            max_db_size_mb=MAX_DB_SIZE_MB,
                        )

                        def load(chunk: Sequence[str], hive: Hive = hive) -> None:
                            hive.remember_many(chunk, batch=BATCH)

                    if case == "full":
                        note(f"{side}: preloading {len(preload_texts)} facts into {agents} agents")
                        for i in range(0, len(preload_texts), 5000):
                            load(preload_texts[i : i + 5000])
                    started = _cpu()
                    for i in range(0, len(batch), BATCH if side == "ours" else len(batch)):
                        load(batch[i : i + (BATCH if side == "ours" else len(batch))])
                    rates.append(_rate(len(batch), _cpu() - started))
                    note(f"{side} {case}: {rates[-1]:,.0f} facts/CPU-s")
                    if side == "ours":
                        hive.close()
                finally:
                    shutil.rmtree(root, ignore_errors=True)
            out[f"{side}_{case}"] = statistics.median(rates)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_ingest", description=__doc__)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--facts", type=int, default=5000, help="facts per timed batch")
    parser.add_argument("--preload", type=int, default=50_000, help="facts per store first")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="--facts 2000 --preload 5000")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.facts, args.preload = 2000, 5000
    r = measure(args.agents, args.facts, args.preload, args.repeats)
    rows = []
    for case, label in (
        ("empty", "from empty"),
        ("full", f"into stores holding {args.preload:,} facts"),
    ):
        ours, floor = r[f"ours_{case}"], r[f"floor_{case}"]
        rows.append(
            Row(
                f"ingest facts/CPU-s, {args.agents} agents, {label}",
                f"raw Kuzu COPY: {floor:,.0f}",
                f"{ours:,.0f}",
                f"{ours / floor:.2f}x",
                f">= {FLOOR_SHARE}x",
                ours >= FLOOR_SHARE * floor,
            )
        )
    slowdown = r["ours_empty"] / r["ours_full"]
    rows.append(
        Row(
            "ours: rate from empty / rate into full stores",
            "",
            f"{slowdown:.2f}x",
            "",
            "<= 1.5x",
            slowdown <= 1.5,
        )
    )
    print(
        f"ingest: {args.agents} agents, R={REPLICATION}, {args.facts} facts per timed batch, "
        f"buffer pool {BUFFER_POOL_MB} MB, {args.repeats} repeat(s); CPU seconds of this process"
    )
    print(render(rows))
    return finish(rows, args.strict)


if __name__ == "__main__":
    sys.exit(main())
