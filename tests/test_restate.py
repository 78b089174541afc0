"""Newest first without hand-made subjects: a newer fact that restates an older one with a
different value ranks first and the older is marked superseded; nothing is ever dropped,
near-duplicates that are both true stay, and a hive answers exactly as one agent."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amplihack_hive import Hive
from amplihack_hive.memory import restate

T0 = 1_764_000_000.0


def recall(facts: list[tuple[str, float]], question: str, agents: int = 3) -> list:
    with Hive.in_process(agents) as hive:
        hive.remember_many([{"content": c, "created": t} for c, t in facts])
        return list(hive.recall(question, 10))


def test_a_newer_value_ranks_first_and_the_older_is_marked_not_dropped() -> None:
    old = "Heron's budget is 1.2 M euros."
    new = "The Heron budget was raised to 1.5 M euros."
    hits = recall([(old, T0), (new, T0 + 3600)], "What is the budget of Project Heron?")
    assert [h.content for h in hits] == [new, old]
    assert hits[0].superseded_by is None and hits[1].superseded_by == hits[0].id


def test_a_replaced_role_holder_comes_after_the_new_one() -> None:
    old = "Dmitri Volkov is the chief technology officer."
    new = "Dmitri Volkov was replaced as chief technology officer by Ana Lucia Ferreira."
    hits = recall([(old, T0), (new, T0 + 60)], "chief technology officer")
    assert [h.content for h in hits] == [new, old] and hits[1].superseded_by == hits[0].id


def test_numbers_that_differ_both_ways_are_a_restatement_without_a_change_word() -> None:
    hits = recall(
        [("The Heron budget is 1.2 M.", T0), ("The Heron budget is 1.5 M.", T0 + 1)],
        "Heron budget",
    )
    assert hits[0].content == "The Heron budget is 1.5 M." and hits[1].superseded_by


def test_near_duplicates_that_are_both_true_both_stay() -> None:
    alice, bob = "Alice is on the Apollo team.", "Bob is on the Apollo team."
    hits = recall([(alice, T0), (bob, T0 + 60)], "Which team is Alice on?")
    assert hits[0].content == alice and all(h.superseded_by is None for h in hits)
    both = recall([(alice, T0), (bob, T0 + 60)], "Who is on the Apollo team?")
    assert {h.content for h in both} == {alice, bob}
    assert all(h.superseded_by is None for h in both)
    french, german = "Maria speaks French at work.", "Maria speaks German at work."
    langs = recall([(french, T0), (german, T0 + 60)], "Which languages does Maria speak?")
    assert {h.content for h in langs} == {french, german}
    assert all(h.superseded_by is None for h in langs)


def test_facts_that_share_only_a_name_are_no_updates_of_each_other() -> None:
    """A change word in the newer fact is not enough: "thanks!" or a city is no older value
    of a promotion, though all three name the same person."""
    facts = [
        ("Zara Aziz: agreed, thanks!", T0),
        ("Zara Aziz is based in Osaka.", T0 + 10),
        ("Ravi: Who is the lead of Zara Aziz's team these days?", T0 + 20),
        ("Update: Zara Aziz was promoted, so her role is now engineering manager.", T0 + 60),
    ]
    hits = recall(facts, "What does Zara Aziz do these days?")
    assert {h.content for h in hits} == {c for c, _ in facts}
    assert all(h.superseded_by is None for h in hits)
    # and the same newer fact still replaces an older value of the same thing
    role = ("Zara Aziz's role is staff engineer.", T0 + 30)
    hits = recall([*facts, role], "What is Zara Aziz's role?")
    assert hits[0].content == facts[3][0]
    assert [h.content for h in hits if h.superseded_by] == [role[0]]


def test_lists_of_facts_of_one_shape_are_not_updates_of_each_other() -> None:
    """Learned one after the other (as one learn does), facts that differ in a name as well
    as a number are different facts."""
    cases = [
        (
            [
                "The Heron project budget is 1.2 M.",
                "The Sparrow project budget is 0.8 M.",
                "The Falcon project budget is 2 M.",
            ],
            "What is the budget of the projects?",
        ),
        (
            ["Ticket PRJ-4471 is assigned to Alice.", "Ticket PRJ-4472 is assigned to Bob."],
            "Who is the ticket assigned to?",
        ),
        (
            ["Alice leads the Heron team.", "Alice leads the new Heron hiring effort."],
            "What does Alice lead?",
        ),
    ]
    for contents, question in cases:
        hits = recall([(c, T0 + i) for i, c in enumerate(contents)], question)
        assert {h.content for h in hits} == set(contents), question
        assert all(h.superseded_by is None for h in hits), question


def test_one_fact_asked_for_is_the_newest_value() -> None:
    """recall -k 1 reads a few facts past the limit: the newer value, ranked second by its
    words alone, is the one."""
    old = "Heron's budget is 1.2 M euros."
    new = "The Heron budget was raised to 1.5 M euros."
    with Hive.in_process(3) as hive:
        hive.remember_many([{"content": c, "created": t} for c, t in [(old, T0), (new, T0 + 1)]])
        assert hive.recall("What is Heron's budget?", 2)[0].content == new
        assert [h.content for h in hive.recall("What is Heron's budget?", 1)] == [new]


def test_subjects_keep_their_newest_first_with_a_restatement_beside_them() -> None:
    """A fact without a subject that restates an older fact of a subject moves up; the
    subject's own newest fact still ranks above the subject's older one."""
    with Hive.in_process(3) as hive:
        hive.remember_many(
            [
                {
                    "content": "The Heron budget is 1.2 M.",
                    "subject": "heron/budget",
                    "created": 100,
                },
                {"content": "The Heron budget was raised to 1.5 M.", "created": 200},
                {
                    "content": "Finance approved 2 M for the Heron budget.",
                    "subject": "heron/budget",
                    "created": 300,
                },
            ]
        )
        order = [h.content for h in hive.recall("Heron budget", 10)]
    assert order.index("Finance approved 2 M for the Heron budget.") < order.index(
        "The Heron budget is 1.2 M."
    )
    assert order.index("The Heron budget was raised to 1.5 M.") < order.index(
        "The Heron budget is 1.2 M."
    )


def test_each_fact_is_read_once_however_long(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cost of the step is one pass over each hit's text (it runs on the agent's loop)."""
    from amplihack_hive.memory import restate

    calls: list[int] = []
    original = restate._own_words

    def counted(content: str) -> set[str]:
        calls.append(len(content))
        return original(content)

    monkeypatch.setattr(restate, "_own_words", counted)
    long = " ".join(f"PRJ-{i} word{i}" for i in range(2000))
    hits = recall([(long, T0), ("PRJ-1 is late.", T0 + 1)], "PRJ-1")
    assert len(hits) == 2
    assert len(calls) <= 3  # the question and each hit, once


