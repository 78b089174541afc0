"""Properties of the Bloom filter: no false negatives, promised false-positive rate, wire form."""

from __future__ import annotations

import math
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amplihack_hive.errors import InvalidInputError
from amplihack_hive.memory.bloom import BloomFilter

bloom_keys = st.one_of(st.text(max_size=30), st.binary(max_size=30))
key_lists = st.lists(bloom_keys, max_size=200)
capacities = st.integers(min_value=1, max_value=500)
fp_rates = st.floats(min_value=1e-6, max_value=0.5)


def filled(items: list[str | bytes], capacity: int = 100, fp: float = 0.01) -> BloomFilter:
    bloom = BloomFilter.for_capacity(capacity, fp)
    for item in items:
        bloom.add(item)
    return bloom


# -- sizing -----------------------------------------------------------------------------------


def test_for_capacity_textbook_sizes() -> None:
    # n=1000, p=1%: m = ceil(1000 * ln 100 / ln^2 2) = 9586 bits, k = round(9.586 * ln 2) = 7.
    bloom = BloomFilter.for_capacity(1000, 0.01)
    assert (bloom.m, bloom.k) == (9586, 7)
    assert len(bloom) == 0


@given(capacities, fp_rates)
def test_for_capacity_follows_the_formula(n: int, p: float) -> None:
    bloom = BloomFilter.for_capacity(n, p)
    assert bloom.m == math.ceil(-n * math.log(p) / math.log(2) ** 2)
    assert bloom.k == max(1, round(bloom.m / n * math.log(2)))


@pytest.mark.parametrize(
    ("expected", "fp_rate"),
    [
        (0, 0.01),
        (-5, 0.01),
        (True, 0.01),
        (1.5, 0.01),
        (10, 0.0),
        (10, 1.0),
        (10, -0.1),
        (10, math.nan),
        (10, math.inf),
        (10, "0.01"),
        (10, False),
    ],
)
def test_for_capacity_refuses_bad_arguments(expected: object, fp_rate: object) -> None:
    with pytest.raises(InvalidInputError):
        BloomFilter.for_capacity(expected, fp_rate)  # type: ignore[arg-type]


@pytest.mark.parametrize(("m", "k"), [(0, 1), (8, 0), (8, 70000), (True, 1), (8, 2.0)])
def test_constructor_refuses_bad_shapes(m: object, k: object) -> None:
    with pytest.raises(InvalidInputError):
        BloomFilter(m, k)  # type: ignore[arg-type]


# -- membership -------------------------------------------------------------------------------


@given(key_lists, capacities, fp_rates)
def test_no_false_negatives(items: list[str | bytes], n: int, p: float) -> None:
    bloom = filled(items, n, p)
    for item in items:
        assert item in bloom
    assert len(bloom) <= len(set(items))


@given(st.text(max_size=30))
def test_str_key_and_its_utf8_bytes_are_one_key(key: str) -> None:
    bloom = BloomFilter.for_capacity(10)
    bloom.add(key)
    assert key.encode() in bloom
    assert bloom.add(key.encode()) is False
    assert len(bloom) == 1


def test_len_counts_new_keys_once() -> None:
    bloom = BloomFilter.for_capacity(100)
    assert bloom.add("a") is True
    assert bloom.add("a") is False
    assert bloom.add("b") is True
    assert len(bloom) == 2


def test_non_key_types() -> None:
    bloom = filled(["1"])
    assert 1 not in bloom
    with pytest.raises(InvalidInputError):
        bloom.add(1)  # type: ignore[arg-type]


def test_false_positive_rate_within_twice_target() -> None:
    target = 0.01
    bloom = BloomFilter.for_capacity(10_000, target)
    for i in range(10_000):
        bloom.add(f"present-{i}")
    false_positives = sum(f"absent-{i}" in bloom for i in range(20_000))
    measured = false_positives / 20_000
    assert measured < 2 * target
    # The filter's own estimate agrees with the promise at capacity.
    assert target / 2 < bloom.estimated_fp_rate() < 2 * target
    assert 9_900 <= len(bloom) <= 10_000


def test_estimated_fp_rate_grows_when_overfilled() -> None:
    bloom = BloomFilter.for_capacity(100, 0.01)
    assert bloom.estimated_fp_rate() == 0.0
    for i in range(100):
        bloom.add(f"k{i}")
    at_capacity = bloom.estimated_fp_rate()
    for i in range(100, 1000):
        bloom.add(f"k{i}")
    assert bloom.estimated_fp_rate() > 10 * at_capacity
    assert 0.0 < bloom.fill_ratio() <= 1.0


# -- union ------------------------------------------------------------------------------------


