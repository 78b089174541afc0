"""Extractive answers: one sentence of one recalled fact, quoted with its fact's id and time.

This is the answerer that always works (no model, no key). It never stitches sentences of
different facts into one answer (two facts read as one can say what neither says): the
answer is the sentence, of the best ten facts, that covers the most of the question's
terms (a better-ranked fact wins a tie), cited as ``[id, date]``; a short turn whose own
sentences cover nothing may answer whole through the question asked just before it (its
context: a conversation's turn counts only the turns around it that ask something). A
second fact is added only as a sentence of its own, with its own citation, when it covers
question terms the first does not. When no sentence covers at least half of the question's
terms, or none covers any of the names it asks about ("Priya", "PRJ-4471"), the answer is
"I don't know", with the closest facts as its sources. Sources are only facts that share a
term with the question.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from amplihack_hive.memory.hits import Hit
from amplihack_hive.memory.restate import recorded_speaker
from amplihack_hive.memory.text import tokenize

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _sentence_bounds(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text``, without the spaces around it."""
    out: list[tuple[int, int]] = []
    start = 0
    for gap in [*_SENTENCE.finditer(text), None]:
        end = gap.start() if gap is not None else len(text)
        a, b = start, end
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
        if gap is not None:
            start = gap.end()
    return out


NO_ANSWER = "I don't know: nothing the hive remembers matches the question."


@dataclass(frozen=True)
class Answer:
    question: str
    answer: str
    sources: list[Hit] = field(default_factory=list)
    complete: bool = True
    unreachable: tuple[str, ...] = ()
    answerer: str = "extractive"

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "sources": [h.to_dict() for h in self.sources],
            "complete": self.complete,
            "unreachable": list(self.unreachable),
            "answerer": self.answerer,
        }


#: The answer when no fact covers the question; the closest facts follow as sources.
NOT_COVERED = "I don't know: no fact the hive remembers covers the question."


def cite(hit: Hit) -> str:
    """How an answer names the fact a sentence comes from: its id (short) and date."""
    when = ""
    if hit.created > 0:
        try:
            when = ", " + time.strftime("%Y-%m-%d", time.gmtime(hit.created))
        except (OverflowError, OSError, ValueError):
            when = ""  # a time no calendar holds (stored before times were checked)
    return f"[{hit.id[:8]}{when}]"


#: One cited part of an extractive answer: "<sentence(s)> [<8 hex>, <date>]" (:func:`cite`),
#: its text and the short id it cites; an answer is a run of these.
CITED_PART = re.compile(r"(.+?) \[([0-9a-f]{8})(?:, \d{4}-\d\d-\d\d)?\](?: |$)", re.DOTALL)


#: "how much", "how long", ...: the word after "how" asks for a measure; it is not what the
#: question is about, and facts that answer it rarely contain it.
MEASURES = (
    "much many long old often far big large soon tall high fast late early deep wide "
    "heavy expensive frequently"
)
_HOW = re.compile(rf"\bhow\s+({'|'.join(MEASURES.split())})\b", re.IGNORECASE)


def question_terms(question: str) -> set[str]:
    """The terms a sentence must cover to answer ``question``: its index terms, without
    the measure word of a "how much / many / long ..." question."""
    terms = set(tokenize(question))
    measures = {t for m in _HOW.findall(question) for t in tokenize(m)}
    rest = _HOW.sub(" ", question)
    return terms - (measures - set(tokenize(rest)))


_NAMED = re.compile(r"(?<!^)(?<![.!?]\s)\b(?:[A-Z][\w'’-]*|\w*\d[\w-]*)")


def named_terms(question: str) -> set[str]:
    """The terms of what a question names: capitalised words after its first, and
    identifiers with digits ("Priya", "Heron", "PRJ-4471")."""
    return {t for m in _NAMED.findall(question.strip()) for t in tokenize(m)}


#: How many of the best facts the answer's sentence is chosen from.
_TOP = 10


def _answered(hit: Hit) -> str:
    """What of ``hit``'s context it may answer: all of it (a document's heading, the
    paragraph before); of a conversation's turn (a speaker recorded), only the turns around
    it that ask something. "We're at 28 engineers." after "What's the Otter headcount?"
    answers that; "The Otter room is Opal." beside "The Puffin headcount is 14." is no
    answer about a headcount."""
    if recorded_speaker(hit) is None:
        return hit.context
    return "\n".join(line for line in hit.context.split("\n") if "?" in line)


