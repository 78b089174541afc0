"""Recall CPU at scale beside SQLite FTS5 on the same corpus and questions.

    python -m benchmarks.bench_recall [--agents 100] [--facts 100000] [--strict]

The corpus is ``corpus.generate`` (its questions, with their answering facts, twins and
mentions) topped up with ``corpus.filler_facts`` to ``--facts`` items. The hive is
``Hive.in_process(backend="memory")`` (the ranking path: coordinator, in-process transport
with JSON both ways, nodes; the memory backend only to load 100k facts quickly). FTS5 is
stdlib ``sqlite3`` with ``bm25()``, queried with the OR of the question's terms (our
tokenizer), top 10. Figures: CPU milliseconds per question (``time.process_time``), p50
and p99 over all questions; recall@10 (a hit holding every keyword); and one question of
the 8 most frequent terms of the corpus: CPU and bytes moved between agents.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from amplihack_hive import Hive
from amplihack_hive.memory.text import tokenize
from amplihack_hive.transport.inprocess import InProcessTransport
from benchmarks.bench_memory import Row, finish, note, render
from benchmarks.bm25_baseline import found, fts5
from benchmarks.corpus import filler_facts, generate

TARGET_P50_X = 5.0
TARGET_P99_MS = 100.0
TARGET_COMMON_MS = 50.0
TARGET_COMMON_KB = 200.0


def _cpu_ms(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.process_time()
    out = fn()
    return out, (time.process_time() - started) * 1000


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_recall", description=__doc__)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--facts", type=int, default=100_000)
    parser.add_argument("--turns", type=int, default=5000, help="corpus.generate turns")
    parser.add_argument(
        "--tokenizer", type=int, choices=(1, 2), default=2, help="the hive's (memory/text.py)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    corpus = generate(args.turns, seed=7)
    contents = list(dict.fromkeys(t["content"] for t in corpus.turns))
    fill = args.facts - len(contents)
    contents += list(filler_facts(max(0, fill), seed=3))
    questions = corpus.questions
    df: Counter[str] = Counter()
    for c in contents:
        df.update(set(tokenize(c, args.tokenizer)))
    common = " ".join(t for t, _ in df.most_common(8))
    note(f"{len(contents)} facts, {len(questions)} questions; common question: {common!r}")

    search = fts5(contents)
    fts_ms, fts_found = [], []
    for q in questions:
        hits, ms = _cpu_ms(lambda q=q: search(q.question, 10))
        fts_ms.append(ms)
        fts_found.append(found(hits, q.keywords))
    _, fts_common_ms = _cpu_ms(lambda: search(common, 10))
    note(f"FTS5: p50 {_p(fts_ms, 50):.2f} ms")

    with Hive.in_process(agents=args.agents, backend="memory", tokenizer=args.tokenizer) as hive:
        items: list[Any] = [
            {k: v for k, v in t.items() if k != "id"} for t in corpus.turns
        ] + contents[len(dict.fromkeys(t["content"] for t in corpus.turns)) :]
        t0 = time.perf_counter()
        hive.remember_many(items, batch=2000)
        note(f"hive: {len(items)} items remembered in {time.perf_counter() - t0:.0f} s")
        transport = hive._transport
        assert isinstance(transport, InProcessTransport)
        for q in questions[:20]:  # warm the owners' caches, as a running hive has them
            hive.recall(q.question, 10)
        ours_ms, ours_found = [], []
        for q in questions:
            hits, ms = _cpu_ms(lambda q=q: hive.recall(q.question, 10))
            ours_ms.append(ms)
            ours_found.append(found([h.content for h in hits], q.keywords))
        hive.recall(common, 10)  # warm
        before = transport.bytes_sent
        _, common_ms = _cpu_ms(lambda: hive.recall(common, 10))
        common_kb = (transport.bytes_sent - before) / 1000
    note(f"hive: p50 {_p(ours_ms, 50):.2f} ms")

    p50, p99 = _p(ours_ms, 50), _p(ours_ms, 99)
    f_p50, f_p99 = _p(fts_ms, 50), _p(fts_ms, 99)
    r_ours = sum(ours_found) / len(ours_found)
    r_fts = sum(fts_found) / len(fts_found)
    rows = [
        Row(
            f"recall CPU ms p50, {args.agents} agents, {len(contents):,} facts",
            f"FTS5: {f_p50:.2f}",
            f"{p50:.2f}",
            f"{p50 / f_p50:.1f}x",
            f"<= {TARGET_P50_X:.0f}x",
            p50 <= TARGET_P50_X * f_p50,
        ),
        Row(
            "recall CPU ms p99",
            f"FTS5: {f_p99:.2f}",
            f"{p99:.2f}",
            f"{p99 / f_p99:.1f}x",
            f"<= {TARGET_P99_MS:.0f} ms",
            p99 <= TARGET_P99_MS,
        ),
        Row(
            "8-common-term question, CPU ms",
            f"FTS5: {fts_common_ms:.2f}",
            f"{common_ms:.1f}",
            f"{common_ms / max(fts_common_ms, 1e-3):.1f}x",
            f"<= {TARGET_COMMON_MS:.0f} ms",
            common_ms <= TARGET_COMMON_MS,
        ),
        Row(
            "8-common-term question, kB moved between agents",
            "",
            f"{common_kb:,.0f}",
            "",
            f"<= {TARGET_COMMON_KB:.0f} kB",
            common_kb <= TARGET_COMMON_KB,
        ),
        Row(
            f"recall@10 ({len(questions)} questions)",
            f"FTS5: {r_fts:.3f}",
            f"{r_ours:.3f}",
            f"{(r_ours - r_fts) * 100:+.1f} pp",
            "",
            None,
        ),
    ]
    print(
        f"recall: {args.agents} agents in process (memory backend, JSON transport, tokenizer "
        f"{args.tokenizer}), {len(contents):,} facts, {len(questions)} questions; CPU ms per "
        "question; FTS5 with its porter stemmer"
    )
    print(render(rows))
    return finish(rows, args.strict)


if __name__ == "__main__":
    sys.exit(main())
