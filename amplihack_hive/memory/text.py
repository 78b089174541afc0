"""Tokenization shared by remember (indexing) and recall (querying).

Both sides must produce the same terms, so this is the only tokenizer, and it is
versioned: a hive's postings are built with one version (``tokenizer`` in its config, kept
in every agent's store) and every request that reads or writes postings names it, so a
hive is never queried with terms of another version (``amplihack-hive reindex`` rebuilds
an older hive's postings from its fact bodies).

Both versions:
- identifiers and numbers count: ``PRJ-4471`` yields ``prj-4471`` and its parts ``prj`` and
  ``4471``; ``1,200`` is ``1200``; ``v2.1`` stays whole and also yields ``v2``, ``1``;
- possessives are dropped (``Chen's`` -> ``chen``);
- English stop words are removed (they carry no ranking signal and their posting lists
  would be the largest in the hive).

Version 1 folds plurals with a light rule (``budgets`` -> ``budget``). Version 2 (the
default) stems words with the Snowball English stemmer (Porter2, through PyStemmer's C
library): ``running``, ``runs`` -> ``run``; ``officers`` -> ``offic``. Words of three
letters or fewer are kept as they are in both (acronyms: ``AWS``, ``CTO``), and so are
whole identifiers and anything with a digit.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable

from amplihack_hive.errors import InvalidInputError

#: The tokenizer new hives index with.
TOKENIZER = 2
#: Every version this code can tokenize with.
TOKENIZERS = (1, 2)

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


def check_tokenizer(version: object) -> int:
    """``version`` if this code knows it; else InvalidInputError."""
    if isinstance(version, bool) or not isinstance(version, int) or version not in TOKENIZERS:
        known = ", ".join(map(str, TOKENIZERS))
        raise InvalidInputError(f"unknown tokenizer {version!r}; this version knows {known}")
    return version


def _fold(word: str) -> str:
    """Version 1: a light, deterministic plural fold for alphabetic words."""
    if not word.isalpha() or len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


_local = threading.local()


def _stem(word: str) -> str:
    """Version 2: the Snowball English stem of an alphabetic word of four letters or more."""
    if not word.isalpha() or len(word) <= 3:
        return word
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        # one per thread: a PyStemmer object (and its cache) is not safe to share
        import Stemmer

        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    result: str = stemmer.stemWord(word)
    return result


_NORMALISE: dict[int, Callable[[str], str]] = {1: _fold, 2: _stem}
#: word -> its terms, per version. Words repeat (a corpus's vocabulary is small beside its
#: length), and splitting and stemming each one was most of tokenize's time (a learning
#: client tokenizes every item). Cleared when it holds this many words, so it stays small.
_WORD_CACHE_MAX = 1 << 16
_word_terms: dict[int, dict[str, tuple[str, ...]]] = {v: {} for v in _NORMALISE}


def _terms_of(word: str, version: int) -> tuple[str, ...]:
    norm = _NORMALISE[version]
    parts = [p for p in _SPLIT.split(word) if p]
    if len(parts) == 1:
        terms: tuple[str, ...] = () if word in STOPWORDS else (norm(word),)
    else:
        terms = (word, *(norm(p) for p in parts if p not in STOPWORDS))
    cache = _word_terms[version]
    if len(cache) >= _WORD_CACHE_MAX:
        cache.clear()
    cache[word] = terms
    return terms


def tokenize(text: str, version: int = TOKENIZER) -> list[str]:
    """The terms of ``text``, in order, repeated as often as they occur."""
    cache = _word_terms.get(version)
    if cache is None:
        check_tokenizer(version)
        raise AssertionError("unreachable")
    text = unicodedata.normalize("NFKC", text).lower()
    text = _POSSESSIVE.sub("", _THOUSANDS.sub("", text))
    terms: list[str] = []
    for word in _WORD.findall(text):
        known = cache.get(word)
        terms.extend(_terms_of(word, version) if known is None else known)
    return terms


def term_counts(text: str, version: int = TOKENIZER) -> tuple[Counter[str], int]:
    """Term frequencies and the document length (number of terms) of ``text``."""
    terms = tokenize(text, version)
    return Counter(terms), len(terms)
