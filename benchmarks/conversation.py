"""A seeded, synthetic multi-session team conversation with labelled evidence turns.

This is a stand-in for a held-out public conversation-memory benchmark (of the LongMemEval /
LoCoMo kind) that this repository cannot ship. It is synthetic and small, its phrasing comes
from a few dozen templates, and its figures say how retrievers compare on *these* templates,
not how well any of them would do on real conversations. It is built from templates and
``random.Random(seed)`` only: nothing here looks at what a retriever finds (no question is
kept or dropped, no parameter chosen, by checking anyone's recall).

``generate(sessions, questions, seed)`` returns a :class:`Conversation`: ``sessions`` dated
sessions of 8-15 turns between 2-4 speakers of one team, about a few dozen projects (code
names such as ``Heron``; about one project per 7.5 sessions, so how often a project comes up
does not depend on the size), mixed with chit-chat filler, and ``questions`` questions per
category, each with the contents (``"Speaker: text"``, as ``learn --format chat`` stores a
turn) of its evidence turns:

- ``single``: one turn states the fact in the question's words ("The Heron budget is 1.5 M."
  for "What is the Heron budget?");
- ``reply``: one speaker asks ("What's the budget for Heron these days?"), another answers
  in the next turn ("1.5 M, after the last review."); the question asks in other words ("How
  big is the budget of Heron?") and the evidence is the reply, which has none of the
  question's key terms (the project and the attribute's words); the turn before it has them
  all, so only a turn's context (its neighbouring turns) can lead to it;
- ``inflected``: "Maria has been coordinating the Heron migrations since March." for "Who
  coordinates the Heron migration?": the discriminating words (verb and noun) appear in the
  evidence only in other inflections (same Snowball stem, other surface form), while other
  turns use the question's own forms about other projects ("Omar coordinates the Falcon
  migration.") or the same project with another verb ("Jonas reviewed the Heron migration
  last week."), so neither the project name nor the surface forms decide it;
- ``multi``: two statements in different sessions are both needed ("Compare the Heron budget
  with the Falcon budget.", or two attributes of one project); recall counts the share of
  the evidence turns found;
- ``changed``: a value is stated in an early session and changed in a later one (not always
  with a word saying so); the evidence is both turns, oldest first, and the newer one is the
  answer (``Question.evidence[-1]``).

Distractors exist for every question: other sessions mention its project (chatter, other
attributes), state or mention the same attribute of other projects, and for about half of the
``single`` and ``changed`` questions a turn repeats the question's words without a value ("Is
the Heron budget written down anywhere?"). Every turn is stored as ``"Speaker: text"``, so
speakers' names are words of every turn, as they are for ``learn --format chat``.

``Question.key_terms`` holds the words the category makes a promise about (lowercase, as the
question writes them); ``tests/test_bench_conversation.py`` checks every promise.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

from benchmarks import corpus as _corpus


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


CATEGORIES = ("single", "reply", "inflected", "multi", "changed")
#: When the first session starts; later ones follow 2-40 hours after the one before ends.
START = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)

PROJECTS = _words(
    "Heron Falcon Osprey Kestrel Lynx Otter Badger Marten Ibis Puffin Condor Raven Wren "
    "Finch Egret Pelican Bison Orca Narwhal Manta Gecko Iguana Jaguar Cobra Tundra Comet "
    "Nebula Quasar Pulsar Zephyr Cedar Willow Juniper Sequoia Cypress Aspen Magpie Starling "
    "Plover Curlew Bittern Avocet Walrus Dingo"
)
TEAM = _words(
    "Maria Omar Priya Jonas Kenji Lena Diego Aisha Tom Elif Ravi Sofia Kwame Ines Felix Hana "
    "Marcus Noor Yuki Pedro Astrid Tariq"
)
MONTHS = _words(
    "January February March April May June July August September October November December"
)
WEEKDAYS = _words("Monday Tuesday Wednesday Thursday Friday")
DATABASES = _words(
    "Postgres MySQL Cassandra DynamoDB CockroachDB ClickHouse MongoDB Spanner MariaDB Redis"
)
VENDORS = (
    "Nimbus Cloud",
    "Stratus",
    "BlueRack",
    "Cirrus Compute",
    "Ironclad",
    "Skyforge",
    "Vantage Grid",
    "Coldharbor",
)
CITIES = _words(
    "Lisbon Porto Madrid Berlin Warsaw Prague Vienna Dublin Oslo Helsinki Athens Milan Lyon "
    "Krakow Tallinn Riga Seville Munich Zurich Ghent"
)
ROOMS = _words("Quartz Basalt Onyx Garnet Cobalt Jade Topaz Amber Slate Coral Flint Opal")
COMPANIES = (
    "Northwind",
    "Contoso",
    "Globex",
    "Initech",
    "Umbrella Foods",
    "Hooli",
    "Vandelay Imports",
    "Stark Freight",
    "Wayne Logistics",
    "Tyrell Farms",
)


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


@dataclass(frozen=True)
class _Attr:
    """A project attribute: how its value looks, is asked for and is answered."""

    noun: str  # as questions and statements say it; its words are the key terms
    value: Callable[[random.Random], str]
    asks: tuple[str, ...]  # the asking turn of a reply pair: {p} and every word of noun
    replies: tuple[str, ...]  # the answer: {v}, and neither {p} nor a word of noun
    reply_questions: tuple[str, ...]  # other words than the asks, but {p} and noun's words


ATTRS: tuple[_Attr, ...] = (
    _Attr(
        "budget",
        lambda r: f"{r.randint(1, 9)}.{r.randint(1, 9)} M",
        ("What's the budget for {p} these days?", "Does anyone have the {p} budget handy?"),
        ("{v}, after the last review.", "Last I saw it was {v}.", "{v}. Finance agreed."),
        ("How much money is in the {p} budget?", "How big is the budget of {p}?"),
    ),
    _Attr(
        "deadline",
        lambda r: f"{r.choice(MONTHS)} {r.randint(1, 28)}",
        ("What's the {p} deadline again?", "Remind me of the deadline for {p}?"),
        ("{v}, unless legal blocks it.", "It's {v}, I double-checked.", "{v} last I heard."),
        ("When is the {p} deadline?", "By when is the deadline of {p}?"),
    ),
    _Attr(
        "database",
        lambda r: r.choice(DATABASES),
        ("Which database is {p} on?", "What database did {p} end up with?"),
        ("{v}, and it's holding up fine.", "It runs on {v}.", "{v}, same cluster as billing."),
        ("What database does {p} run on?", "On which database is {p} built?"),
    ),
    _Attr(
        "hosting vendor",
        lambda r: r.choice(VENDORS),
        ("Who's the hosting vendor for {p} again?", "Which hosting vendor did {p} pick?"),
        ("{v}, we went with them in the spring.", "Still {v}.", "{v}, the contract renews."),
        ("Which company is the hosting vendor of {p}?", "Name the hosting vendor {p} uses."),
    ),
    _Attr(
        "launch city",
        lambda r: r.choice(CITIES),
        ("Which city is the {p} launch in?", "Where's the {p} launch, which city?"),
        ("{v}, if the visas come through.", "{v}! Booking flights this week.", "It's {v}."),
        ("In what city will the {p} launch take place?", "The {p} launch: in which city?"),
    ),
    _Attr(
        "demo date",
        lambda r: f"{r.choice(WEEKDAYS)} the {_ordinal(r.randint(1, 28))}",
        ("Do we have a date for the {p} demo?", "What's the date of the {p} demo?"),
        ("{v}, 3 pm.", "{v}, in the big room.", "I think {v}."),
        ("On what date is the {p} demo?", "When is the {p} demo, what date?"),
    ),
    _Attr(
        "uptime target",
        lambda r: f"{r.choice(('99.5', '99.9', '99.95', '99.99', '99.8', '99.7'))} percent",
        ("What uptime target did we commit to for {p}?", "What's the {p} uptime target?"),
        ("{v}, same as last year.", "We promised {v}.", "{v}, it's in the contract."),
        ("What is the uptime target of {p}?", "How high is the {p} uptime target?"),
    ),
    _Attr(
        "standup room",
        lambda r: r.choice(ROOMS),
        ("Which room is the {p} standup in?", "Where's the {p} standup room these days?"),
        ("{v}, second floor.", "It's {v} this month.", "{v}, next to the kitchen."),
        ("Where is the {p} standup room?", "What room does the {p} standup use?"),
    ),
    _Attr(
        "headcount",
        lambda r: f"{r.randint(3, 30)} engineers",
        ("What's the {p} headcount right now?", "Is the {p} headcount settled?"),
        ("{v}, plus a contractor.", "{v} at the moment.", "We're at {v}."),
        ("How large is the {p} headcount?", "What is the headcount of {p}?"),
    ),
    _Attr(
        "first customer",
        lambda r: r.choice(COMPANIES),
        ("Who's the first customer for {p}?", "Do we know the first customer for {p} yet?"),
        ("{v}, pending legal.", "Looks like {v}.", "{v}, they committed last week."),
        ("Which company is the first customer of {p}?", "Who will be the first customer of {p}?"),
    ),
)

# Statements in the question's words: single, multi, the first statement of a changed value,
# and background facts (attributes of projects nobody asks about).
STATEMENTS = (
    "The {noun} for {p} is {v}.",
    "The {p} {noun} is {v}.",
    "FYI, the {noun} for {p} is {v}.",
    "For the notes: the {p} {noun} is {v}.",
    "Confirmed: the {p} {noun} is {v}.",
)
# The later statement of a changed value (some say that it changed, some do not).
UPDATES = (
    "Update: the {p} {noun} is now {v}.",
    "The {p} {noun} changed to {v}.",
    "New {noun} for {p}: {v}.",
    "The {noun} for {p} is {v} from now on.",
    "The {noun} for {p} is {v}, not {old}.",
    "Looks like the {p} {noun} will be {v}.",
)
SINGLE_QUESTIONS = (
    "What is the {p} {noun}?",
    "What's the {noun} for {p}?",
    "Remind me, what is the {noun} of {p}?",
)
CHANGED_QUESTIONS = (
    "What is the {p} {noun} now?",
    "What is the current {noun} for {p}?",
    "What's the latest {p} {noun}?",
)
# Hard negatives: every key term of a single or changed question, no value.
MENTIONS = (
    "Can we go over the {p} {noun} on Friday?",
    "Is the {p} {noun} written down anywhere?",
    "I'll bring up the {noun} for {p} in the sync.",
)
MULTI_TWO_PROJECTS = (
    "Compare the {p} {noun} with the {q} {noun}.",
    "What are the {noun} for {p} and the {noun} for {q}?",
)
MULTI_TWO_ATTRS = (
    "What are the {noun} and the {noun2} for {p}?",
    "For {p}, what are the {noun} and the {noun2}?",
)

# inflected: (question form, other forms). Every form of a row has one Snowball stem; the
# question form's and the others' surface forms differ.
VERBS: tuple[tuple[str, str, str], ...] = (  # 3rd person, -ing, -ed
    ("coordinates", "coordinating", "coordinated"),
    ("manages", "managing", "managed"),
    ("reviews", "reviewing", "reviewed"),
    ("plans", "planning", "planned"),
    ("handles", "handling", "handled"),
    ("supervises", "supervising", "supervised"),
    ("tests", "testing", "tested"),
    ("organizes", "organizing", "organized"),
    ("schedules", "scheduling", "scheduled"),
)
NOUNS: tuple[tuple[str, str, str | None], ...] = (  # singular, plural, gerund
    ("migration", "migrations", "migrating"),
    ("redesign", "redesigns", "redesigning"),
    ("rollout", "rollouts", None),
    ("integration", "integrations", "integrating"),
    ("evaluation", "evaluations", "evaluating"),
    ("audit", "audits", "auditing"),
    ("upgrade", "upgrades", "upgrading"),
    ("benchmark", "benchmarks", "benchmarking"),
    ("consolidation", "consolidations", "consolidating"),
)
INFLECTED_QUESTIONS = (
    "Who {v3} the {p} {n}?",
    "Do you know who {v3} the {n} for {p}?",
)
INFLECTED_EVIDENCE = (
    "{who} has been {ving} the {p} {npl} since {month}.",
    "{who} {ved} the early {p} {npl} and keeps {ving} them.",
)
INFLECTED_EVIDENCE_GERUND = ("{who} is {ving} the work of {nger} {p}.",)
# distractors: the question's own forms about another project; the project and the noun
# with another verb
SAME_FORMS = ("{who} {v3} the {p} {n}.", "As far as I know {who} {v3} the {p} {n}.")
OTHER_VERB = ("{who} {ved} the {p} {n} last week.", "The {p} {n} was {ved} by {who}.")

# Chatter about a project: no values.
CHATTER = (
    "Pushed a fix to the {p} repo, reviews welcome.",
    "The {p} dashboards look green today.",
    "Who's joining the {p} sync later?",
    "{p} CI is red again, looking into it.",
    "I'll share the {p} slides after lunch.",
    "Any blockers on {p}?",
    "Nice work on {p}, everyone!",
    "I left comments on the {p} design doc.",
    "The {p} retro is on Thursday this time.",
    "Can someone pair with me on a {p} bug?",
    "The {p} release notes are in the wiki.",
    "Heads up: {p} staging is down for an hour.",
    "I'm out tomorrow, ping {who} about {p}.",
    "The {p} customer call went well.",
    "Let's keep {p} on the agenda for next week.",
    "We should write a postmortem for the {p} outage.",
)
# Chatter with attribute or work words and no project.
WORD_CHATTER = (
    "Finance wants every budget number by Friday.",
    "Deadlines are tight this quarter.",
    "Which database do we use for analytics?",
    "The hosting vendor invoices are late again.",
    "Is anyone going to the launch party?",
    "Demo day is always chaotic.",
    "Our uptime was great last month.",
    "The standup ran long today.",
    "Headcount planning starts next month.",
    "We need a first customer story for the blog.",
    "The migration guide needs an update.",
    "Who handles the on-call rota this month?",
    "Security wants an audit of every service.",
)
#: bench_memory's chit-chat, and a few lines of a meeting (the same turns as its corpus has,
#: so the two benchmarks' filler reads alike)
FILLER = (
    *_corpus.FILLER,
    "sorry, I was on mute",
    "+1",
    "can you share your screen?",
    "I'll be five minutes late",
    "anything else for today?",
)


@dataclass(frozen=True)
class Turn:
    session: str
    speaker: str
    text: str
    #: ISO 8601, UTC
    time: str

    @property
    def content(self) -> str:
        """The turn as ``learn --format chat`` stores it."""
        return f"{self.speaker}: {self.text}"


@dataclass(frozen=True)
class Question:
    category: str
    question: str
    #: contents ("Speaker: text") of the evidence turns, oldest first; for ``changed`` the
    #: last one is the current value
    evidence: tuple[str, ...]
    #: lowercase words as the question writes them: the project and the attribute's words
    #: (single, reply, multi, changed), or the verb and noun whose other inflections the
    #: evidence uses (inflected)
    key_terms: tuple[str, ...]
    #: the project(s) asked about
    projects: tuple[str, ...]


@dataclass
class Conversation:
    turns: list[Turn]
    questions: list[Question]
    seed: int = 7
    counts: dict[str, int] = field(default_factory=dict)

    def jsonl(self) -> str:
        """The conversation as ``learn --format chat`` reads JSON Lines."""
        return "".join(
            json.dumps({"speaker": t.speaker, "text": t.text, "session": t.session, "time": t.time})
            + "\n"
            for t in self.turns
        )


@dataclass
class _Slot:
    """A turn to be: its text, and a name its speaker must not have."""

    text: str
    avoid: str = ""
    turn: Turn | None = None


@dataclass
class _Session:
    length: int
    speakers: list[str]
    focus: list[str]
    blocks: list[list[_Slot]] = field(default_factory=list)

    @property
    def used(self) -> int:
        return sum(len(b) for b in self.blocks)


@dataclass
class _Pending:
    """A question whose evidence turns get their speakers (and so contents) at the end."""

    category: str
    question: str
    evidence: list[_Slot]
    key_terms: tuple[str, ...]
    projects: tuple[str, ...]


_WORD = re.compile(r"[a-z0-9]+")


def _key_words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(text.lower()))


class _Builder:
    def __init__(self, sessions: int, questions: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n_questions = questions
        r = self.rng
        n_projects = max(12, min(len(PROJECTS), round(sessions / 7.5)))
        self.projects = r.sample(PROJECTS, n_projects)
        self.sessions: list[_Session] = []
        for _ in range(sessions):
            focus = [r.choice(self.projects)]
            if r.random() < 0.4:
                focus.append(r.choice(self.projects))
            self.sessions.append(_Session(r.randint(8, 15), r.sample(TEAM, r.randint(2, 4)), focus))
        combos = [(p, a) for p in self.projects for a in range(len(ATTRS))]
        r.shuffle(combos)
        self.free = combos  # (project, attribute) pairs no question or statement uses yet
        self.background: set[tuple[str, int]] = set()
        self.work = [(p, n) for p in self.projects for n in range(len(NOUNS))]
        r.shuffle(self.work)
        self.texts: set[str] = set()  # texts of evidence turns: each must be unique
        self.pending: list[_Pending] = []

    # -- placement ---------------------------------------------------------------------
    def place(
        self,
        texts: list[_Slot],
        project: str,
        lo: int = 0,
        hi: int | None = None,
        avoid: Collection[int] = (),
    ) -> int:
        """Put ``texts`` (consecutive turns) into a session in [lo, hi) not in ``avoid``;
        prefer one with room, else lengthen one. Returns the session's index."""
        r = self.rng
        hi = len(self.sessions) if hi is None else hi
        choices = [i for i in range(lo, hi) if i not in avoid] or [
            i for i in range(len(self.sessions)) if i not in avoid
        ]
        roomy = [
            i for i in choices if self.sessions[i].length - self.sessions[i].used >= len(texts)
        ]
        i = r.choice(roomy or choices)
        s = self.sessions[i]
        s.blocks.append(texts)
        s.length = max(s.length, s.used)
        if project not in s.focus:
            s.focus.append(project)
        return i

    def unique(self, make: Callable[[], str]) -> str:
        for _ in range(200):
            text = make()
            if text not in self.texts:
                self.texts.add(text)
                return text
        raise RuntimeError("no unique evidence text; use fewer questions")

    def take_combo(self, attr: int | None = None, project: str | None = None) -> tuple[str, int]:
        for k, (p, a) in enumerate(self.free):
            if (attr is None or a == attr) and (project is None or p == project):
                return self.free.pop(k)
        raise ValueError("not enough projects for so many questions; use fewer questions")

    def statement(self, p: str, a: int, v: str) -> str:
        return self.rng.choice(STATEMENTS).format(p=p, noun=ATTRS[a].noun, v=v)

    def distract(self, p: str, a: int, avoid: set[int]) -> None:
        """Another session on the same project, and the same attribute of another project
        (a statement when one is free, else a mention), outside the evidence sessions."""
        r = self.rng
        who = r.choice(TEAM)
        self.place([_Slot(r.choice(CHATTER).format(p=p, who=who))], p, avoid=avoid)
        others = [(q, b) for q, b in self.free if b == a and q != p]
        if others and r.random() < 0.5:
            q, _ = others[0]
            self.free.remove((q, a))
            self.background.add((q, a))
            text = self.statement(q, a, ATTRS[a].value(r))
        else:
            q = r.choice([x for x in self.projects if x != p])
            text = r.choice(MENTIONS).format(p=q, noun=ATTRS[a].noun)
        self.place([_Slot(text)], q, avoid=avoid)

    def mention(self, p: str, a: int, avoid: set[int]) -> None:
        if self.rng.random() < 0.5:
            text = self.rng.choice(MENTIONS).format(p=p, noun=ATTRS[a].noun)
            self.place([_Slot(text)], p, avoid=avoid)

    def key_terms(self, p: str, *attrs: int) -> tuple[str, ...]:
        words = [p.lower()]
        for a in attrs:
            words += [w for w in _key_words(ATTRS[a].noun) if w not in words]
        return tuple(words)

    # -- categories --------------------------------------------------------------------
    def single(self) -> None:
        r = self.rng
        p, a = self.take_combo()
        v = ATTRS[a].value(r)
        slot = _Slot(self.unique(lambda: self.statement(p, a, v)))
        at = self.place([slot], p)
        q = r.choice(SINGLE_QUESTIONS).format(p=p, noun=ATTRS[a].noun)
        self.pending.append(_Pending("single", q, [slot], self.key_terms(p, a), (p,)))
        self.distract(p, a, {at})
        self.mention(p, a, {at})

    def reply(self) -> None:
        r = self.rng
        p, a = self.take_combo()
        attr = ATTRS[a]
        ask = _Slot(r.choice(attr.asks).format(p=p))
        answer = _Slot(self.unique(lambda: r.choice(attr.replies).format(v=attr.value(r))))
        at = self.place([ask, answer], p)
        q = r.choice(attr.reply_questions).format(p=p)
        self.pending.append(_Pending("reply", q, [answer], self.key_terms(p, a), (p,)))
        self.distract(p, a, {at})

    def inflected(self) -> None:
        r = self.rng
        if not self.work:
            raise ValueError("not enough projects for so many questions; use fewer questions")
        p, n = self.work.pop()
        noun, plural, gerund = NOUNS[n]
        v3, ving, ved = r.choice(VERBS)
        who = r.choice(TEAM)
        forms = {"who": who, "p": p, "v3": v3, "ving": ving, "ved": ved, "npl": plural}
        templates = INFLECTED_EVIDENCE + (INFLECTED_EVIDENCE_GERUND if gerund else ())
        text = r.choice(templates).format(month=r.choice(MONTHS), nger=gerund, **forms)
        slot = _Slot(self.unique(lambda: text), avoid=who)
        at = self.place([slot], p)
        q = r.choice(INFLECTED_QUESTIONS).format(v3=v3, p=p, n=noun)
        self.pending.append(_Pending("inflected", q, [slot], (v3, noun), (p,)))
        # the question's forms about two other projects (whose work with this noun nobody
        # asks about), and this project's noun with another verb
        for _ in range(2):
            others = [(x, m) for x, m in self.work if m == n and x != p]
            if not others:
                break
            x, _m = others[0]
            self.work.remove((x, n))
            who2 = r.choice(TEAM)
            d = r.choice(SAME_FORMS).format(who=who2, v3=v3, p=x, n=noun)
            self.place([_Slot(d, avoid=who2)], x, avoid={at})
        other = r.choice([row for row in VERBS if row[0] != v3])
        who3 = r.choice(TEAM)
        d = r.choice(OTHER_VERB).format(who=who3, ved=other[2], p=p, n=noun)
        self.place([_Slot(d, avoid=who3)], p, avoid={at})
        self.place([_Slot(r.choice(CHATTER).format(p=p, who=r.choice(TEAM)))], p, avoid={at})

    def multi(self) -> None:
        r = self.rng
        if r.random() < 0.5:  # one attribute of two projects
            by_attr = Counter(b for _, b in self.free)
            a = next((b for _, b in self.free if by_attr[b] >= 2), -1)
            if a < 0:
                raise ValueError("not enough projects for so many questions; use fewer")
            p, _ = self.take_combo(attr=a)
            p2, _ = self.take_combo(attr=a)
            attrs = (a, a)
            q = r.choice(MULTI_TWO_PROJECTS).format(p=p, q=p2, noun=ATTRS[a].noun)
            keys = (*self.key_terms(p, a), p2.lower())
            pairs = [(p, a), (p2, a)]
        else:  # two attributes of one project
            by_project = Counter(x for x, _ in self.free)
            p = next((x for x, _ in self.free if by_project[x] >= 2), "")
            if not p:
                raise ValueError("not enough projects for so many questions; use fewer")
            _, a = self.take_combo(project=p)
            _, b = self.take_combo(project=p)
            attrs = (a, b)
            noun, noun2 = ATTRS[a].noun, ATTRS[b].noun
            q = r.choice(MULTI_TWO_ATTRS).format(p=p, noun=noun, noun2=noun2)
            keys = self.key_terms(p, a, b)
            pairs = [(p, a), (p, b)]
        slots: list[_Slot] = []
        at: set[int] = set()
        for x, y in pairs:
            v = ATTRS[y].value(r)
            slot = _Slot(self.unique(partial(self.statement, x, y, v)))
            slots.append(slot)
            at.add(self.place([slot], x, avoid=at))
        self.pending.append(
            _Pending("multi", q, slots, keys, tuple(dict.fromkeys(x for x, _ in pairs)))
        )
        self.distract(p, attrs[0], at)
        self.distract(pairs[1][0], attrs[1], at)

    def changed(self) -> None:
        r = self.rng
        n = len(self.sessions)
        p, a = self.take_combo()
        attr = ATTRS[a]
        old = attr.value(r)
        new = old
        while new == old:
            new = attr.value(r)
        first = _Slot(self.unique(lambda: self.statement(p, a, old)))
        later = _Slot(
            self.unique(lambda: r.choice(UPDATES).format(p=p, noun=attr.noun, v=new, old=old))
        )
        # the first in the first 60% of the sessions, the change at least a tenth later
        i = self.place([first], p, 0, max(1, int(n * 0.6)))
        j = self.place([later], p, i + max(1, n // 10), n, avoid={i})
        assert j > i
        q = r.choice(CHANGED_QUESTIONS).format(p=p, noun=attr.noun)
        self.pending.append(_Pending("changed", q, [first, later], self.key_terms(p, a), (p,)))
        self.distract(p, a, {i, j})
        self.mention(p, a, {i, j})

    # -- assembly ----------------------------------------------------------------------
    def fill_and_date(self) -> list[Turn]:
        r = self.rng
        # background facts: a tenth of the attributes nobody asks about
        for _ in range(len(self.free) // 10):
            p, a = self.free.pop()
            self.background.add((p, a))
            self.place([_Slot(self.statement(p, a, ATTRS[a].value(r)))], p)
        turns: list[Turn] = []
        when = START
        for number, s in enumerate(self.sessions):
            blocks = list(s.blocks)
            for _ in range(s.length - s.used):
                roll = r.random()
                if roll < 0.35:
                    p = r.choice(s.focus) if r.random() < 0.7 else r.choice(self.projects)
                    text = r.choice(CHATTER).format(p=p, who=r.choice(TEAM))
                elif roll < 0.45:
                    text = r.choice(WORD_CHATTER)
                else:
                    text = r.choice(FILLER)
                blocks.append([_Slot(text)])
            r.shuffle(blocks)
            name = f"s{number + 1:03d} {when:%Y-%m-%d}"
            previous = ""
            for block in blocks:
                for slot in block:
                    # not the one who spoke last, never the person the turn talks about
                    pool = [x for x in s.speakers if x not in (previous, slot.avoid)]
                    pool = pool or [x for x in s.speakers if x != slot.avoid] or s.speakers
                    speaker = r.choice(pool)
                    slot.turn = Turn(name, speaker, slot.text, when.isoformat(timespec="seconds"))
                    turns.append(slot.turn)
                    previous = speaker
                    when += timedelta(seconds=r.randint(15, 180))
            when += timedelta(hours=r.uniform(2, 40))
        return turns

    def build(self) -> tuple[list[Turn], list[Question]]:
        makers = {
            "single": self.single,
            "reply": self.reply,
            "inflected": self.inflected,
            "multi": self.multi,
            "changed": self.changed,
        }
        # interleaved, so that no category gets the leftovers of the pools
        for _ in range(self.n_questions):
            for category in CATEGORIES:
                makers[category]()
        turns = self.fill_and_date()
        counts = Counter(t.content for t in turns)
        questions: list[Question] = []
        for pq in self.pending:
            evidence = []
            for slot in pq.evidence:
                assert slot.turn is not None
                content = slot.turn.content
                if counts[content] != 1:
                    raise RuntimeError(f"evidence turn is not unique: {content!r}")
                evidence.append(content)
            questions.append(
                Question(pq.category, pq.question, tuple(evidence), pq.key_terms, pq.projects)
            )
        self.rng.shuffle(questions)
        return turns, questions


def generate(sessions: int = 300, questions: int = 40, seed: int = 7) -> Conversation:
    """``sessions`` sessions and ``questions`` questions per category; same arguments, same
    conversation."""
    if sessions < 10:
        raise ValueError("sessions must be at least 10")
    if questions < 1:
        raise ValueError("questions must be at least 1")
    b = _Builder(sessions, questions, seed)
    turns, qs = b.build()
    counts = {
        "sessions": sessions,
        "turns": len(turns),
        "distinct": len({t.content for t in turns}),
        "projects": len(b.projects),
        "speakers": len({t.speaker for t in turns}),
        "background_facts": len(b.background),
        "questions": len(qs),
    }
    return Conversation(turns, qs, seed, counts)
