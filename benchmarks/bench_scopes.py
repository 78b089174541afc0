"""Scopes: fan-out, latency and recall of an asker in a group, beside one scope.

    python -m benchmarks.bench_scopes [--turns 3000] [--filler 20000] [--quick]

The baseline is the hive as it was before scopes: the benchmark corpus in the hive scope,
recalled by the admin. Beside it, hives of the same 100 agents with 1, 10 and 100 groups:
the corpus is in the scope of group g0 and the asker is agent-0 (a member of g0), so it
sees its own scope (empty), g0 and the hive (empty); other groups' scopes hold filler facts
it must never see. What must hold: every question ranked with the baseline's scores (the
statistics of what the asker sees; recall@10 may differ by ties at the cut, broken by id,
and a scope is part of a fact's id), no hit from a scope it may not see, fan-out flat in
the number of groups and in N (100 beside 400 agents).

Beside the design built (the scope part of each posting list's key), the other one measured:
the scope a filter on the owners' side, every scope's postings of a term in one list. Its
fan-out is that of a hive holding every fact hive-wide; what its owners read per recall is
every scope's postings of the questions' terms, not just the asker's scopes'. Both with the
scopes the asker may not see holding readings (few words in common with the questions) and
conversations like its own. Progress on stderr, table on stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import zlib
from collections.abc import Sequence

from benchmarks.bench_memory import REPLICATION, Row, Run, _ask_all, _x, finish, note, render
from benchmarks.corpus import Corpus, filler_facts, generate

#: fan-out may grow at most this much from 1 to 100 groups, and from N=100 to N=400
FLAT_MAX = 1.25


def run_scoped(
    corpus: Corpus,
    agents: int,
    groups: int | None,
    filler: int,
    repeats: int,
    split: bool = False,
    *,
    filtered: Sequence[str] = (),
) -> tuple[Run, int, list[list[float]]]:
    """One hive: ``groups`` None is the baseline (everything hive-wide, the admin asks).
    ``split``: the corpus spread over the asker's three scopes (hive, its own, g0) instead
    of g0 alone. ``filtered`` (with ``groups`` None): the other design, the scope a filter
    on the owners' side, placed as it would be: every fact's postings under the bare term,
    these facts of scopes the asker may not see with them (its fan-out is this run's; its
    ranking is not measured). Returns the run, the number of hits from scopes the asker
    may not see, and each question's scores (first pass), best first."""
    from amplihack_hive import Hive
    from amplihack_hive.memory.scopes import Access

    names = [f"agent-{i}" for i in range(agents)]
    spec = {} if groups is None else {f"g{j}": names[j::groups] for j in range(groups)}
    label = "one scope" if groups is None else f"{groups} group{'s' if groups > 1 else ''}"
    label += f" + {len(filtered)} others' facts" if filtered else ""
    label += f", N={agents}" + (", split" if split else "")
    with Hive.in_process(agents=agents, replication=REPLICATION, groups=spec) as hive:
        scope = "hive" if groups is None else "group:g0"
        t = time.perf_counter()
        if split:
            # by content, so that a turn said twice is in one scope, one fact, as in the
            # baseline (the same words in two scopes are two facts)
            mine = ("hive", "agent:agent-0", "group:g0")
            parts: dict[str, list[dict[str, object]]] = {where: [] for where in mine}
            for turn in corpus.turns:
                parts[mine[zlib.crc32(turn["content"].encode()) % 3]].append(turn)
            for where, part in parts.items():
                hive.remember_many(part, scope=where)
        else:
            hive.remember_many(corpus.turns, scope=scope)
        run = Run(label, time.perf_counter() - t, len(corpus.turns))
        if filtered:
            hive.remember_many(list(filtered), scope="hive")
        # facts the asker must not see: other groups' (or, with one group, another
        # agent's own); the baseline holds none
        if groups is not None:
            others = [f"group:g{j}" for j in range(1, groups)] or ["agent:agent-1"]
            pool = list(filler_facts(filler, seed=11))
            for j, other in enumerate(others):
                part = pool[j :: len(others)]
                if part:
                    hive.remember_many(part, scope=other)
            hive._coordinator.access = Access.of_agent("agent-0", spec)
        before = hive._coordinator.fanout.recall_agents, hive._coordinator.fanout.recalls
        leaked = [0]
        allowed = set(hive._coordinator.access.visible())
        scores: list[list[float]] = []

        def search(question: str, k: int) -> list[str]:
            hits = hive.recall(question, limit=k)
            leaked[0] += sum(h.scope not in allowed for h in hits)
            if len(scores) < len(corpus.questions):
                # by score: a result's first few are ordered by what they cover
                # (restate.covering_first), and which of two tied facts gets among them
                # goes by id, which differs with the scope
                scores.append(sorted((round(h.score, 9) for h in hits), reverse=True))
            return [h.content for h in hits]

        _ask_all(label, search, corpus.questions, repeats, run)
        agents_asked = hive._coordinator.fanout.recall_agents - before[0]
        run.fanout_recall = agents_asked / (hive._coordinator.fanout.recalls - before[1])
    return run, leaked[0], scores