def test_a_question_about_the_value_restates_nothing() -> None:
    fact, asked = "Heron's budget is 1.2 M euros.", "Is Heron's budget now 1.5 M euros?"
    hits = recall([(fact, T0), (asked, T0 + 60)], "Heron budget")
    assert all(h.superseded_by is None for h in hits)
    assert hits[0].content in (fact, asked) and len(hits) == 2


def test_explicit_subjects_decide_first() -> None:
    """Two facts with subjects of their own are never taken for one another's update."""
    with Hive.in_process(3) as hive:
        hive.remember_many(
            [
                {"content": "Heron's budget is 1.2 M.", "subject": "heron/budget", "created": T0},
                {
                    "content": "The Heron budget was raised to 1.5 M.",
                    "subject": "heron/forecast",
                    "created": T0 + 60,
                },
            ]
        )
        hits = list(hive.recall("Heron budget", 10))
    assert all(h.superseded_by is None for h in hits)


values = st.sampled_from(["1.2", "1.5", "2.0", "Kyoto", "Oslo", "Denver"])
names = st.sampled_from(["Heron", "Sparrow", "Felix", "Oscar"])
templates = st.sampled_from(
    [
        "The budget of {n} is {v} M.",
        "The budget of {n} was raised to {v} M.",
        "{n} is based in {v}.",
        "{n} relocated and is now based in {v}.",
        "Is {n} based in {v} now?",
    ]
)
facts = st.lists(
    st.builds(lambda t, n, v: t.format(n=n, v=v), templates, names, values),
    min_size=2,
    max_size=8,
    unique=True,
)


