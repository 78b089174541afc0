"""The synthetic conversation of bench_conversation: deterministic, and every category keeps
its promise about its evidence turns (checked on the text, never through a retriever)."""

from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pytest

# benchmarks/ is a top-level folder next to the package, not part of the installed wheel
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from amplihack_hive.hive.learn_input import chat_items
from amplihack_hive.memory.text import tokenize
from benchmarks.conversation import CATEGORIES, Conversation, Question, Turn, generate

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def stems(text: str) -> set[str]:
    return set(tokenize(text, 2))


@pytest.fixture(scope="module", params=[1, 7])
def conv(request: pytest.FixtureRequest) -> Conversation:
    return generate(60, 6, seed=request.param)


def by_content(c: Conversation) -> dict[str, Turn]:
    return {t.content: t for t in c.turns}


def of(c: Conversation, category: str) -> list[Question]:
    return [q for q in c.questions if q.category == category]


def test_same_seed_same_conversation_other_seed_other() -> None:
    a, b, other = generate(30, 3, seed=5), generate(30, 3, seed=5), generate(30, 3, seed=6)
    assert a.turns == b.turns
    assert a.questions == b.questions
    assert a.jsonl() == b.jsonl()
    assert [t.content for t in a.turns] != [t.content for t in other.turns]


def test_sessions_are_dated_conversations_between_two_to_four_speakers(conv: Conversation) -> None:
    sessions: dict[str, list[Turn]] = defaultdict(list)
    for t in conv.turns:
        sessions[t.session].append(t)
    assert len(sessions) == 60
    times = [datetime.fromisoformat(t.time) for t in conv.turns]
    assert times == sorted(times) and len(set(times)) == len(times)
    for name, turns in sessions.items():
        assert len(turns) >= 8
        assert 2 <= len({t.speaker for t in turns}) <= 4
        assert name.endswith(turns[0].time[:10]), "the session's name carries its date"
    filler = Counter(t.text for t in conv.turns)
    assert filler.most_common(1)[0][1] > 5, "chit-chat repeats"


def test_every_category_has_its_questions_and_unique_evidence(conv: Conversation) -> None:
    assert Counter(q.category for q in conv.questions) == dict.fromkeys(CATEGORIES, 6)
    counts = Counter(t.content for t in conv.turns)
    for q in conv.questions:
        assert q.key_terms and all(k == k.lower() for k in q.key_terms)
        assert len(q.evidence) == (2 if q.category in ("multi", "changed") else 1)
        for e in q.evidence:
            assert counts[e] == 1, (q, e)


def test_single_states_the_fact_in_the_questions_words(conv: Conversation) -> None:
    for q in of(conv, "single"):
        (e,) = q.evidence
        assert set(q.key_terms) <= words(e) and set(q.key_terms) <= words(q.question), q


def test_reply_evidence_lacks_the_key_terms_its_previous_turn_has_them(
    conv: Conversation,
) -> None:
    index = {t.content: i for i, t in enumerate(conv.turns)}
    for q in of(conv, "reply"):
        (e,) = q.evidence
        i = index[e]
        reply, ask = conv.turns[i], conv.turns[i - 1]
        assert ask.session == reply.session and ask.speaker != reply.speaker
        keys = set(q.key_terms)
        assert keys <= words(q.question)
        assert keys <= words(ask.text), (q, ask)
        assert not keys & words(reply.text), (q, reply)
        for version in (1, 2):
            key_tokens = {t for k in keys for t in tokenize(k, version)}
            assert not key_tokens & set(tokenize(reply.text, version)), (q, reply)
        assert ask.text.endswith("?") and q.question != ask.text, "asked in other words"


def test_inflected_evidence_shares_stems_not_surface_forms(conv: Conversation) -> None:
    contents = [t.content for t in conv.turns]
    for q in of(conv, "inflected"):
        (e,) = q.evidence
        (project,) = q.projects
        assert project.lower() in words(e) and project.lower() in words(q.question)
        for k in q.key_terms:
            assert k in words(q.question)
            assert k not in words(e), (q, k)
            (stem,) = tokenize(k, 2)
            assert stem in stems(e), (q, k, stem)
        # distractors: the question's own forms elsewhere, and the project without them
        others = [c for c in contents if c != e]
        noun = q.key_terms[1]
        assert any(noun in words(c) for c in others), q
        assert any(project.lower() in words(c) for c in others), q


def test_the_stemmer_and_only_it_joins_the_verb_forms(conv: Conversation) -> None:
    """Tokenizer 1 folds plurals only: the question's verb ("coordinates") stays apart from
    the evidence's ("coordinating"), which tokenizer 2 joins."""
    for q in of(conv, "inflected"):
        verb = q.key_terms[0]
        assert not set(tokenize(verb, 1)) & set(tokenize(q.evidence[0], 1)), q


def test_multi_needs_two_turns_of_two_sessions(conv: Conversation) -> None:
    turns = by_content(conv)
    for q in of(conv, "multi"):
        first, second = (turns[e] for e in q.evidence)
        assert first.session != second.session
        for e in q.evidence:
            assert words(e) & {p.lower() for p in q.projects}
        assert set(q.key_terms) <= words(q.question)
        assert set(q.key_terms) <= words(first.text) | words(second.text)


def test_changed_states_a_value_then_another_in_a_later_session(conv: Conversation) -> None:
    turns = by_content(conv)
    for q in of(conv, "changed"):
        old, new = (turns[e] for e in q.evidence)
        assert old.session != new.session
        assert datetime.fromisoformat(old.time) < datetime.fromisoformat(new.time)
        assert set(q.key_terms) <= words(old.text) and set(q.key_terms) <= words(new.text)
        assert words(new.text) - words(old.text), "a new value"


def test_every_question_has_distractors_in_other_sessions(conv: Conversation) -> None:
    turns = by_content(conv)
    for q in conv.questions:
        sessions = {turns[e].session for e in q.evidence}
        elsewhere = [t for t in conv.turns if t.session not in sessions]
        projects = {p.lower() for p in q.projects}
        rest = set(q.key_terms) - projects
        assert any(projects & words(t.text) for t in elsewhere), q
        assert any(rest & words(t.text) for t in elsewhere), q


def test_chat_input_gives_every_evidence_turn_its_neighbours_and_time(conv: Conversation) -> None:
    items, problems = chat_items(conv.jsonl())
    assert not problems
    assert len(items) == len(conv.turns)
    learnt = {i.content: i for i in items}
    for q in conv.questions:
        for e in q.evidence:
            item = learnt[e]
            assert item.extra["created"] == datetime.fromisoformat(turns_time(conv, e)).timestamp()
            assert item.extra["context"]
    for q in of(conv, "reply"):
        index = [t.content for t in conv.turns].index(q.evidence[0])
        assert conv.turns[index - 1].content in learnt[q.evidence[0]].extra["context"]


def turns_time(c: Conversation, content: str) -> str:
    return by_content(c)[content].time


def test_the_smallest_benchmark_run_prints_its_tables(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import bench_conversation

    code = bench_conversation.main(["--sessions", "20", "--questions", "2", "--agents", "4"])
    out = capsys.readouterr().out
    assert code == 0
    assert "| system" in out and "| figure" in out
    for key in "abcdef":
        assert f"| ({key}) " in out
    assert "within 1 pp of (e)" in out
    assert "(recall@5 / @10)" in out and "ask: answers with a sentence not in the fact" in out
    assert "ask exact by category, (e):" in out
    with pytest.raises(ValueError):
        generate(12, 40)
