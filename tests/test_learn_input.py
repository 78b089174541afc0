"""Reading ``learn`` input: paragraphs, JSON Lines, line numbers, encodings; no hive needed."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest

from amplihack_hive.errors import InvalidInputError
from amplihack_hive.hive.learn_input import (
    InputItem,
    InputProblem,
    check_items,
    read_items,
)
from amplihack_hive.memory.records import MAX_CONTENT_BYTES, MAX_CONTEXT_BYTES


def contents(items: list[InputItem]) -> list[str]:
    return [item.content for item in items]


# --- text ------------------------------------------------------------------------------------


def test_each_paragraph_is_one_item_with_its_first_line() -> None:
    text = "First fact\nstill first.\n\nSecond fact.\n\n\n\nThird fact.\n"
    items, problems = read_items(text, "text")
    assert problems == []
    assert contents(items) == ["First fact\nstill first.", "Second fact.", "Third fact."]
    assert [item.line for item in items] == [1, 4, 8]
    assert items[0].as_item() == {"content": "First fact\nstill first."}


@pytest.mark.parametrize("newline", ["\r\n", "\r", "\n"])
def test_paragraphs_with_any_line_end(newline: str) -> None:
    text = newline.join(["alpha one", "alpha two", "", "beta", ""])
    items, _ = read_items(text, "text")
    assert contents(items) == ["alpha one\nalpha two", "beta"]
    assert all("\r" not in c for c in contents(items))


def test_trailing_whitespace_and_whitespace_only_lines_separate_paragraphs() -> None:
    text = "  indented first  \t\nsecond line   \n \t \nnext\t\n   \n\n"
    items, _ = read_items(text, "text")
    assert contents(items) == ["  indented first\nsecond line", "next"]
    assert [item.line for item in items] == [1, 4]


@pytest.mark.parametrize("text", ["", "\n\n", "   \n\t\n", "\r\n\r\n"])
def test_empty_text_has_no_items(text: str) -> None:
    assert read_items(text, "text") == ([], [])


def test_bytes_and_streams_are_read_as_utf8() -> None:
    raw = "Ærøskøbing ferry leaves at 9.\n\nCafé opens at 7.".encode()
    for source in (raw, io.BytesIO(raw), io.StringIO(raw.decode())):
        items, _ = read_items(source, "text")
        assert contents(items) == ["Ærøskøbing ferry leaves at 9.", "Café opens at 7."]


def test_a_utf8_bom_is_dropped() -> None:
    items, _ = read_items(b"\xef\xbb\xbfhello there", "text")
    assert contents(items) == ["hello there"]


def test_non_utf8_input_is_refused_naming_the_line() -> None:
    with pytest.raises(InvalidInputError, match=r"not valid UTF-8 \(line 3"):
        read_items(b"ok\n\n caf\xe9 latin-1\n", "text")
    with pytest.raises(InvalidInputError, match="not valid UTF-8"):
        read_items(io.BytesIO(b"\xff\xfe\x00"), "jsonl")


def test_unknown_format_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="unknown input format 'csv'"):
        read_items("x", "csv")


# --- jsonl -----------------------------------------------------------------------------------


def test_jsonl_items_with_kind_and_metadata() -> None:
    lines = [
        json.dumps({"content": "Sarah's birthday is March 15"}),
        "",
        json.dumps({"content": "Deploys happen on Tuesdays", "kind": "procedural"}),
        json.dumps({"content": "Met Bob", "kind": "episodic", "metadata": {"src": "notes"}}),
        "   ",
    ]
    items, problems = read_items("\r\n".join(lines), "jsonl")
    assert problems == []
    assert [item.line for item in items] == [1, 3, 4]
    assert [item.as_item() for item in items] == [
        {"content": "Sarah's birthday is March 15"},
        {"content": "Deploys happen on Tuesdays", "kind": "procedural"},
        {"content": "Met Bob", "kind": "episodic", "metadata": {"src": "notes"}},
    ]


def test_jsonl_null_optional_fields_are_absent() -> None:
    items, problems = read_items('{"content": "x y z", "kind": null, "metadata": null}', "jsonl")
    assert problems == []
    assert items[0].as_item() == {"content": "x y z"}


def test_jsonl_library_fields_pass_through() -> None:
    line = json.dumps({"content": "c", "subject": "bob", "confidence": 0.5, "created": 1.0})
    items, problems = read_items(line, "jsonl")
    assert problems == []
    assert items[0].as_item() == {
        "content": "c",
        "subject": "bob",
        "confidence": 0.5,
        "created": 1.0,
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"content": "x",}', "not valid JSON"),
        ('"just a string"', "expected a JSON object, got a string"),
        ("[1, 2]", "expected a JSON object, got an array"),
        ("42", "expected a JSON object, got a number"),
        ("null", "expected a JSON object, got null"),
        ('{"kind": "semantic"}', 'missing "content"'),
        ('{"content": 42}', '"content" must be a string, got a number'),
        ('{"content": null}', '"content" must be a string, got null'),
        ('{"content": ["a"]}', '"content" must be a string, got an array'),
        ('{"content": "x", "kind": 3}', '"kind" must be a string, got a number'),
        ('{"content": "x", "metadata": "src"}', '"metadata" must be an object, got a string'),
        ('{"content": "x", "metadata": [1]}', '"metadata" must be an object, got an array'),
        ('{"content": "x", "confidence": "high"}', '"confidence" must be a number'),
        ('{"content": "x", "confidence": true}', '"confidence" must be a number, got a boolean'),
        ('{"content": "x", "created": NaN}', '"created" must be a finite number'),
        ('{"content": "x", "subject": 1}', '"subject" must be a string'),
        ('{"content": "x", "text": "y"}', "unknown field(s) 'text'"),
    ],
)
def test_jsonl_bad_lines_are_problems_with_their_line_number(line: str, message: str) -> None:
    text = "\n".join(['{"content": "good one"}', "", line, '{"content": "good two"}'])
    items, problems = read_items(text, "jsonl")
    assert contents(items) == ["good one", "good two"]
    assert len(problems) == 1
    assert problems[0].line == 3
    assert message in problems[0].message
    assert str(problems[0]).startswith("line 3: ")


def test_jsonl_every_bad_line_is_counted() -> None:
    text = "\n".join(["{", '{"content": "ok"}', "[]", "nope"])
    items, problems = read_items(text, "jsonl")
    assert len(items) == 1
    assert [p.line for p in problems] == [1, 3, 4]


# --- check_items: the library's per-fact rules ------------------------------------------------


def test_check_items_refuses_what_the_library_would_refuse() -> None:
    big = "word " * (MAX_CONTENT_BYTES // 5 + 10)
    items = [
        InputItem(1, "fine fact"),
        InputItem(2, big),
        InputItem(3, "   "),
        InputItem(4, "nul \x00 inside"),
        InputItem(5, "bad kind", kind="gossip"),
        InputItem(6, "fine too", kind="Episodic"),
        InputItem(7, "huge meta", metadata={"blob": "x" * 100_000}),
        InputItem(8, "bad supersedes", extra={"supersedes": "not-an-id"}),
        InputItem(9, "bad confidence", extra={"confidence": 2}),
        InputItem(10, "lone surrogate \ud800"),
    ]
    good, problems = check_items(items)
    assert [item.line for item in good] == [1, 6]
    by_line = {p.line: p.message for p in problems}
    assert set(by_line) == {2, 3, 4, 5, 7, 8, 9, 10}
    assert f"the limit is {MAX_CONTENT_BYTES} bytes" in by_line[2]
    assert "empty" in by_line[3]
    assert "NUL" in by_line[4]
    assert "unknown kind 'gossip'" in by_line[5]
    assert "metadata" in by_line[7]
    assert "not a fact id" in by_line[8]
    assert "confidence" in by_line[9]
    assert "Unicode" in by_line[10]


def test_check_items_accepts_exactly_the_size_limit() -> None:
    exact = "a" * MAX_CONTENT_BYTES
    good, problems = check_items([InputItem(1, exact), InputItem(2, exact + "a")])
    assert [item.line for item in good] == [1]
    assert problems == [InputProblem(2, problems[0].message)]


# -- contexts ----------------------------------------------------------------------------------


def test_a_paragraph_has_its_heading_and_an_introducing_paragraph_as_context() -> None:
    text = (
        "# Project Heron\n\nThe budget is 1.5 M.\n\nIts owners are:\n\nAna and Ben.\n\n"
        "Deadlines\n\nThe beta ships in May.\nThe launch in June.\n\nNo more notes.\n"
    )
    items, _ = read_items(text, "text")
    assert [(i.content, i.extra.get("context")) for i in items] == [
        ("# Project Heron", None),  # a heading has none
        ("The budget is 1.5 M.", "# Project Heron"),
        ("Its owners are:", "# Project Heron"),
        ("Ana and Ben.", "# Project Heron\nIts owners are:"),  # introduced by a colon
        ("Deadlines", None),  # short, no sentence's end: a heading too
        ("The beta ships in May.\nThe launch in June.", "Deadlines"),
        ("No more notes.", "Deadlines"),
    ]
    # plain paragraphs in a row, no heading: none (each stands by itself)
    items, _ = read_items("Heron's budget is 1.5 M.\n\nMarcus is on call this week.\n", "text")
    assert [i.extra.get("context") for i in items] == [None, None]
    # a long heading-and-intro: cut to what a context may hold
    long = "word " * 5000 + ":"
    items, _ = read_items(f"{long}\n\nA short paragraph.\n", "text")
    context = items[1].extra["context"]
    assert len(context.encode()) <= MAX_CONTEXT_BYTES and long.rstrip().endswith(context.strip())


def test_a_jsonl_item_may_carry_its_context() -> None:
    items, problems = read_items(
        '{"content": "x", "context": "around x"}\n{"content": "y", "context": 3}\n', "jsonl"
    )
    assert items[0].as_item() == {"content": "x", "context": "around x"}
    assert problems == [InputProblem(2, '"context" must be a string, got a number')]


TRANSCRIPT = """# standup 2026-11-30 09:30
Ana: What is the budget of Project Heron now?
Ben: It went up to 1.5 M
  last week.