def postings_read(corpus: Corpus, others: Sequence[str]) -> tuple[int, int]:
    """Postings of the questions' terms, summed over the questions: among the facts the
    asker sees (what the owners read with the scope in the key: the lists of its scopes),
    and among every scope's (what they read with the scope a filter on their side: the
    term's one list, to keep the asker's postings and its scopes' document frequencies)."""
    from amplihack_hive.memory.text import term_counts

    def df(texts: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for text in texts:
            for term in term_counts(text)[0]:
                out[term] = out.get(term, 0) + 1
        return out

    seen = df([f"{t['content']} {t.get('context') or ''}" for t in corpus.turns])
    hidden = df(others)
    mine = every = 0
    for q in corpus.questions:
        for term in term_counts(q.question)[0]:
            mine += seen.get(term, 0)
            every += seen.get(term, 0) + hidden.get(term, 0)
    return mine, every


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_scopes", description=__doc__)
    parser.add_argument("--turns", type=int, default=None, help="corpus size (default 3000)")
    parser.add_argument("--filler", type=int, default=None, help="invisible facts (20000)")
    parser.add_argument("--quick", action="store_true", help="1000 turns, 5000 filler facts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=None, help="latency passes (default 3)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    turns = args.turns or (1000 if args.quick else 3000)
    filler = args.filler if args.filler is not None else (5000 if args.quick else 20_000)
    repeats = args.repeats or (1 if args.quick else 3)
    corpus = generate(turns, args.seed)
    note(f"corpus: {corpus.counts}")

    base, _, base_scores = run_scoped(corpus, 100, None, filler, repeats)
    runs: dict[tuple[int, int, bool], tuple[Run, int, list[list[float]]]] = {}
    for groups in (1, 10, 100):
        runs[(groups, 100, False)] = run_scoped(corpus, 100, groups, filler, repeats)
    runs[(100, 400, False)] = run_scoped(corpus, 400, 100, filler, 1)
    runs[(10, 100, True)] = run_scoped(corpus, 100, 10, filler, repeats, split=True)
    # the other design, with the scopes the asker may not see holding the filler (sensor
    # readings, few words in common with the questions) or conversations like its own
    others = {
        "readings": list(filler_facts(filler, seed=11)),
        "conversations": [t["content"] for t in generate(filler, args.seed + 1).turns],
    }
    filtered = {
        kind: (
            run_scoped(corpus, 100, None, filler, 1, filtered=texts)[0],
            *postings_read(corpus, texts),
        )
        for kind, texts in others.items()
    }

    questions = corpus.questions
    rows: list[Row] = []
    for (groups, n, split), (run, leaked, scores) in runs.items():
        label = f"{groups} group{'s' if groups > 1 else ''}, N={n}"
        if split:
            label += ", facts in 3 scopes"
        same = sum(a == b for a, b in zip(scores, base_scores, strict=True))
        rows.append(
            Row(
                f"{label}: questions ranked with one scope's scores",
                str(len(questions)),
                str(same),
                "",
                "all",
                same == len(questions),
            )
        )
        rows.append(
            Row(
                f"{label}: recall@10 (asker in g0)",
                f"{base.recall(10, questions):.3f}",
                f"{run.recall(10, questions):.3f}",
                f"{run.recall(10, questions) - base.recall(10, questions):+.3f}",
                "",
                None,
            )
        )
        rows.append(
            Row(
                f"{label}: hits from scopes it may not see",
                "0",
                str(leaked),
                "",
                "0",
                leaked == 0,
            )
        )
        rows.append(
            Row(
                f"{label}: fan-out (agents per recall)",
                f"{base.fanout_recall:.2f}",
                f"{run.fanout_recall:.2f}",
                _x(run.fanout_recall, base.fanout_recall),
                "",
                None,
            )
        )
        if n == 100:
            rows.append(
                Row(
                    f"{label}: recall p50 / p99 ms",
                    f"{base.latency_ms(50):.2f} / {base.latency_ms(99):.2f}",
                    f"{run.latency_ms(50):.2f} / {run.latency_ms(99):.2f}",
                    _x(run.latency_ms(50), base.latency_ms(50)),
                    "",
                    None,
                )
            )
    one, hundred = runs[(1, 100, False)][0], runs[(100, 100, False)][0]
    wide = runs[(100, 400, False)][0]
    rows.append(
        Row(
            "fan-out, 100 groups / 1 group (N=100)",
            f"{one.fanout_recall:.2f}",
            f"{hundred.fanout_recall:.2f}",
            _x(hundred.fanout_recall, one.fanout_recall),
            f"<= {FLAT_MAX}x",
            hundred.fanout_recall <= FLAT_MAX * one.fanout_recall,
        )
    )
    rows.append(
        Row(
            "fan-out, N=400 / N=100 (100 groups)",
            f"{hundred.fanout_recall:.2f}",
            f"{wide.fanout_recall:.2f}",
            _x(wide.fanout_recall, hundred.fanout_recall),
            f"<= {FLAT_MAX}x",
            wide.fanout_recall <= FLAT_MAX * hundred.fanout_recall,
        )
    )
    # the other design: the scope a filter on the owners' side (why the key, in the note)
    split = runs[(10, 100, True)][0]
    for kind, (run, mine, every) in filtered.items():
        rows.append(
            Row(
                f"others hold {kind}: fan-out, scope in the key / filter on owners",
                f"{split.fanout_recall:.2f}",
                f"{run.fanout_recall:.2f}",
                _x(run.fanout_recall, split.fanout_recall),
                "",
                None,
            )
        )
        rows.append(
            Row(
                f"others hold {kind}: postings read, scope in the key / filter",
                str(mine),
                str(every),
                _x(every, mine),
                "",
                None,
            )
        )
    print(
        f"scopes benchmark: {len(corpus.turns)} turns in the asker's scope, {filler} facts in "
        f"scopes it may not see, {len(questions)} questions, seed {args.seed}; backend memory, "
        f"R={REPLICATION}; latency = median of {repeats} pass(es) per question; "
        f"{os.cpu_count()} cpus, Python {platform.python_version()}"
    )
    print(render(rows))
    return finish(rows, args.strict)


if __name__ == "__main__":
    sys.exit(main())