def extractive_answer(
    question: str,
    hits: list[Hit],
    *,
    complete: bool = True,
    unreachable: tuple[str, ...] = (),
) -> Answer:
    want = question_terms(question)
    # a fact's context (the turn before it, ...) says what it answers: "It went up to
    # 1.5 M." after "What is the Heron budget?" covers "heron" and "budget" through it
    around = {h.id: want & set(tokenize(_answered(h))) for h in hits if h.context}
    matching = [h for h in hits if want & (set(tokenize(h.content)) | around.get(h.id, set()))]
    # per sentence of the best facts: (question terms covered, rank of its fact, index);
    # a question is not an answer
    bounds = {h.id: _sentence_bounds(h.content) for h in matching[:_TOP]}
    sentences = {h.id: [h.content[a:b] for a, b in bounds[h.id]] for h in matching[:_TOP]}
    spans: list[tuple[frozenset[str], int, int, Hit]] = []
    #: facts answered whole: a short turn whose sentences cover nothing of the question
    #: themselves but whose context does ("It went up to 1.5 M." after "What is the Heron
    #: budget?"); a sentence that covers nothing itself is never quoted alone ("Hi Aisha.")
    whole: set[str] = set()
    reach: dict[tuple[str, int], int] = {}
    for rank_, hit in enumerate(matching[:_TOP]):
        context = around.get(hit.id, set())
        says = [
            (i, frozenset(want & set(tokenize(s))))
            for i, s in enumerate(sentences[hit.id])
            if not s.rstrip().endswith("?")
        ]
        terms_of = [want & set(tokenize(s)) for s in sentences[hit.id]]
        for i, covered in says:
            if covered:
                spans.append((covered | context, rank_, i, hit))
                # what the span covers once grown into a neighbouring sentence (below)
                grown = set(covered)
                for j in (i + 1, i - 1):
                    if 0 <= j < len(terms_of) and terms_of[j] - covered:
                        grown |= terms_of[j]
                        break
                reach[(hit.id, i)] = len(grown | context)
        if context and says and not any(c for _, c in says) and len(sentences[hit.id]) <= 3:
            whole.add(hit.id)
            spans.append((frozenset(context), rank_, 0, hit))
            reach[(hit.id, 0)] = len(context)
    if not spans:
        return Answer(
            question,
            NO_ANSWER if not matching else NOT_COVERED,
            matching[:3],
            complete,
            unreachable,
        )
    named = named_terms(question) & want

    def about(covered: frozenset[str]) -> bool:
        """Whether a sentence is about one of the things the question names, if any."""
        return not named or bool(covered & named)

    # the most of the question covered (by the span as it will grow); a sentence that
    # covers it itself before a turn answered through its context; then the better fact
    covered, _, i, hit = max(
        spans,
        key=lambda s: (about(s[0]), reach[(s[3].id, s[2])], s[3].id not in whole, -s[1]),
    )
    if 2 * len(covered) < len(want) or not about(covered):
        # not even half of what was asked about, or about none of what it names
        return Answer(question, NOT_COVERED, matching[:3], complete, unreachable)
    own = sentences[hit.id]
    first, last = (0, len(own) - 1) if hit.id in whole else (i, i)
    # the span grows into a neighbouring sentence of the same fact that covers what the
    # question asks and this sentence does not ("X is the dashboard. Priya runs it.")
    for j in (i + 1, i - 1):
        if 0 <= j < len(own) and (want - covered) & set(tokenize(own[j])):
            covered |= want & set(tokenize(own[j]))
            first, last = min(first, j), max(last, j)
            break
    # the span as the fact has it (a line break between its sentences stays one)
    parts = [(hit.content[bounds[hit.id][first][0] : bounds[hit.id][last][1]], hit)]
    # another fact only as a sentence of its own, when it could answer by itself (half the
    # terms or more) and covers something the first does not
    rest = want - covered
    others = [
        s
        for s in spans
        if s[3].id != hit.id and s[0] & rest and 2 * len(s[0]) >= len(want) and about(s[0])
    ]
    if others:
        other = max(others, key=lambda s: (len(s[0] & rest), len(s[0]), -s[1]))
        said = other[3].content if other[3].id in whole else sentences[other[3].id][other[2]]
        parts.append((said, other[3]))
    text = " ".join(f"{sentence} {cite(source)}" for sentence, source in parts)
    return Answer(question, text, [source for _, source in parts], complete, unreachable)