@settings(max_examples=40, deadline=None)
@given(facts, names, st.sampled_from(["budget", "based", "now"]))
def test_a_hive_orders_and_marks_exactly_as_one_agent(
    contents: list[str], name: str, word: str
) -> None:
    timeline = [(c, T0 + i) for i, c in enumerate(contents)]
    question = f"What is the {word} of {name}?"
    one = recall(timeline, question, agents=1)
    many = recall(timeline, question, agents=5)
    assert [(h.id, h.superseded_by) for h in many] == [(h.id, h.superseded_by) for h in one]
    assert {h.id for h in many} == {h.id for h in recall(timeline, question, agents=2)}


@pytest.mark.parametrize("created", [1e20, float("inf"), float("nan"), -1.0, True, "today"])
def test_a_time_no_calendar_holds_is_refused(created: object) -> None:
    from amplihack_hive.errors import InvalidInputError

    with Hive.in_process(1) as hive, pytest.raises(InvalidInputError, match="created is Unix"):
        hive.remember("Owls hunt at night", created=created)


def test_a_recall_of_thousands_orders_its_best_and_returns_them_all() -> None:
    from amplihack_hive.errors import InvalidInputError

    with Hive.in_process(3) as hive:
        hive.remember_many(
            [{"content": f"Heron reading {i} is {i} units.", "created": T0 + i} for i in range(300)]
        )
        hits = hive.recall("Heron reading units", 5000)
        assert len(hits) == 300 and len({h.id for h in hits}) == 300
        with pytest.raises(InvalidInputError, match="limit must be from 1 to 10000"):
            hive.recall("Heron", 10_001)


def test_turns_of_two_speakers_restate_one_another_without_their_names() -> None:
    """A conversation's turns start with their speaker (learn --format chat): the update
    may come from another speaker than the value it replaces."""
    old = {"content": "Aisha: The Puffin deadline is September 15.", "created": T0}
    new = {"content": "Marcus: The Puffin deadline changed to March 18.", "created": T0 + 60}
    old["metadata"], new["metadata"] = {"speaker": "Aisha"}, {"speaker": "Marcus"}
    with Hive.in_process(agents=3) as hive:
        hive.remember_many([old, new])
        hits = hive.recall("When is the Puffin deadline?", 5)
    assert hits[0].content == new["content"] and hits[1].superseded_by == hits[0].id


def test_a_change_word_does_not_stop_a_number_from_being_updated() -> None:
    old, new = "Heron Budget: 1.2 M.", "Heron Budget: now 1.5 M."
    hits = recall([(old, T0), (new, T0 + 60)], "Heron budget")
    assert hits[0].content == new and hits[1].superseded_by == hits[0].id


def test_first_person_turns_of_two_speakers_are_two_facts() -> None:
    def turn(speaker: str, text: str, at: float) -> dict[str, object]:
        return {"content": f"{speaker}: {text}", "created": at, "metadata": {"speaker": speaker}}

    with Hive.in_process(agents=3) as hive:
        hive.remember_many(
            [
                turn("Aisha", "My desk is in room 12.", T0),
                turn("Ben", "My desk is in room 14.", T0 + 60),
            ]
        )
        hits = hive.recall("desk room", 5)
    assert len(hits) == 2 and all(h.superseded_by is None for h in hits)


def test_a_fact_with_a_question_in_it_can_still_be_updated() -> None:
    old = "Guess what? The Heron budget is 1.2 M."
    new = "The Heron budget was raised to 1.5 M."
    hits = recall([(old, T0), (new, T0 + 60)], "Heron budget")
    assert hits[0].content == new and hits[1].superseded_by == hits[0].id


def first(facts: list[dict], question: str, limit: int = 10) -> list[str]:
    with Hive.in_process(3) as hive:
        hive.remember_many(facts)
        return [h.content for h in hive.recall(question, limit)]


