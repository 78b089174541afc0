"""The extractive answerer never answers by montage: each sentence it gives comes from the
fact it cites, a second fact only as a sentence of its own, and "I don't know" when no
sentence covers the question."""

from __future__ import annotations

import dataclasses
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from amplihack_hive import Hive
from amplihack_hive.agent.answer import (
    NO_ANSWER,
    NOT_COVERED,
    extractive_answer,
    question_terms,
)
from amplihack_hive.memory.hits import Hit
from amplihack_hive.memory.records import fact_id_for

COMPANY = [
    "Project Sparrow is the fleet-management dashboard. Priya Raman runs it.",
    "The forklift project is called Heron. It can lift 1,400 kilograms and runs for nine "
    "hours on one charge.",
    "The forklift project has 80,000 euros left. Its lead is Tomas Varga.",
    "The cafeteria opens at eight. It closes at three on Fridays.",
    "Owls hunt at night.",
    "Deer graze at dawn. Owls sleep in the day.",
]
#: "<sentence(s)> [<8 hex>, <date>]", one part per cited fact
CITED = re.compile(r"(.+?) \[([0-9a-f]{8})(?:, \d{4}-\d\d-\d\d)?\](?: |$)", re.DOTALL)


def parts(answer: str) -> list[tuple[str, str]]:
    assert CITED.sub("", answer) == "", answer  # nothing outside a cited part
    return [(text, short) for text, short in CITED.findall(answer)]


def ask(question: str) -> tuple[str, list[str]]:
    with Hive.in_process(3) as hive:
        hive.remember_many(COMPANY)
        answer = hive.ask(question)
    return answer.answer, [s.content for s in answer.sources]


def test_the_answer_is_one_facts_sentence_never_another_facts() -> None:
    text, sources = ask("Who runs the fleet dashboard?")
    assert sources == [COMPANY[0]]
    assert [t for t, _ in parts(text)] == [COMPANY[0]]  # both its sentences, nothing else
    assert "forklift" not in text and "kilograms" not in text


def test_the_sentence_that_covers_the_question_is_the_one_given() -> None:
    text, sources = ask("How much money does the forklift project have now?")
    assert sources == [COMPANY[2]]
    assert [t for t, _ in parts(text)] == ["The forklift project has 80,000 euros left."]


def test_a_second_fact_only_as_a_sentence_of_its_own() -> None:
    text, sources = ask("When do owls hunt and deer graze?")
    assert set(sources) == {COMPANY[4], COMPANY[5]}
    cited = parts(text)
    assert len(cited) == 2
    by_short = {fact_id_for(content)[:8]: content for content in COMPANY}
    for sentence, short in cited:
        assert sentence in by_short[short]


def test_i_dont_know_with_the_closest_facts_when_nothing_covers_the_question() -> None:
    text, sources = ask("What is the lead of the marketing projects?")
    assert text == NOT_COVERED
    assert sources and all("project" in s.lower() for s in sources)
    nothing, none = ask("zzyzx quux")
    assert (nothing, none) == (NO_ANSWER, [])


def test_facts_sharing_no_term_with_the_question_are_never_sources() -> None:
    hits = [
        Hit("a" * 32, "Owls hunt at night.", 2.0, "semantic", 1.0),
        Hit("b" * 32, "The cafeteria opens at eight.", 0.0, "semantic", 1.0),
    ]
    answer = extractive_answer("When do owls hunt?", hits)
    assert [s.id for s in answer.sources] == ["a" * 32]
    assert answer.answer.startswith("Owls hunt at night. [aaaaaaaa")


VOCABULARY = "owl deer fox hunt graze sleep night dawn day river hill budget project lead"
words = st.sampled_from(VOCABULARY.split(" "))
sentences = st.lists(words, min_size=2, max_size=6).map(lambda ws: " ".join(ws).capitalize() + ".")
# sentences as a paragraph has them: a space, two, or a line break between them
facts = st.builds(
    lambda parts, gap: gap.join(parts),
    st.lists(sentences, min_size=1, max_size=3),
    st.sampled_from([" ", "  ", "\n"]),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(facts, min_size=1, max_size=8, unique=True), st.lists(words, min_size=1, max_size=4)
)
def test_every_sentence_of_an_answer_is_in_the_fact_it_cites(
    contents: list[str], question: list[str]
) -> None:
    with Hive.in_process(2) as hive:
        ids = hive.remember_many(contents)
        answer = hive.ask(" ".join(question) + "?")
    by_short = {fid[:8]: content for fid, content in zip(ids, contents, strict=True)}
    if answer.answer in (NO_ANSWER, NOT_COVERED):
        return
    cited = parts(answer.answer)
    assert 1 <= len(cited) <= 2
    assert len({short for _, short in cited}) == len(cited)  # two facts, never one twice
    for sentence, short in cited:
        assert sentence in by_short[short]
    assert [s.id[:8] for s in answer.sources] == [short for _, short in cited]


