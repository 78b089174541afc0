"""The benchmark corpus and its BM25 baseline: deterministic, answerable, and honest."""

from __future__ import annotations

import itertools
import sys
from collections import defaultdict
from pathlib import Path

import pytest

# benchmarks/ is a top-level folder next to the package, not part of the installed wheel
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bm25_baseline import BM25, contains_all, found, recall_at_k, tokenize
from benchmarks.corpus import Corpus, filler_facts, generate


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return generate(2000, seed=11)


def test_same_seed_same_corpus_other_seed_other_corpus() -> None:
    a, b, c = generate(600, seed=3), generate(600, seed=3), generate(600, seed=4)
    assert a.turns == b.turns
    assert a.questions == b.questions
    assert [t["content"] for t in a.turns] != [t["content"] for t in c.turns]


def test_turn_count_and_time_order(corpus: Corpus) -> None:
    assert len(corpus.turns) == 2000
    created = [t["created"] for t in corpus.turns]
    assert all(x < y for x, y in itertools.pairwise(created))
    assert all(isinstance(t["content"], str) and t["content"].strip() for t in corpus.turns)


def test_corpus_has_every_ingredient(corpus: Corpus) -> None:
    contents = [t["content"] for t in corpus.turns]
    assert {q.category for q in corpus.questions} == {
        "identifier",
        "person",
        "number",
        "changed",
        "multiword",
    }
    assert len(corpus.questions) >= 100
    assert len(set(contents)) < len(contents), "filler repeats"
    assert any("PRJ-" in c for c in contents)
    assert any("ok sounds good" in c for c in contents)
    # mentions: a subject's words without its value
    assert any(c.endswith("I want to plan something.") for c in contents)


def test_every_question_is_answerable_by_its_answer_turn(corpus: Corpus) -> None:
    contents = {t["content"] for t in corpus.turns}
    for q in corpus.questions:
        assert q.keywords and all(k == k.lower() for k in q.keywords)
        assert q.answer in contents
        assert contains_all(q.answer, q.keywords), q


@pytest.mark.parametrize("seed", [2, 7, 11])
def test_only_the_answering_turn_contains_every_keyword(seed: int) -> None:
    """No twin, mention or outdated statement contains every keyword: found means answered."""
    corpus = generate(1500, seed=seed)
    contents = {t["content"] for t in corpus.turns}
    for q in corpus.questions:
        matching = {c for c in contents if contains_all(c, q.keywords)}
        assert matching == {q.answer}, (q, matching)


def test_changed_facts_ask_for_the_newest_value(corpus: Corpus) -> None:
    statements: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for t in corpus.turns:
        if "subject" in t:
            statements[t["subject"]].append((t["created"], t["content"]))
    changed = [q for q in corpus.questions if q.category == "changed"]
    assert len(changed) >= 10
    for q in changed:
        history = sorted(statements[q.subject])
        assert len(history) >= 2
        assert history[-1][1] == q.answer
        for _, older in history[:-1]:
            assert not contains_all(older, q.keywords), (q, older)
    for q in corpus.questions:
        if q.category != "changed":
            assert len(statements[q.subject]) == 1


def test_filler_facts_are_unique_and_deterministic() -> None:
    a = list(filler_facts(5000, seed=1))
    assert len(a) == len(set(a)) == 5000
    assert a == list(filler_facts(5000, seed=1))


def test_bm25_finds_an_exact_match_and_ranks_it_first() -> None:
    docs = [
        "The budget of PRJ-4471 is 482000 dollars.",
        "The budget of PRJ-4417 is 120000 dollars.",
        "The deadline for PRJ-4471 is 2026-03-14.",
        "ok sounds good",
        "ok sounds good",
    ]
    index = BM25.build(docs)
    assert len(index) == 4, "duplicates are one document"
    hits = index.search("What is the budget of PRJ-4471?", limit=10)
    assert hits[0].content == docs[0]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert index.search("nothing matches zebra", limit=10) == []
    assert tokenize("PRJ-4471's v4.2.17") == ["prj", "4471", "s", "v4", "2", "17"]


def test_bm25_matches_the_formula_on_a_tiny_corpus() -> None:
    import math

    docs = ["a b", "a c c", "d"]
    index = BM25.build(docs, k1=1.2, b=0.75)
    avg = (2 + 3 + 1) / 3
    idf_c = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))
    expected = idf_c * 2 * 2.2 / (2 + 1.2 * (1 - 0.75 + 0.75 * 3 / avg))
    (hit,) = index.search("c", limit=10)
    assert hit.content == "a c c"
    assert hit.score == pytest.approx(expected)


def test_recall_at_k_counts_a_question_when_a_top_k_hit_has_every_keyword(
    corpus: Corpus,
) -> None:
    index = BM25.build(t["content"] for t in corpus.turns)
    assert recall_at_k(lambda q, k: [], corpus.questions, 10) == 0.0
    r10 = recall_at_k(index.search, corpus.questions, 10)
    r1 = recall_at_k(index.search, corpus.questions, 1)
    assert 0.8 <= r10 <= 1.0
    assert r1 < r10, "the corpus has distractors that beat the answer at rank 1"
    assert found(["x", "The Budget of PRJ-1 is 5"], ["prj-1", "5"])
    assert not found(["The budget of PRJ-1"], ["prj-1", "5"])