def test_a_fact_holding_more_of_the_question_comes_before_a_short_one_holding_less() -> None:
    chat, answer = "Zara Aziz: will do", "After the reorg Zara Aziz is on the payments team."
    # "team" is common, the names are rare: BM25 prefers the short fact with the names
    teams = ["mobile", "data", "billing", "search", "growth", "infra"]
    others = [
        {"content": f"The {w} team shipped release {i}", "created": T0} for i, w in enumerate(teams)
    ]
    facts = [{"content": chat, "created": T0}, {"content": answer, "created": T0}, *others]
    question = "Which team is Zara Aziz on?"
    with Hive.in_process(3) as hive:
        hive.remember_many(facts)
        hits = list(hive.recall(question, 10))
        ranked = sorted(hits, key=lambda h: -h.score)
        # BM25 alone puts the short chat first; the head is ordered by what it covers
        assert ranked[0].content == chat and hits[0].content == answer
        # only the order of the first few changes: the same facts, the same scores
        assert {h.id for h in hits} == {h.id for h in ranked}
        assert [h.content for h in hive.recall(question, 1)] == [answer]  # as in a long one


def test_a_statement_comes_before_a_question_holding_the_same_terms() -> None:
    asked = "Samir: Who is the lead of PRJ-5100 these days?"
    stated = "PRJ-5100 has a new lead: it is now led by Lucia Zhang and her team."
    got = first(
        [{"content": asked, "created": T0}, {"content": stated, "created": T0}],
        "Who leads PRJ-5100?",
    )
    assert got == [stated, asked]


def test_covering_more_never_lifts_a_fact_above_what_supersedes_it() -> None:
    old = {"content": "Heron's budget for Heron is 1.2 M.", "subject": "heron", "created": T0}
    new = {"content": "The budget was raised to 1.5 M.", "subject": "heron", "created": T0 + 60}
    assert first([old, new], "Heron budget") == [new["content"], old["content"]]


def test_a_chain_of_supersedes_keeps_its_newest_first_however_the_head_is_ordered() -> None:
    with Hive.in_process(3) as hive:
        a = hive.remember("Heron budget is 1.2 M", created=T0)
        b = hive.remember("Heron project budget total is 1.5 M", created=T0 + 1, supersedes=a)
        c = hive.remember("Heron budget: 2 M", created=T0 + 2, supersedes=b)
        question = "What is the Heron project budget total?"
        # b holds more of the question than c, which supersedes it through b's subject
        assert hive.recall(question, 10)[0].id == c
        assert [h.id for h in hive.recall(question, 1)] == [c]


A_VENDOR = "The hosting vendor for Condor is Vantage Grid."
B_VENDOR = "New hosting vendor for Condor: Coldharbor."


@pytest.mark.parametrize("newer", [A_VENDOR, B_VENDOR])
def test_of_two_statements_scored_alike_the_newer_comes_first(newer: str) -> None:
    # same length, the question's terms in both: BM25 ties them, and restate cannot tell
    # that a new vendor replaced the old (no shared value to compare)
    older = B_VENDOR if newer == A_VENDOR else A_VENDOR
    hits = recall([(older, T0), (newer, T0 + 3600)], "What is the Condor hosting vendor now?")
    assert hits[0].score == hits[1].score
    assert [h.content for h in hits[:2]] == [newer, older]


def test_a_turn_that_only_names_its_speaker_comes_after_a_fact_about_them() -> None:
    """ "Julia Nguyen: that works" is said by her, not about her: short, it outscores the
    fact that holds her role, and its label counts only half toward the question."""
    role = "Update: Julia Nguyen was promoted, so Julia Nguyen's role is now product manager."
    filler = "Julia Nguyen: that works"
    facts = [(role, T0), (filler, T0 + 60)]
    hits = recall(facts, "What does Julia Nguyen do these days?")
    assert [h.content for h in hits] == [role, filler]
    # a heading is no speaker: its words count whole
    assert restate._label(filler) == "Julia Nguyen"
    assert restate._label("Update: the Heron budget is 1.5 M.") is None
    assert restate._label("Correction: the Heron budget is 1.5 M.") is None


