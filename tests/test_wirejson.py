"""The hot paths' JSON (wirejson.py), and what is refused before it could matter."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amplihack_hive import wirejson
from amplihack_hive.errors import InvalidInputError
from amplihack_hive.memory.records import Fact

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_what_json_reads_back_wirejson_reads_back_the_same(value: object) -> None:
    raw = wirejson.dumps(value)
    assert wirejson.loads(raw) == json.loads(raw) == json.loads(json.dumps(value))


def test_integer_keys_become_strings_as_with_json_and_bad_text_is_a_value_error() -> None:
    assert wirejson.loads(wirejson.dumps({1: "a"})) == json.loads(json.dumps({1: "a"}))
    with pytest.raises(ValueError):
        wirejson.loads(b"{not json")
    # nested too deeply: RecursionError, as json raises (callers say "nested too deeply")
    with pytest.raises(RecursionError):
        wirejson.loads(b"[" * 100_000)
    with pytest.raises(RecursionError):
        wirejson.loads(b"[" * 5000 + b"]" * 5000)


@pytest.mark.parametrize("bad", [math.nan, math.inf, 2**70])
def test_metadata_the_wire_would_change_or_refuse_is_refused_at_input(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="metadata"):
        Fact.new("Ana leads PRJ-1.", metadata={"x": bad})
