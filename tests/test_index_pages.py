"""Owners send posting lists in pages by (impact desc, fact id) with a keyset cursor: paging
through any list with any page size gives exactly the whole list in that order, and each
page's bound is the impact of the first posting it left out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from amplihack_hive.memory.index import Columns, from_wire, impact
from amplihack_hive.memory.records import Posting

postings = st.lists(
    st.builds(
        lambda i, tf, ln, subj: Posting("t", f"{i:032x}", tf, ln, 1.0 + tf, subj),
        st.integers(0, 10_000),
        st.integers(1, 4),  # few values: many tied impacts
        st.sampled_from([3, 4, 4, 9]),
        st.sampled_from([None, "s"]),
    ),
    max_size=80,
    unique_by=lambda p: p.fact_id,
)


def as_postings(cols: Columns) -> list[Posting]:
    return [
        Posting("t", str(i), int(tf), int(ln), float(cr), sub)
        for i, tf, ln, cr, sub in zip(
            cols.ids, cols.tf, cols.length, cols.created, cols.subject, strict=True
        )
    ]


@given(postings, st.integers(1, 9), st.sampled_from([1.0, 4.5, 7.25]))
def test_pages_cover_the_list_exactly_once_in_order(
    plist: list[Posting], limit: int, avgdl: float
) -> None:
    cols = Columns.of(plist)
    want = sorted(plist, key=lambda p: (-impact(p.tf, p.length, avgdl), p.fact_id))
    got: list[Posting] = []
    cursor = None
    for _ in range(len(plist) + 2):
        page = from_wire(cols.page(avgdl, limit, cursor))
        assert page.df == len(plist)
        got += as_postings(page.cols)
        if not page.more:
            assert page.bound == 0.0
            break
        nxt = want[len(got)]
        assert page.bound == impact(nxt.tf, nxt.length, avgdl)
        cursor = page.cursor
    assert got == want


@given(postings, st.data())
def test_exact_lookups_return_just_the_asked_facts(
    plist: list[Posting], data: st.DataObject
) -> None:
    asked = data.draw(st.sets(st.sampled_from([p.fact_id for p in plist] + ["f" * 32])))
    page = from_wire(Columns.of(plist).only(asked))
    assert sorted(as_postings(page.cols), key=lambda p: p.fact_id) == sorted(
        (p for p in plist if p.fact_id in asked), key=lambda p: p.fact_id
    )
    assert not page.more
