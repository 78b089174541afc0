"""Tokenization shared by remember (indexing) and recall (querying).

Both sides must produce the same terms, so this is the only tokenizer. Choices:
- identifiers and numbers count: ``PRJ-4471`` yields ``prj-4471`` and its parts ``prj`` and
  ``4471``; ``1,200`` is ``1200``; ``v2.1`` stays whole and also yields ``v2``, ``1``;
- possessives are dropped (``Chen's`` -> ``chen``) and a light plural rule folds
  ``budgets`` -> ``budget``;
- English stop words are removed (they carry no ranking signal and their posting lists
  would be the largest in the hive).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

_WORD = re.compile(r"[^\W_]+(?:[-_./:@#][^\W_]+)*", re.UNICODE)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_POSSESSIVE = re.compile(r"['’]s\b")
_SPLIT = re.compile(r"[-_./:@#]")

STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if
    in into is it its itself just me more most my myself no nor not now of off on once
    only or other our ours ourselves out over own same she should so some such than that
    the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves s t don ok okay yes yeah let's lets tell
    know
    """.split()  # noqa: SIM905
)


def _fold(word: str) -> str:
    """A light, deterministic plural fold for alphabetic words."""
    if not word.isalpha() or len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """The terms of ``text``, in order, repeated as often as they occur."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _POSSESSIVE.sub("", _THOUSANDS.sub("", text))
    terms: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group(0)
        parts = [p for p in _SPLIT.split(word) if p]
        if len(parts) == 1:
            if word not in STOPWORDS:
                terms.append(_fold(word))
            continue
        terms.append(word)
        terms.extend(_fold(p) for p in parts if p not in STOPWORDS)
    return terms


def term_counts(text: str) -> tuple[Counter[str], int]:
    """Term frequencies and the document length (number of terms) of ``text``."""
    terms = tokenize(text)
    return Counter(terms), len(terms)
