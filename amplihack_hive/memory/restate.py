"""Newest first without hand-made subjects: a newer fact that restates an older one with a
different value ranks above it, and the older is marked superseded (never dropped).

Explicit ``subject`` and ``supersedes`` decide first (:func:`~amplihack_hive.memory.index.
apply_supersession`); this step looks at the facts a recall returns, with their text. A
newer fact B restates an older fact A, for the question asked, when all of these hold:

- both cover the same question terms (they are about what the question asks), or B covers
  more of them, or B says a change A does not and drops one verb of at least three ("is
  held in room 4", later "has moved to room 9"); never a name or number in one only;
- they share at least two terms and at least half of A's (mostly the same words);
- B has terms A lacks (a new value: a number, a name, a place, a date);
- B says that something changed ("now", "raised", "moved", "replaced", "correction", ...)
  and at most three of A's terms are gone from it, or only A's numbers gave way to others
  ("is 1.2 M", later "is 1.5 M"; not "Heron is 1.2 M", later "Falcon is 2 M");
- B is a statement, not a question ("What is Heron's budget now?" restates nothing);
- an opener that says nothing ("For the record, ", "Fyi, ") is no term of either;
- A and B do not both carry a subject (then the subjects have decided already).

It is a heuristic: two true facts of the same shape ("Alice speaks French", later "Alice
speaks German. She moved to Berlin.") can be taken for an update. So it only reorders and
marks; both facts stay in the result (unless the limit cuts the older, which the newer
has moved down). It runs on the result after ranking, the same in one
agent and in a hive of any size, so the hive still answers exactly as one agent would.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from amplihack_hive.memory.hits import Hit
from amplihack_hive.memory.text import tokenize

#: Words by which a statement says that a value changed (lowercase, whole words).
CHANGE_WORDS = frozenset(
    """
    now actually revised raised lowered increased decreased changed moved relocated
    replaced promoted updated update correction corrected slipped postponed delayed
    reassigned became switched instead reorg renamed anymore upgraded downgraded
    """.split()  # noqa: SIM905
)
#: With a change word, at most this many of the older fact's terms may be missing from
#: the newer (its old value, a greeting): more, and they are two facts about two things.
MAX_REPLACED = 3
_WORDS = re.compile(r"[a-z]+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")  # "1,400" is one number, as in tokenize
_STANDALONE = re.compile(r"(?<![-_./:@#\w])[^\W_]+(?![-_./:@#]?\w)")


def _own_words(content: str) -> set[str]:
    """The words of ``content`` that stand alone (not inside "prj-4323")."""
    return set(tokenize(" ".join(_STANDALONE.findall(_THOUSANDS.sub("", content)))))


_NUMBER = re.compile(r"[\d.,]*\d[\d.,]*")


@dataclasses.dataclass
class _Text:
    terms: set[str]
    numbers: set[str]
    #: terms of capitalised words and identifiers ("Dublin", "Ferreira", "PRJ-4471")
    names: set[str]
    changes: bool
    #: a question (it ends with one), or asks one anywhere (``asks``: a newer fact that
    #: asks "Is it 1.5 M now? ..." gives no value)
    question: bool
    asks: bool
    #: speaks of the speaker ("my desk", "I lead"): true of whoever says it
    first_person: bool
    #: says what the speaker lacks ("I need the deadline for ..."): a question in effect
    wants: bool
    #: terms of a speaker label the text seems to start with ("Julia Nguyen: that works",
    #: but maybe "Heron Budget: 1.2 M"): they count half toward covering a question
    label: set[str] = dataclasses.field(default_factory=set)


#: A capitalised word (a name, or a sentence's first word: stop words drop out).
_NAME = re.compile(r"\b[A-Z][\w'’-]*")


_JOINED = re.compile(r"[-_./:@#]")


def _read(content: str) -> _Text:
    terms = set(tokenize(content))
    # "prj-4323" is one term here, not also "prj" and "4323": two facts about one project
    # share its identifier once, not three times
    parts = {p for t in terms if _JOINED.search(t) for p in _JOINED.split(t) if p}
    if parts:
        terms -= parts - _own_words(content)
    words = set(_WORDS.findall(content.lower()))
    return _Text(
        terms=terms,
        numbers={t for t in terms if _NUMBER.fullmatch(t)},
        names={t for m in _NAME.findall(content.strip()) for t in tokenize(m)} & terms,
        changes=bool(CHANGE_WORDS & words),
        question=content.rstrip().endswith("?"),
        asks=content.rstrip().endswith("?") or "? " in content,
        first_person=bool(_FIRST_PERSON & words),
        wants=bool(_FIRST_PERSON & words) and bool(WANT_WORDS & words),
    )


_FIRST_PERSON = frozenset(["i", "my", "me", "mine", "myself"])
#: Words by which a speaker says what they lack or seek ("I need ...", "I keep forgetting
#: ...", "remind me ..."), beside a first-person word.
WANT_WORDS = frozenset(
    """need forget forgot forgetting forgotten wonder wondering remind unsure""".split()  # noqa: SIM905
)


def _alike(older: frozenset[str], newer: frozenset[str], changes: bool) -> bool:
    """Whether facts matching the question's terms ``older`` and ``newer`` can be about
    the same thing: the newer matches all the older does, or (``changes``: the newer says
    that something changed and the older does not) all but one of at least three ("The
    demo is held in room 4 on Mondays", later "The demo has moved to room 9", for "Where
    is the demo held now?")."""
    if not older or not newer:
        return False
    if older <= newer:
        return True
    return changes and len(older - newer) == 1 and len(older & newer) >= 2


def restates(newer: Hit, older: Hit, question: set[str], texts: dict[str, _Text]) -> bool:
    """Whether ``newer`` restates ``older`` with another value, for ``question``'s terms."""
    if newer.created <= older.created or newer.content == older.content:
        return False
    if newer.subject and older.subject:
        return False
    b, a = texts[newer.id], texts[older.id]
    if b.asks or a.question:
        return False  # a question holds no value to replace, nor gives one
    if (a.first_person or b.first_person) and _speaker(newer) != _speaker(older):
        return False  # "Aisha: my desk is in room 12", "Ben: my desk is in room 14"
    asked_a, asked_b = frozenset(question & a.terms), frozenset(question & b.terms)
    if not _alike(asked_a, asked_b, b.changes and not a.changes):
        return False
    if (asked_a ^ asked_b) & (a.names | a.numbers | b.names | b.numbers):
        return False  # a name or number of the question in one only: two things
    shared = a.terms & b.terms
    if len(shared) < 2 or 2 * len(shared) < len(a.terms):
        return False
    if not b.terms - a.terms:
        return False  # B says nothing A does not
    gone = a.terms - b.terms
    if b.changes and len(gone) <= MAX_REPLACED and shared - a.names:
        # B says the value changed ("was replaced as CTO by ..." may repeat all of A), if
        # they share what the value is of, not only names: "Viktor Duarte: thanks!" or
        # "Zara is based in Osaka" is no older value of "Zara was promoted to manager"
        return True
    # or only A's numbers gave way to others ("is 1.2 M", later "is 1.5 M"; not "Heron is
    # 1.2 M", "Falcon is 2 M": those differ in a name too)
    return bool(gone) and gone <= a.numbers and bool(b.numbers - a.numbers)


#: A turn's leading speaker label in text learned without chat metadata ("Julia Nguyen:
#: that works", "Hugo: has it moved?"): one to three capitalised words and a colon.
_LABEL = re.compile(r"([A-Z][\w'’-]*(?: [A-Z][\w'’-]*){0,2}): (?=\S)")
#: Capitalised words that head a line as a label, not as a speaker ("Update: ...").
LABEL_WORDS = frozenset(
    """
    note notes update updates correction fyi reminder important warning summary decision
    action question answer re ps nb edit todo status news tip info context background
    """.split()  # noqa: SIM905
)


def _speaker(hit: Hit) -> str | None:
    """Who said a conversation's turn: its metadata (as learn --format chat records it),
    else the speaker label its text seems to start with ("Julia Nguyen: ...")."""
    return recorded_speaker(hit) or _label(hit.content)


def recorded_speaker(hit: Hit) -> str | None:
    """The speaker in ``hit``'s metadata (as learn --format chat records it), if any."""
    speaker = hit.metadata.get("speaker") if isinstance(hit.metadata, dict) else None
    return speaker if isinstance(speaker, str) and speaker else None


def _label(content: str) -> str | None:
    """The speaker label ``content`` seems to start with: "Julia Nguyen" in "Julia Nguyen:
    that works" (not "Update" in "Update: ..."; "Heron Budget" in "Heron Budget: 1.2 M",
    for there is no telling)."""
    label = _LABEL.match(content)
    if label is None or label.group(1).lower() in LABEL_WORDS | CHANGE_WORDS:
        return None
    return label.group(1)


#: How a statement may open without saying anything ("For the record, the budget ...").
_OPENER = re.compile(
    r"(?:fyi|btw|for the record|just so you know|quick note|heads up|note|reminder)"
    r"\s*[,:;-]\s+",
    re.IGNORECASE,
)


def _said(hit: Hit) -> str:
    """What a fact says, without the speaker a conversation's turn starts with ("Aisha:
    ..."): two speakers can state one value and its update; and without an opener that
    says nothing ("For the record, ...")."""
    said = hit.content
    speaker = recorded_speaker(hit)
    if speaker is not None and said.startswith(f"{speaker}: "):
        said = said[len(speaker) + 2 :]
    opener = _OPENER.match(said)
    return said[opener.end() :] if opener else said


def _read_hit(hit: Hit) -> _Text:
    """:func:`_read` of what ``hit`` says (:func:`_said`), with the terms of a speaker
    label it seems to start with."""
    said = _said(hit)
    text = _read(said)
    label = _label(said) if said == hit.content else None
    if label is not None:
        text.label = set(tokenize(label)) - set(tokenize(said[len(label) + 1 :]))
    return text


def head_first(hits: Sequence[Hit], question: str) -> list[Hit]:
    """``hits`` (best first) for ``question`` as a result shows them: :func:`newest_first`,
    then :func:`covering_first`, each fact's text read once (this runs on the loop)."""
    if len(hits) < 2:
        return list(hits)
    asked = _read(question).terms
    texts = {h.id: _read_hit(h) for h in hits}
    return covering_first(newest_first(hits, question, asked, texts), question, asked, texts)


def newest_first(
    hits: Sequence[Hit],
    question: str,
    asked: set[str] | None = None,
    texts: dict[str, _Text] | None = None,
) -> list[Hit]:
    """``hits`` (best first) for ``question``, each restated fact marked ``superseded_by``
    its newest restatement, which moves up to just above the best-ranked fact it restates;
    everything else keeps its order, and every hit stays. ``asked`` and ``texts``: the
    question's terms and each hit's text as read already."""
    if len(hits) < 2:
        return list(hits)
    asked = _read(question).terms if asked is None else asked
    texts = {h.id: _read_hit(h) for h in hits} if texts is None else texts
    by_id = {h.id: h for h in hits}
    # only facts covering alike question terms can restate one another (_alike)
    alike: dict[frozenset[str], list[Hit]] = {}
    for h in hits:
        alike.setdefault(frozenset(asked & texts[h.id].terms), []).append(h)
    pairs = [(ka, kb) for ka in alike for kb in alike if _alike(ka, kb, True)]
    # each fact's newest restatement (chains of updates A -> B -> C all end at C)
    newest: dict[str, str] = {}
    for ka, kb in pairs:
        for older in alike[ka]:
            best: Hit | None = None
            for newer in alike[kb]:
                if restates(newer, older, asked, texts) and (
                    best is None or (newer.created, newer.id) > (best.created, best.id)
                ):
                    best = newer
            if best is not None and (
                older.id not in newest
                or (best.created, best.id) > (by_id[newest[older.id]].created, newest[older.id])
            ):
                newest[older.id] = best.id
    if not newest:
        return list(hits)

    def root(fid: str) -> str:
        seen = {fid}
        while fid in newest and newest[fid] not in seen:
            fid = newest[fid]
            seen.add(fid)
        return fid

    out: list[Hit] = []
    placed: set[str] = set()
    for h in hits:
        top = root(h.id)
        if top not in placed:  # the newest restatement goes just above what it restates
            placed.add(top)
            out.append(by_id[top])
        if h.id not in placed:
            placed.add(h.id)
            out.append(dataclasses.replace(h, superseded_by=top) if h.id in newest else h)
    return out


def _asks(text: _Text, asked: set[str]) -> bool:
    """Whether a fact asks rather than states: a question, or a speaker saying what they
    lack with no value beside the question's ("I need the deadline for PRJ-1 before the
    call"; not "I need the deadline moved to May 3")."""
    return text.asks or (text.wants and not (text.numbers | text.names) - asked - text.label)


#: How many of a result's best facts :func:`covering_first` orders.
COVER_TOP = 5
#: Words by which a question asks for what holds now ("Who leads PRJ-1 now?", "What is
#: her current role?", "... these days?"): an update of a value answers it before a fact
#: that updates nothing.
_CURRENT = re.compile(
    r"\b(?:now|currently|current|nowadays|latest|today|anymore|these days)\b", re.IGNORECASE
)


def asks_current(question: str) -> bool:
    """Whether ``question`` asks what holds now ("now", "current", "these days", ...)."""
    return _CURRENT.search(question) is not None


def covering_first(
    hits: Sequence[Hit],
    question: str,
    asked: set[str] | None = None,
    texts: dict[str, _Text] | None = None,
) -> list[Hit]:
    """``hits`` (best first) with their first COVER_TOP ordered by how many of
    ``question``'s terms each holds (in its content or context), most first; then facts
    that state something before facts that ask something; then as ranked, the newer of two
    equal scores first. The rest stay.

    BM25 ranks a short fact with two rare terms of the question ("Zara Aziz: will do")
    above a longer one with those and one more ("After the reorg Zara Aziz is on the
    payments team"), and a question about a value ("Who is the lead of PRJ-5100 these
    days?") above the statement of it. Ordering only the first few keeps which facts a
    result holds (recall@5 and @10 do not move); what comes first changes. A fact that
    something in the result supersedes (a restatement, :func:`newest_first`, or a newer
    fact of its subject) stays below it. A question that asks what holds now
    (:func:`asks_current`: "How much money does PRJ-1 have now?", in other words than
    "the budget of PRJ-1 was revised to ...") takes, of facts that hold as many of its
    terms, one that updates another fact of the result first: the fact that changed is
    what such a question is about. ``asked`` and ``texts`` as for newest_first."""
    head = list(hits[:COVER_TOP])
    if len(head) < 2:
        return list(hits)
    asked = _read(question).terms if asked is None else asked
    by_id = {h.id: h for h in hits}

    def group(hit: Hit) -> str:
        """``hit``'s subject key as apply_supersession (index.py) makes it: a fact written
        with supersedes=X has subject X, which leads on to X's own subject."""
        key, seen = hit.subject or hit.id, set()
        while key in by_id and key not in seen and by_id[key].subject and by_id[key] is not hit:
            seen.add(key)
            key = by_id[key].subject or key
        return key

    groups = {h.id: group(h) for h in hits}

    def supersedes(newer: Hit, older: Hit) -> bool:
        """A restatement (newest_first) or a newer fact of the same subject."""
        return newer.id == older.superseded_by or (
            newer.created > older.created
            and groups[newer.id] == groups[older.id]
            and newer.id != older.id
        )

    # the facts of the head that update another of the result (for a "now" question)
    updates = (
        {h.id for h in head if any(supersedes(h, x) for x in hits)}
        if asks_current(question)
        else set()
    )
    read = [_read_hit(h) if texts is None else texts[h.id] for h in head]
    # a question term counts once in what a fact says or in its context, half in a
    # speaker label only: "Julia Nguyen: that works" is by her, not about her
    contexts = [set(tokenize(h.context)) for h in head]
    covers = [
        len(asked & ((t.terms - t.label) | ctx)) + 0.5 * len(asked & t.label - ctx)
        for t, ctx in zip(read, contexts, strict=True)
    ]
    # equal coverage and an equal score: the newer fact first (two statements of a value
    # in the same words score alike, and the later one is what holds now)
    order = sorted(
        range(len(head)),
        key=lambda i: (
            -covers[i],
            _asks(read[i], asked),
            head[i].id not in updates,
            -head[i].score,
            -head[i].created,
            i,
        ),
    )
    out = [head[i] for i in order]

    def above(hit: Hit) -> list[Hit]:
        """The facts of the head that supersede ``hit``."""
        return [h for h in head if supersedes(h, hit)]

    # what supersedes a fact stays above it (supersession is by time: this ends)
    for _ in range(len(out) ** 2):
        late = next(
            (
                (pos, max(out.index(h) for h in newer))
                for pos, hit in enumerate(out)
                if (newer := above(hit)) and max(out.index(h) for h in newer) > pos
            ),
            None,
        )
        if late is None:
            break
        pos, last = late
        out.insert(last, out.pop(pos))
    return [*out, *hits[COVER_TOP:]]