def test_a_speaker_saying_what_they_need_is_asking() -> None:
    value = "The deadline for PRJ-7983 slipped to 2026-02-15."
    need = "Miguel: I need the deadline for PRJ-7983 before the planning call."
    hits = recall([(value, T0), (need, T0 + 60)], "What is the deadline for PRJ-7983 now?")
    assert [h.content for h in hits] == [value, need]
    # with a value of its own beside the question's, it states something
    move = "Miguel: I need the deadline for PRJ-7983 moved to May 3."
    hits = recall([(move, T0), (need, T0 + 60)], "What is the deadline for PRJ-7983?")
    assert hits[0].content == move


def test_an_update_may_drop_the_verb_the_older_fact_matched() -> None:
    old = "For the record, the weekly mobile demo is held in room Altair on Thursdays."
    new = "The weekly mobile demo has moved to room Mira."
    hits = recall([(old, T0), (new, T0 + 60)], "Where is the weekly mobile demo held now?")
    assert [h.content for h in hits] == [new, old] and hits[1].superseded_by == hits[0].id


def test_an_update_of_another_thing_of_the_same_shape_supersedes_nothing() -> None:
    payments = "The quarterly payments review has moved to room Spica."
    design = "The quarterly design review has moved to room Sirius."
    hits = recall([(payments, T0), (design, T0 + 60)], "Where is the payments review held now?")
    assert hits[0].content == payments and all(h.superseded_by is None for h in hits)
    lucia = "Quick note: Lucia Mensah's role is senior engineer."
    zara = "Update: Zara Mensah was promoted, so Zara Mensah's role is now engineering manager."
    hits = recall([(lucia, T0), (zara, T0 + 60)], "What is Lucia Mensah's role?")
    assert hits[0].content == lucia and all(h.superseded_by is None for h in hits)


SPEAKERS = ("Hugo", "Ravi", "Emeka", "Mei", "Noor", "Ivan", "Ana", "Li", "Omar", "Sara", "Tom")


def test_an_update_ranked_below_a_full_result_still_comes_first() -> None:
    """Questions about a value crowd its update out of the first ten: the first fact's
    restatements are looked for below them."""
    old = "Priya Iyer is based in Prague."
    new = "Priya Iyer relocated and is now based in Kyoto."
    asks = [
        (f"{who}: Has Priya Iyer moved? I lost track of where Priya Iyer is based.", T0 + i)
        for i, who in enumerate(SPEAKERS, 1)
    ]
    hits = recall([(old, T0), *asks, (new, T0 + 100)], "Where is Priya Iyer based now?")
    assert len(hits) == 10 and hits[0].content == new
    assert next(h for h in hits if h.content == old).superseded_by == hits[0].id


def test_a_question_for_what_holds_now_takes_the_update_in_other_words_first() -> None:
    """ "How much money ... now?" shares only the project's name with its facts: of those,
    the one that updates another (the revised budget) answers it, though shorter facts
    about the project score higher; asked without "now", the ranking is BM25's."""
    facts = [
        ("The budget of PRJ-5391 is 223000 dollars.", T0),
        ("PRJ-5391 is led by Fatima Santos.", T0 + 10),
        ("The headcount of PRJ-5391 is 62 engineers.", T0 + 20),
        ("Heads up: the budget of PRJ-5391 was revised to 654000 dollars.", T0 + 30),
    ]
    revised = facts[3][0]
    now = recall(facts, "How much money does PRJ-5391 have now?")
    assert now[0].content == revised
    assert next(h for h in now if h.content == facts[0][0]).superseded_by == now[0].id
    assert len(now) == 4  # nothing dropped
    then = recall(facts, "How much money was allocated to PRJ-5391?")
    assert then[0].content != revised and len(then) == 4
    # a fact holding more of the question's terms still comes first
    lead = recall(facts, "Who is PRJ-5391 led by now?")
    assert lead[0].content == facts[1][0]


@pytest.mark.parametrize(
    ("question", "current"),
    [
        ("Who leads PRJ-1 now?", True),
        ("What is her current role?", True),
        ("What does Ana do these days?", True),
        ("Is the demo still in room 4 today?", True),
        ("Who leads PRJ-1?", False),
        ("It is nowhere near done, days late.", False),
    ],
)
def test_what_asks_for_what_holds_now(question: str, current: bool) -> None:
    assert restate.asks_current(question) is current
