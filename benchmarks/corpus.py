"""A seeded, deterministic long-horizon corpus for the memory benchmarks.

``generate(n_turns, seed)`` returns thousands of dialogue turns (remember items, oldest
first) about people, projects, services and meetings, mixed with repeated filler and
question-like mentions that share a fact's words but not its value (hard negatives), and
questions with the lowercase keywords their answer must contain.

What makes it hard for a sharded memory, and for plain BM25:

* exact identifiers and numbers (``PRJ-4471``, ``8443``, ``4.2.17``) next to near twins
  (``PRJ-4417``; ``ledger-sync`` vs ``ledger-proxy``; ``Sarah Chen`` vs ``Sarah Chan``);
* facts that change over time: the same ``subject`` is stated again later with a larger
  ``created``; the question asks for the current value and its keywords are the newest one;
* mentions such as "Does anyone know Sarah Chen's birthday?" that match a question's words
  better than the answer does, but carry no value;
* multi-word topics ("quarterly security review") whose words are each shared by many facts.

Keywords always hold the thing asked about *and* its value (``["prj-4471", "482000"]``), so a
hit about a twin or an outdated statement never counts as an answer. Every value of one kind
has a fixed shape (six-digit budgets, four-digit ports, ordinal days, ...), so no value is a
substring of another; ``tests/test_bench_corpus.py`` checks the guarantees.

Only the standard library's ``random.Random(seed)`` is used: same arguments, same corpus.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

#: Time of the first turn (2024-01-01 UTC); turns are ``TURN_SECONDS`` apart.
BASE_TIME = 1_704_067_200.0
TURN_SECONDS = 45.0


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Name pools: no first name is a suffix of another and no last name a prefix of another, so
# no full name is a substring of a different full name (checked below).
FIRST_NAMES = _words(
    "Sarah Sara Tom Priya Miguel Aisha Kenji Olga Liam Noor Mateo Yuki Fatima Jonas Elena "
    "Ravi Chloe Omar Ingrid Tariq Lucia Dmitri Amara Felix Hana Wei Zara Pedro Leila Marcus "
    "Ines Kofi Greta Arjun Maya Diego Sofia Emeka Lena Hugo Nadia Bjorn Carmen Rohan Elif "
    "Tomas Ayla Viktor Rosa Samir Julia Kwame Astrid Nikhil Paula Idris Mei Oscar Selin"
)
LAST_NAMES = _words(
    "Chen Chan Ito Patel Garcia Khan Tanaka Ivanova Murphy Haddad Rossi Sato Ali Weber "
    "Popescu Rao Dubois Farouk Larsen Aziz Moreno Volkov Okafor Schmidt Kim Zhang Mensah "
    "Silva Nasser Brooks Novak Owusu Berg Iyer Lopez Herrera Costa Eze Fischer Laurent "
    "Petrov Holm Ortiz Gupta Yilmaz Santos Wagner Boateng Lindqvist Mehta Suzuki Rahman "
    "Kowalski Nguyen Adeyemi Jensen Ferreira Duarte Park Hughes"
)
ROLES = (
    "staff engineer",
    "senior engineer",
    "principal engineer",
    "product manager",
    "engineering manager",
    "data scientist",
    "site reliability engineer",
    "ux researcher",
    "technical writer",
    "security analyst",
    "solutions architect",
    "qa lead",
)
TEAMS = (
    "data platform",
    "payments",
    "mobile apps",
    "search quality",
    "developer tools",
    "growth",
    "identity",
    "observability",
    "billing",
    "infrastructure",
    "support tooling",
    "machine learning",
)
CITIES = _words(
    "Lisbon Austin Nairobi Osaka Berlin Toronto Melbourne Dublin Warsaw Seoul Bogota "
    "Helsinki Accra Montreal Kyoto Porto Denver Oslo Madrid Chennai Istanbul Prague"
)
MONTHS = _words(
    "January February March April May June July August September October November December"
)
SERVICE_HEADS = _words(
    "ledger billing search auth media orders invoice catalog payments notify audit metrics"
)
SERVICE_TAILS = _words("sync proxy gateway worker indexer scheduler cache api router exporter")
CADENCES = _words("daily weekly fortnightly monthly quarterly yearly")
AREAS = _words("security payments platform mobile data infra design growth hiring support")
EVENTS = _words("review sync planning retro demo standup offsite briefing")
ROOMS = _words(
    "Orion Vega Lyra Altair Rigel Sirius Deneb Antares Polaris Castor Pollux Mira Electra "
    "Capella Arcturus Spica Bellatrix Nova"
)
DAYS = _words("Mondays Tuesdays Wednesdays Thursdays Fridays")

FILLER = (
    "ok sounds good",
    "let me check",
    "thanks!",
    "will do",
    "sure, one sec",
    "got it, thanks",
    "can we pick this up tomorrow?",
    "sorry, I was in another meeting",
    "makes sense to me",
    "I'll get back to you on that",
    "lol yes",
    "agreed",
    "no worries",
    "ping me when you're free",
    "brb, coffee",
    "hmm, not sure",
    "that works",
    "good morning everyone",
    "see you at standup",
    "great, thank you",
)
PREFIXES = ("", "", "", "fyi, ", "Quick note: ", "Just so you know, ", "For the record, ")

# Per attribute: initial statement, update statement, question, question when changed,
# mention (no value). Placeholders: {s} the thing asked about, {v} the value.
TEMPLATES: dict[str, tuple[str, str, str, str, str]] = {
    "birthday": (
        "{s}'s birthday is {v}.",
        "Correction: {s}'s birthday is actually {v}.",
        "When is {s}'s birthday?",
        "When is {s}'s birthday?",
        "Does anyone know {s}'s birthday? I want to plan something.",
    ),
    "role": (
        "{s}'s role is {v}.",
        "Update: {s} was promoted, so {s}'s role is now {v}.",
        "What is {s}'s role?",
        "What is {s}'s current role?",
        "I keep forgetting what {s}'s role is these days.",
    ),
    "team": (
        "{s} is on the {v} team.",
        "After the reorg {s} is on the {v} team.",
        "Which team is {s} on?",
        "Which team is {s} on now?",
        "Did {s} switch teams again?",
    ),
    "city": (
        "{s} is based in {v}.",
        "{s} relocated and is now based in {v}.",
        "Where is {s} based?",
        "Where is {s} based now?",
        "Has {s} moved? I lost track of where {s} is based.",
    ),
    "budget": (
        "The budget of {s} is {v} dollars.",
        "Heads up: the budget of {s} was revised to {v} dollars.",
        "What is the budget of {s}?",
        "What is the current budget of {s}?",
        "Can someone remind me what the budget of {s} is?",
    ),
    "deadline": (
        "The deadline for {s} is {v}.",
        "The deadline for {s} slipped to {v}.",
        "When is the deadline for {s}?",
        "What is the deadline for {s} now?",
        "I need the deadline for {s} before the planning call.",
    ),
    "lead": (
        "{s} is led by {v}.",
        "{s} has a new lead: it is now led by {v}.",
        "Who leads {s}?",
        "Who leads {s} now?",
        "Who is the lead of {s} these days?",
    ),
    "headcount": (
        "The headcount of {s} is {v}.",
        "The headcount of {s} grew to {v}.",
        "What is the headcount of {s}?",
        "What is the headcount of {s} now?",
        "Do we know the headcount of {s} yet?",
    ),
    "port": (
        "The {s} service uses port {v}.",
        "The {s} service now uses port {v}.",
        "Which port does the {s} service use?",
        "Which port does the {s} service use now?",
        "Which port was {s} on again?",
    ),
    "version": (
        "{s} runs version {v} in production.",
        "{s} was upgraded and runs version {v} in production.",
        "What version of {s} runs in production?",
        "What version of {s} runs in production now?",
        "Is anyone tracking which version of {s} is deployed?",
    ),
    "room": (
        "The {s} is held in room {v} on {day}.",
        "The {s} has moved to room {v}.",
        "Where is the {s} held?",
        "Where is the {s} held now?",
        "Where is the {s} held? I keep forgetting.",
    ),
}
# Questions in other words than the fact's (used for a quarter of the questions): a lexical
# retriever finds these only through the identifier's own terms.
PARAPHRASES: dict[str, tuple[str, str]] = {
    "birthday": ("What day was {s} born?", "What day was {s} born?"),
    "role": ("What does {s} do for a living?", "What does {s} do these days?"),
    "team": ("Who does {s} work with?", "Who does {s} work with now?"),
    "city": ("Which city should I visit to meet {s}?", "Which city should I visit to meet {s}?"),
    "budget": ("How much money was allocated to {s}?", "How much money does {s} have now?"),
    "deadline": ("By which date must {s} ship?", "By which date must {s} ship now?"),
    "lead": ("Who is in charge of {s}?", "Who is in charge of {s} now?"),
    "headcount": ("How many engineers work on {s}?", "How many engineers work on {s} now?"),
    "port": ("How do I connect to {s}?", "How do I connect to {s} now?"),
    "version": ("Which release of {s} is live?", "Which release of {s} is live now?"),
    "room": ("Where do we meet for the {s}?", "Where do we meet for the {s} now?"),
}
CATEGORY_OF = {
    "budget": "identifier",
    "deadline": "identifier",
    "lead": "identifier",
    "birthday": "person",
    "role": "person",
    "team": "person",
    "city": "person",
    "headcount": "number",
    "port": "number",
    "version": "number",
    "room": "multiword",
}
CHANGEABLE = frozenset({"role", "team", "city", "budget", "deadline", "lead", "version", "room"})
#: Share of questions per category.
CATEGORY_WEIGHTS = {
    "identifier": 0.25,
    "person": 0.25,
    "number": 0.15,
    "changed": 0.20,
    "multiword": 0.15,
}


@dataclass(frozen=True)
class Question:
    question: str
    #: lowercase strings that all appear verbatim (case-insensitively) in the answering turn
    keywords: list[str]
    #: identifier | person | number | changed | multiword
    category: str
    subject: str = ""
    #: the content of the answering turn (the newest statement for changed facts)
    answer: str = ""
    #: asked in other words than the facts' ("Who is in charge of PRJ-1?" for "led by")
    paraphrased: bool = False


@dataclass
class Corpus:
    #: remember items, oldest first: {"content", "kind", "metadata", "subject"?, "created"}
    turns: list[dict[str, Any]]
    questions: list[Question]
    seed: int = 7
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class _Subject:
    key: str  # e.g. "project:prj-4471:budget"
    attr: str
    shown: str  # how the thing appears in text: "PRJ-4471", "Sarah Chen"
    values: list[str]  # initial value, then each update's value
    extra: dict[str, str] = field(default_factory=dict)


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _no_substring_pairs(names: list[str]) -> bool:
    low = [n.lower() for n in names]
    return not any(a != b and a in b for a in low for b in low)


def _check_pools() -> None:
    assert not any(a != b and b.endswith(a) for a in FIRST_NAMES for b in FIRST_NAMES)
    assert not any(a != b and b.startswith(a) for a in LAST_NAMES for b in LAST_NAMES)
    for pool in (ROLES, TEAMS, CITIES, ROOMS, SERVICE_HEADS, SERVICE_TAILS, CADENCES):
        assert _no_substring_pairs(list(pool)), pool


_check_pools()


class _Builder:
    def __init__(self, n_turns: int, seed: int) -> None:
        self.n_turns = n_turns
        self.rng = random.Random(seed)
        self.subjects: list[_Subject] = []
        self.people: list[str] = []
        self.mentions: dict[str, int] = {}

    # -- values ----------------------------------------------------------------------
    def value(self, attr: str) -> str:
        r = self.rng
        if attr == "birthday":
            return f"{r.choice(MONTHS)} {_ordinal(r.randint(1, 28))}"
        if attr == "role":
            return r.choice(ROLES)
        if attr == "team":
            return r.choice(TEAMS)
        if attr == "city":
            return r.choice(CITIES)
        if attr == "budget":
            return f"{r.randint(100, 999)}000"
        if attr == "deadline":
            return f"2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
        if attr == "lead":
            return r.choice(self.people)
        if attr == "headcount":
            return f"{r.randint(10, 99)} engineers"
        if attr == "port":
            return str(r.randint(1024, 9999))
        if attr == "version":
            return f"{r.randint(1, 9)}.{r.randint(0, 9)}.{r.randint(10, 99)}"
        if attr == "room":
            return r.choice(ROOMS)
        raise ValueError(attr)

    def new_value(self, attr: str, old: list[str]) -> str:
        for _ in range(1000):
            v = self.value(attr)
            if all(v.lower() not in o.lower() and o.lower() not in v.lower() for o in old):
                return v
        raise RuntimeError(f"no fresh value for {attr}")

    # -- entities --------------------------------------------------------------------
    def entities(self) -> None:
        r = self.rng
        facts_budget = int(self.n_turns * 0.55)
        n_entities = max(8, round(facts_budget / 3.6))
        names = [f"{f} {ln}" for f in FIRST_NAMES for ln in LAST_NAMES]
        r.shuffle(names)
        n_people = min(len(names), max(4, round(n_entities * 0.40)))
        self.people = names[:n_people]
        # near twins come from the pools: Sarah/Sara, Chen/Chan, and at a few hundred people
        # many share a first or a last name
        codes: list[str] = []
        seen: set[str] = set()
        n_projects = max(3, round(n_entities * 0.30))
        while len(codes) < n_projects:
            digits = f"{r.randint(1000, 9999)}"
            if digits in seen:
                continue
            codes.append(digits)
            seen.add(digits)
            if r.random() < 0.35 and len(codes) < n_projects:  # a twin with two digits swapped
                i = r.randrange(3)
                twin = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
                if twin[0] != "0" and twin not in seen:
                    codes.append(twin)
                    seen.add(twin)
        services = [f"{h}-{t}" for h in SERVICE_HEADS for t in SERVICE_TAILS]
        r.shuffle(services)
        services = services[: min(len(services), max(2, round(n_entities * 0.15)))]
        topics = [f"{c} {a} {e}" for c in CADENCES for a in AREAS for e in EVENTS]
        r.shuffle(topics)
        topics = topics[: min(len(topics), max(2, round(n_entities * 0.15)))]

        def add(kind: str, slug: str, shown: str, attrs: tuple[str, ...]) -> None:
            for attr in attrs:
                self.subjects.append(
                    _Subject(f"{kind}:{slug}:{attr}", attr, shown, [self.value(attr)])
                )

        for name in self.people:
            add(
                "person", name.lower().replace(" ", "-"), name, ("birthday", "role", "team", "city")
            )
        for digits in codes:
            add(
                "project",
                f"prj-{digits}",
                f"PRJ-{digits}",
                ("budget", "deadline", "lead", "headcount"),
            )
        for svc in services:
            add("service", svc, svc, ("port", "version"))
        for topic in topics:
            add("meeting", topic.replace(" ", "-"), topic, ("room",))
        for s in self.subjects:
            if s.attr == "room":
                s.extra["day"] = r.choice(DAYS)
            if s.attr in CHANGEABLE and r.random() < 0.12:
                s.values.append(self.new_value(s.attr, s.values))
                if r.random() < 0.25:
                    s.values.append(self.new_value(s.attr, s.values))

    # -- turns -----------------------------------------------------------------------
    def timeline(self) -> tuple[list[dict[str, Any]], dict[str, str]]:
        r = self.rng
        keyed: list[tuple[float, dict[str, Any]]] = []
        newest: dict[str, str] = {}
        for s in self.subjects:
            key = r.random() * 0.8
            for i, v in enumerate(s.values):
                template = TEMPLATES[s.attr][0 if i == 0 else 1]
                text = template.format(s=s.shown, v=v, **s.extra)
                prefix = r.choice(PREFIXES) if i == 0 else ""
                if prefix and text.startswith("The "):
                    text = "the " + text[4:]
                text = prefix + text
                text = text[0].upper() + text[1:]
                if i > 0:
                    key = key + (1.0 - key) * r.uniform(0.15, 0.9)
                item: dict[str, Any] = {"content": text, "kind": "semantic", "subject": s.key}
                keyed.append((key, item))
                newest[s.key] = text
        n_rest = max(0, self.n_turns - len(keyed))
        n_mentions = round(n_rest * 0.30)
        # a few subjects are talked about a lot (Zipf): their mentions crowd out the answer
        popular = list(self.subjects)
        r.shuffle(popular)
        zipf = [1.0 / (rank + 1) for rank in range(len(popular))]
        for s in r.choices(popular, weights=zipf, k=n_mentions):
            self.mentions[s.key] = self.mentions.get(s.key, 0) + 1
            text = TEMPLATES[s.attr][4].format(s=s.shown)
            # first names only: "Tom Ito: who leads PRJ-1?" would answer "who leads PRJ-1"
            keyed.append((r.random(), {"content": f"{r.choice(FIRST_NAMES)}: {text}"}))
        for _ in range(n_rest - n_mentions):
            text = r.choice(FILLER)
            if r.random() < 0.3:
                text = f"{r.choice(self.people)}: {text}"
            keyed.append((r.random(), {"content": text, "kind": "episodic"}))
        keyed.sort(key=lambda kv: kv[0])
        turns: list[dict[str, Any]] = []
        for i, (_, item) in enumerate(keyed):
            item.setdefault("kind", "episodic")
            item["metadata"] = {"turn": i}
            item["created"] = BASE_TIME + i * TURN_SECONDS
            turns.append(item)
        return turns, newest

    def questions(self, newest: dict[str, str]) -> list[Question]:
        r = self.rng
        n_questions = max(30, self.n_turns // 12)
        pools: dict[str, list[_Subject]] = {c: [] for c in CATEGORY_WEIGHTS}
        for s in self.subjects:
            pools["changed" if len(s.values) > 1 else CATEGORY_OF[s.attr]].append(s)
        out: list[Question] = []
        for category, weight in CATEGORY_WEIGHTS.items():
            pool = pools[category]
            # questions favour what is talked about (weighted sampling without replacement,
            # Efraimidis-Spirakis keys)
            keyed = sorted(
                pool, key=lambda s: -(r.random() ** (1.0 / (1 + self.mentions.get(s.key, 0))))
            )
            for s in keyed[: round(weight * n_questions)]:
                changed = len(s.values) > 1
                paraphrased = r.random() < 0.25
                if paraphrased:
                    template = PARAPHRASES[s.attr][1 if changed else 0]
                else:
                    template = TEMPLATES[s.attr][3 if changed else 2]
                text = template.format(s=s.shown)
                keywords = [s.shown.lower(), s.values[-1].lower()]
                out.append(Question(text, keywords, category, s.key, newest[s.key], paraphrased))
        r.shuffle(out)
        return out


def generate(n_turns: int, seed: int = 7) -> Corpus:
    """A corpus of ``n_turns`` remember items and its questions; same arguments, same corpus."""
    if n_turns < 50:
        raise ValueError("n_turns must be at least 50")
    b = _Builder(n_turns, seed)
    b.entities()
    turns, newest = b.timeline()
    questions = b.questions(newest)
    counts: dict[str, int] = {
        "turns": len(turns),
        "distinct": len({t["content"] for t in turns}),
        "facts": sum(1 for t in turns if "subject" in t),
        "changed_subjects": sum(1 for s in b.subjects if len(s.values) > 1),
        "questions": len(questions),
    }
    return Corpus(turns=turns, questions=questions, seed=seed, counts=counts)


_SENSORS = _words("alpha bravo delta echo kilo lima oscar sierra tango zulu")
_UNITS = _words("litres kilowatts lumens decibels pascals newtons amperes")


def filler_facts(n: int, seed: int = 7) -> Iterator[str]:
    """``n`` unique plain facts, fast: for the records-per-agent balance measure."""
    r = random.Random(seed)
    pick = r.choice
    for i in range(n):
        yield (
            f"Reading {i}: sensor {pick(_SENSORS)} in {pick(CITIES)} logged "
            f"{r.randint(1, 99999)} {pick(_UNITS)} at hour {r.randint(0, 23)}."
        )
