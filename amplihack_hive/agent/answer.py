"""Extractive answers: the sentences of recalled facts that best match the question.

This is the answerer that always works (no model, no key). It picks, from the best facts,
the sentences sharing the most question terms, and names the facts it used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from amplihack_hive.memory.hits import Hit
from amplihack_hive.memory.text import tokenize

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
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


def extractive_answer(
    question: str,
    hits: list[Hit],
    *,
    complete: bool = True,
    unreachable: tuple[str, ...] = (),
    max_sentences: int = 2,
) -> Answer:
    if not hits:
        return Answer(question, NO_ANSWER, [], complete, unreachable)
    want = set(tokenize(question))
    scored: list[tuple[float, int, str, Hit]] = []
    for rank_, hit in enumerate(hits[:5]):
        for sentence in _SENTENCE.split(hit.content):
            overlap = len(want & set(tokenize(sentence)))
            if overlap:
                # earlier (better) facts win ties; a later fact needs more shared terms
                scored.append((overlap - 0.1 * rank_, -rank_, sentence.strip(), hit))
    if not scored:
        return Answer(question, hits[0].content, [hits[0]], complete, unreachable)
    scored.sort(key=lambda t: (-t[0], -t[1]))
    chosen: list[tuple[str, Hit]] = []
    for _, _, sentence, hit in scored:
        if sentence not in (s for s, _ in chosen):
            chosen.append((sentence, hit))
        if len(chosen) >= max_sentences:
            break
    sources: list[Hit] = []
    for _, hit in chosen:
        if hit not in sources:
            sources.append(hit)
    return Answer(question, " ".join(s for s, _ in chosen), sources, complete, unreachable)
