"""bench_semantic's paraphrase corpus, and one quick run of the benchmark with the real model."""

from __future__ import annotations

import importlib.util
import os

import pytest

from benchmarks.bench_semantic import TITLES, main, officers
from benchmarks.bm25_baseline import contains_all


def test_each_officer_question_is_answered_by_exactly_one_fact_in_other_words() -> None:
    facts, questions = officers(7)
    assert (facts, questions) == officers(7)
    assert len(questions) == 18 * len(TITLES)
    texts = [str(f["content"]) for f in facts]
    for q in questions:
        answering = [t for t in texts if contains_all(t, q.keywords)]
        assert len(answering) == 1, (q, answering)
        # the question does not name the title the fact uses
        title = next(t for t in TITLES if t in answering[0])
        assert title not in q.question.lower()


@pytest.mark.slow
def test_the_benchmark_runs_and_prints_its_tables(capsys: pytest.CaptureFixture[str]) -> None:
    if importlib.util.find_spec("sentence_transformers") is None:
        if os.environ.get("AMPLIHACK_REQUIRE_SEMANTIC") == "1":
            pytest.fail("AMPLIHACK_REQUIRE_SEMANTIC=1 but the semantic extra is not installed")
        pytest.skip("the semantic extra is not installed: pip install '.[semantic]'")
    assert main(["--turns", "300", "--no-conversation"]) == 0
    out = capsys.readouterr().out
    assert "| lexical (1 agent)" in out and "| fused: weighted 0.4" in out
    assert "paraphrase: fused - lexical" in out
    # the hive's own recall ran, with 1, 100 and 400 agents
    assert "| hive fused, 100 agents" in out and "fan-out N=400 / N=100" in out
    assert "not run" not in out
