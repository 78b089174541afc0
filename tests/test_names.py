"""validate_name: the one rule for hive and agent names."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amplihack_hive.errors import HiveError, InvalidInputError
from amplihack_hive.names import MAX_NAME_LENGTH, is_valid_name, validate_name

# The rule, written independently of the implementation: a letter, then runs of an optional
# single '-' followed by a letter or digit (so no trailing '-' and no '--').
_REFERENCE = re.compile(r"[a-z](?:-?[a-z0-9])*")


def reference_accepts(value: str) -> bool:
    return len(value) <= MAX_NAME_LENGTH and _REFERENCE.fullmatch(value) is not None


@pytest.mark.parametrize(
    "name", ["a", "h", "agent-0", "my-hive-2", "a1b2", "x" * MAX_NAME_LENGTH, "a-b-c"]
)
def test_valid_names_are_returned_unchanged(name: str) -> None:
    assert validate_name(name) == name
    assert is_valid_name(name)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "it is empty"),
        ("../x", "does not start with a lowercase letter"),
        ("x/../../etc", "contains '/'"),
        ("a/b", "contains '/'"),
        ("a.b", "contains '.'"),
        ("Agent_1", "does not start with a lowercase letter"),
        ("agent_1", "contains '_'"),
        ("agentA", "contains 'A'"),
        ("1abc", "does not start with a lowercase letter"),
        ("-abc", "does not start with a lowercase letter"),
        ("abc-", "ends with '-'"),
        ("a--b", "contains '--'"),
        ("café", "contains 'é'"),
        ("éa", "does not start with a lowercase letter"),
        ("ａbc", "does not start with a lowercase letter"),  # fullwidth a
        ("abc\n", "contains '\\n'"),
        (" abc", "does not start with a lowercase letter"),
        ("ab c", "contains ' '"),
        ("a" * (MAX_NAME_LENGTH + 1), f"it is {MAX_NAME_LENGTH + 1} characters long"),
    ],
)
def test_invalid_names_are_refused_with_value_problem_and_rule(name: str, problem: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        validate_name(name)
    message = str(info.value)
    assert message.startswith(f"invalid hive name {name!r}: ")
    assert problem in message
    assert "lowercase letters (a-z), digits and '-', starting with a letter" in message
    assert not is_valid_name(name)


@pytest.mark.parametrize("value", [None, 5, b"abc", ["a"]])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidInputError, match="expected a string"):
        validate_name(value)
    assert not is_valid_name(value)


def test_the_message_says_what_was_named() -> None:
    with pytest.raises(InvalidInputError, match=r"^invalid agent name 'Bad'"):
        validate_name("Bad", what="agent name")


def test_invalid_input_is_a_hive_error_and_a_value_error() -> None:
    with pytest.raises(HiveError):
        validate_name("../x")
    with pytest.raises(ValueError):
        validate_name("../x")


@given(st.text(max_size=40))
def test_accepts_exactly_what_the_rule_accepts(value: str) -> None:
    assert is_valid_name(value) == reference_accepts(value)


@given(st.from_regex(_REFERENCE, fullmatch=True).filter(lambda s: len(s) <= MAX_NAME_LENGTH))
def test_every_name_the_rule_allows_is_accepted(value: str) -> None:
    assert validate_name(value) == value


@given(st.text(alphabet="ab-0_./A", max_size=12))
def test_names_built_from_tricky_characters(value: str) -> None:
    assert is_valid_name(value) == reference_accepts(value)