Ana: Thanks.
# lunch
Ana: Anyone tried the ramen place?
Ben: Yes.
"""


def test_a_transcript_is_one_item_per_turn_with_its_neighbours_in_the_session() -> None:
    items, problems = read_items(TRANSCRIPT, "chat")
    assert problems == []
    assert [i.content for i in items] == [
        "Ana: What is the budget of Project Heron now?",
        "Ben: It went up to 1.5 M\nlast week.",
        "Ana: Thanks.",
        "Ana: Anyone tried the ramen place?",
        "Ben: Yes.",
    ]
    assert [i.line for i in items] == [2, 3, 5, 7, 8]
    assert items[1].extra["context"] == (
        "Ana: What is the budget of Project Heron now?\nAna: Thanks."
    )
    # the turns of another session are not context
    assert items[2].extra["context"] == "Ben: It went up to 1.5 M\nlast week."
    assert items[3].extra["context"] == "Ben: Yes."
    assert items[0].metadata == {"speaker": "Ana", "session": "standup 2026-11-30 09:30"}
    assert {i.kind for i in items} == {"episodic"}
    # the session's date dates its turns, a second apart, in order; an undated session's
    # turns take their time on arrival
    began = datetime(2026, 11, 30, 9, 30, tzinfo=UTC).timestamp()
    assert [i.extra.get("created") for i in items] == [began, began + 1, began + 2, None, None]


def test_chat_jsonl_turns_and_their_problems() -> None:
    lines = [
        {"speaker": "A", "text": "hi", "session": "s1", "time": "2026-01-02T03:04:05+00:00"},
        {"speaker": "B", "text": "yo", "session": "s1", "time": 1767323046},
        {"speaker": "C", "text": "elsewhere", "session": "s2"},
        {"speaker": "", "text": "x"},
        {"speaker": "D", "text": "x", "time": "noon"},
        {"speaker": "D", "text": "x", "mood": "calm"},
    ]
    items, problems = read_items("\n".join(json.dumps(x) for x in lines) + "\n[1]\n", "chat")
    assert [(i.content, i.extra.get("context"), i.extra.get("created")) for i in items] == [
        ("A: hi", "B: yo", 1767323045.0),
        ("B: yo", "A: hi", 1767323046.0),
        ("C: elsewhere", None, None),
    ]
    assert [p.line for p in problems] == [4, 5, 6, 7]
    assert "non-empty string" in problems[0].message
    assert "not an ISO 8601 time" in problems[1].message
    assert "unknown field(s) 'mood'" in problems[2].message


def test_a_transcript_line_that_is_no_turn_is_a_problem() -> None:
    _, problems = read_items("no speaker here\nAna: hello\n", "chat")
    assert problems == [InputProblem(1, 'expected "Speaker: text"')]


def test_without_context_no_item_carries_one() -> None:
    for text, fmt in (
        ("# one\n\nThe second paragraph.\n", "text"),
        (TRANSCRIPT, "chat"),
        ('{"content": "x", "context": "around x"}\n', "jsonl"),
    ):
        items, _ = read_items(text, fmt, context=False)
        assert items and all("context" not in i.extra for i in items)
        assert any("context" in i.extra for i in read_items(text, fmt)[0])


def test_a_transcript_keeps_lines_that_only_look_like_turns_in_their_turn() -> None:
    text = """#1 priority is the launch
# planning 2026-12-01
[09:31] Ben: the plan for Heron:
  Budget: 1.5 M
  Owner: Ben
The thing we agreed on last week, to be clear: we ship Friday.
Ana Lucia Ferreira: ok
"""
    items, problems = read_items(text, "chat")
    # "#1 priority ..." is no header and comes before any turn
    assert problems == [InputProblem(1, 'expected "Speaker: text"')]
    assert [i.content for i in items] == [
        "Ben: the plan for Heron:\nBudget: 1.5 M\nOwner: Ben\n"
        "The thing we agreed on last week, to be clear: we ship Friday.",
        "Ana Lucia Ferreira: ok",
    ]
    assert items[0].metadata == {"speaker": "Ben", "session": "planning 2026-12-01"}