@given(key_lists, key_lists)
def test_union_holds_both_sides(left: list[str | bytes], right: list[str | bytes]) -> None:
    a, b = filled(left), filled(right)
    both = a.union(b)
    for item in [*left, *right]:
        assert item in both
    assert max(len(a), len(b)) <= len(both) <= len(a) + len(b)
    assert both.estimated_fp_rate() >= max(a.estimated_fp_rate(), b.estimated_fp_rate())
    # Inputs untouched.
    assert a == filled(left) and b == filled(right)


def test_union_of_overlapping_sets_estimates_distinct_count() -> None:
    a = filled([f"k{i}" for i in range(600)], capacity=1000)
    b = filled([f"k{i}" for i in range(400, 1000)], capacity=1000)
    assert 950 <= len(a.union(b)) <= 1050


def test_union_refuses_other_shapes() -> None:
    with pytest.raises(InvalidInputError):
        BloomFilter.for_capacity(100).union(BloomFilter.for_capacity(200))
    with pytest.raises(InvalidInputError):
        BloomFilter(64, 3).union(BloomFilter(64, 4))
    with pytest.raises(InvalidInputError):
        BloomFilter(64, 3).union(b"not a filter")  # type: ignore[arg-type]


# -- wire form --------------------------------------------------------------------------------


@given(key_lists, capacities, fp_rates, st.lists(bloom_keys, max_size=50))
def test_round_trip_preserves_membership(
    items: list[str | bytes], n: int, p: float, probes: list[str | bytes]
) -> None:
    bloom = filled(items, n, p)
    data = bloom.to_bytes()
    back = BloomFilter.from_bytes(data)
    assert back == bloom
    assert (back.m, back.k, len(back)) == (bloom.m, bloom.k, len(bloom))
    assert back.to_bytes() == data
    for item in [*items, *probes]:
        assert (item in back) == (item in bloom)
    assert BloomFilter.from_bytes(bytearray(data)) == bloom
    assert BloomFilter.from_bytes(memoryview(data)) == bloom


@settings(max_examples=200)
@given(key_lists, st.data())
def test_any_damaged_byte_is_refused(items: list[str | bytes], data: st.DataObject) -> None:
    good = filled(items, 20).to_bytes()
    at = data.draw(st.integers(0, len(good) - 1), label="position")
    flip = data.draw(st.integers(1, 255), label="xor")
    bad = good[:at] + bytes([good[at] ^ flip]) + good[at + 1 :]
    with pytest.raises(InvalidInputError):
        BloomFilter.from_bytes(bad)


@given(key_lists, st.data())
def test_truncated_or_padded_data_is_refused(items: list[str | bytes], data: st.DataObject) -> None:
    good = filled(items, 20).to_bytes()
    cut = data.draw(st.integers(0, len(good) - 1), label="cut")
    with pytest.raises(InvalidInputError):
        BloomFilter.from_bytes(good[:cut])
    extra = data.draw(st.binary(min_size=1, max_size=8), label="extra")
    with pytest.raises(InvalidInputError):
        BloomFilter.from_bytes(good + extra)


def _reseal(body: bytes) -> bytes:
    """Re-checksum a hand-edited body, to reach the checks behind the CRC."""
    return body + struct.pack(">I", zlib.crc32(body))


def test_resealing_an_unedited_body_is_accepted() -> None:
    body = filled(["a", "b"], 20).to_bytes()[:-4]
    assert BloomFilter.from_bytes(_reseal(body)) == filled(["a", "b"], 20)


# Header layout: magic 0:4, version 4, reserved 5, k 6:8, m 8:16, count 16:24.
@pytest.mark.parametrize(
    ("start", "replacement"),
    [
        pytest.param(0, b"XXXX", id="magic"),
        pytest.param(4, b"\x02", id="version"),
        pytest.param(6, b"\x00\x00", id="k=0"),
        pytest.param(8, b"\x00" * 8, id="m=0"),
        pytest.param(8, (10**6).to_bytes(8, "big"), id="m-beyond-data"),
        pytest.param(16, (10**6).to_bytes(8, "big"), id="count-beyond-set-bits"),
    ],
)
def test_checksummed_but_inconsistent_headers_are_refused(start: int, replacement: bytes) -> None:
    body = filled(["a", "b"], 20).to_bytes()[:-4]
    edited = body[:start] + replacement + body[start + len(replacement) :]
    with pytest.raises(InvalidInputError):
        BloomFilter.from_bytes(_reseal(edited))


def test_bits_past_m_are_refused() -> None:
    bloom = BloomFilter(13, 2)  # 2 bytes of bits, the top 3 bits unused
    body = bytearray(bloom.to_bytes()[:-4])
    body[-1] |= 0x80
    with pytest.raises(InvalidInputError):
        BloomFilter.from_bytes(_reseal(bytes(body)))


def test_from_bytes_refuses_non_bytes() -> None:
    with pytest.raises(InvalidInputError):
        BloomFilter.from_bytes("AHBF")  # type: ignore[arg-type]