def test_the_measure_word_of_a_how_question_need_not_be_covered() -> None:
    text, sources = ask("How much money does the forklift have?")
    assert sources == [COMPANY[2]] and text.startswith("The forklift project has 80,000 euros")


def test_the_sentence_covering_most_terms_wins_over_a_better_ranked_fact() -> None:
    """Coverage decides, not rank: the second-ranked fact holds the sentence that covers
    the question; the first shares one term only."""
    hits = [
        Hit("a" * 32, "The forklift can lift 1,400 kilograms.", 3.0, "semantic", 1.0),
        Hit(
            "b" * 32,
            "Its lead is Tomas. The forklift budget is 80,000 euros.",
            1.0,
            "semantic",
            1.0,
        ),
    ]
    answer = extractive_answer("What is the forklift budget?", hits)
    assert answer.answer.startswith("The forklift budget is 80,000 euros. [bbbbbbbb")
    assert [s.id for s in answer.sources] == ["b" * 32]


def test_only_a_measure_word_after_how_is_set_aside() -> None:
    hits = [Hit("t" * 32, "Tomas commutes by bike.", 1.0, "semantic", 1.0)]
    answer = extractive_answer("Do you know how Priya commutes?", hits)
    assert answer.answer == NOT_COVERED  # "Priya" is still asked about
    assert question_terms("How much money does the forklift have?") == {"money", "forklift"}


def test_a_turn_found_through_its_context_is_quoted_whole_never_one_empty_sentence() -> None:
    asked = Hit("b" * 32, "Ana: What is the Heron budget?", 2.0, "episodic", 1.0)
    reply = Hit(
        "a" * 32,
        "Ben: Hi Aisha. It went up to 1.5 M last week.",
        1.0,
        "episodic",
        1.0,
        context="Ana: What is the Heron budget?",
    )
    answer = extractive_answer("What is the budget of Heron?", [asked, reply])
    # the question is no answer; the reply is, through its context, and quoted whole
    assert answer.answer.startswith("Ben: Hi Aisha. It went up to 1.5 M last week. [aaaaaaaa")
    assert [s.id for s in answer.sources] == [reply.id]
    # a sentence that covers the question itself comes before a turn found through context
    stated = Hit("c" * 32, "The Heron budget is 2 M.", 0.5, "semantic", 1.0)
    answer = extractive_answer("What is the budget of Heron?", [asked, reply, stated])
    assert answer.answer.startswith("The Heron budget is 2 M. [cccccccc")


def test_a_fact_that_covers_the_question_in_two_sentences_beats_one_found_by_its_context() -> None:
    budget = Hit(
        "a" * 32,
        "Project PRJ-4471 migrates billing. Its budget is 240,000 dollars.",
        4.9,
        "semantic",
        1.0,
    )
    next_one = Hit(
        "b" * 32,
        "Marcus is on call this week. Page him through the ops channel.",
        3.5,
        "semantic",
        1.0,
        context=budget.content,
    )
    answer = extractive_answer("What is the budget of PRJ-4471?", [budget, next_one])
    assert answer.answer.startswith(budget.content + " [aaaaaaaa")
    assert [s.id for s in answer.sources] == [budget.id]


def _turn(n: int, content: str, context: str = "") -> Hit:
    return Hit(f"{n:x}" * 32, content, 10.0 - n, "chat", 1.0, None, {"speaker": "x"}, None, context)


def test_a_reply_answers_through_the_question_beside_it_not_through_any_neighbour() -> None:
    """A conversation's turn carries its neighbouring turns as context. "We're at 28
    engineers." answers "What's the Otter headcount?" asked just before it; "The Otter room
    is Opal." beside "The Puffin headcount is 14 engineers." is no answer about Otter's
    headcount, though its context holds "headcount". The reply is found among the first
    ten, not only the first five."""
    question = "What is the headcount of Otter?"
    tom = _turn(1, "Tom: The Otter standup room is Opal.", "Diego: The Puffin headcount is 14.")
    reply = _turn(7, "Astrid: We're at 28 engineers.", "Priya: What's the Otter headcount?")
    others = [_turn(n, f"Kim: the Otter retro {n} is on Friday.") for n in range(2, 7)]
    answer = extractive_answer(question, [tom, *others, reply])
    assert [s.content for s in answer.sources] == [reply.content]
    assert [t for t, _ in parts(answer.answer)] == [reply.content]
    # a document's context (a heading, the paragraph before) counts whole, as before
    doc = dataclasses.replace(tom, metadata={})
    assert extractive_answer(question, [doc, *others, reply]).sources == [doc]
