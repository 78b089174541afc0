"""The memory core end to end, in process: placement, recall equal to one agent's, forget."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amplihack_hive import Hive
from amplihack_hive.errors import AgentUnavailableError, InvalidInputError, WriteQuorumError
from amplihack_hive.memory.coordinator import Coordinator
from amplihack_hive.memory.records import CORPUS_TERM
from amplihack_hive.transport.inprocess import InProcessTransport

VOCAB = [f"w{i}" for i in range(40)] + ["prj-4471", "1200", "sarah", "chen", "birthday"]


def ranking(hive: Hive, q: str, k: int = 10) -> list[tuple[str, float]]:
    return [(h.id, round(h.score, 9)) for h in hive.recall(q, limit=k)]


corpora = st.lists(
    st.lists(st.sampled_from(VOCAB), min_size=1, max_size=12).map(" ".join),
    min_size=1,
    max_size=60,
    unique=True,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=corpora,
    n=st.integers(2, 24),
    r=st.integers(1, 4),
    queries=st.lists(st.lists(st.sampled_from(VOCAB), min_size=1, max_size=4), max_size=5),
)
def test_hive_of_n_agents_ranks_exactly_like_one_agent(docs, n, r, queries) -> None:
    with Hive.in_process(agents=1, replication=1) as one, Hive.in_process(n, r) as many:
        one.remember_many(docs)
        many.remember_many(docs)
        for words in queries:
            q = " ".join(words)
            assert ranking(many, q) == ranking(one, q)


words_ = st.lists(st.sampled_from(VOCAB), min_size=1, max_size=12).map(" ".join)
#: facts with a context (a second BM25F field) or none, as learn makes them
contextual = st.lists(
    st.fixed_dictionaries({"content": words_}, optional={"context": words_}),
    min_size=1,
    max_size=60,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=contextual,
    n=st.integers(2, 24),
    r=st.integers(1, 4),
    cut=st.sampled_from([None, 1, 3]),
    queries=st.lists(st.lists(st.sampled_from(VOCAB), min_size=1, max_size=4), max_size=5),
)
def test_with_contexts_a_hive_still_ranks_exactly_like_one_agent(docs, n, r, cut, queries) -> None:
    def scores(hive: Hive, q: str) -> list[tuple[str, float]]:
        if cut is None:
            # whole lists, on both sides: unrounded (the weighted sums are exact,
            # CONTEXT_WEIGHT being a power of two, and added in the same order)
            return [(h.id, h.score) for h in hive.recall(q, limit=10)]
        # a cut list's postings fetched later are added to a fact's score in another
        # order than whole lists add them (a last-bit difference, found here): to 9
        # places, as test_impact_cut_returns_the_same_top_k_as_whole_lists compares
        return ranking(hive, q)

    with Hive.in_process(agents=1, replication=1) as one, Hive.in_process(n, r) as many:
        one._coordinator.first_cut = None  # whole lists: the reference
        many._coordinator.first_cut = cut
        # in two calls: the same content may come again with another context
        for part in (docs[: len(docs) // 2], docs[len(docs) // 2 :]):
            one.remember_many(part)
            many.remember_many(part)
        for words in queries:
            q = " ".join(words)
            assert scores(many, q) == scores(one, q)


def test_scores_add_a_facts_terms_in_the_questions_order_whoever_answers_first() -> None:
    # found by the property test above: the term lists came in the order their owners
    # answered, and a fact's score differed from one agent's in its last bit
    doc = {"content": "w0 w0 w0 w1", "context": "w0 w0 w0 w39"}
    with Hive.in_process(agents=1, replication=1) as one, Hive.in_process(7, 1) as many:
        one.remember_many([doc])
        many.remember_many([doc])
        (a,) = one.recall("w0 w1 w39")
        (b,) = many.recall("w0 w1 w39")
        assert (a.id, a.score) == (b.id, b.score)


def test_a_context_scores_as_bm25f_says_and_the_fact_is_what_comes_back() -> None:
    from amplihack_hive.memory.index import CONTEXT_WEIGHT, K1, B, idf

    with Hive.in_process(agents=3) as hive:
        hive.remember_many(
            [
                {"content": "It went up to 1.5 M.", "context": "What is the Heron budget?"},
                "The Falcon budget is 2 M.",
            ]
        )
        hits = hive.recall("heron", limit=5)
        assert [h.content for h in hits] == ["It went up to 1.5 M."]
        assert hits[0].context == "What is the Heron budget?"
        # own terms "went" "1.5" "1" "5" "m", context "heron" "budget"; the other fact's
        # "falcon" "budget" "2" "m"
        lengths = [5 + CONTEXT_WEIGHT * 2, 4]
        avgdl = sum(lengths) / 2
        tf = CONTEXT_WEIGHT * 1
        norm = K1 * (1 - B + B * lengths[0] / avgdl)
        want = idf(2, 1) * tf * (K1 + 1) / (tf + norm)
        assert hits[0].score == pytest.approx(want, rel=1e-12)


def test_the_same_content_in_two_contexts_is_two_facts_each_forgotten_whole() -> None:
    with Hive.in_process(agents=10, replication=2) as hive:
        cafe = hive.remember("Sounds good.", context="Shall we meet at the zebra cafe?")
        zoo = hive.remember("Sounds good.", context="Shall we see the purple giraffe?")
        assert cafe != zoo
        (found,) = hive.recall("purple giraffe", limit=5)
        assert (found.id, found.context) == (zoo, "Shall we see the purple giraffe?")
        assert hive.forget(zoo)
        assert not hive.recall("purple giraffe")
        # no posting of the forgotten fact is left anywhere (its context's terms included)
        t = hive._transport
        assert isinstance(t, InProcessTransport)
        assert not [
            k for node in t.nodes.values() for k in node.store.posting_keys() if k[1] == zoo
        ]
        assert [h.id for h in hive.recall("zebra cafe")] == [cafe]


def test_a_batch_whose_postings_exceed_one_request_goes_in_parts() -> None:
    # 200 facts of 150 terms, each with a context of 150 more: 60,000 postings per agent
    items = [
        {
            "content": " ".join(f"t{i}x{j}" for j in range(150)),
            "context": " ".join(f"c{i}x{j}" for j in range(150)),
        }
        for i in range(200)
    ]
    with Hive.in_process(agents=3, replication=3) as hive:
        ids = hive.remember_many(items, batch=200)
        assert len(set(ids)) == 200
        assert [h.id for h in hive.recall("t7x3", limit=3)] == [ids[7]]
        assert [h.id for h in hive.recall("c199x149", limit=3)] == [ids[199]]


SMALL_VOCAB = [f"w{i}" for i in range(8)]
dense_corpora = st.lists(
    st.lists(st.sampled_from(SMALL_VOCAB), min_size=1, max_size=12).map(" ".join),
    min_size=10,
    max_size=60,
    unique=True,
)


@settings(max_examples=40, deadline=None)
@given(
    docs=dense_corpora,
    cut=st.integers(1, 4),
    k=st.integers(1, 8),
    words=st.lists(st.sampled_from(SMALL_VOCAB), min_size=2, max_size=4, unique=True),
)
def test_impact_cut_returns_the_same_top_k_as_whole_lists(docs, cut, k, words) -> None:
    # a small vocabulary makes long posting lists, so the cut and its safety check matter
    with Hive.in_process(agents=5) as whole, Hive.in_process(agents=5) as cut_hive:
        whole._coordinator.first_cut = None
        cut_hive._coordinator.first_cut = cut
        whole.remember_many(docs)
        cut_hive.remember_many(docs)
        q = " ".join(words)
        assert ranking(cut_hive, q, k) == ranking(whole, q, k)


def test_exact_identifiers_and_numbers_find_their_fact() -> None:
    with Hive.in_process(agents=20) as hive:
        hive.remember_many(
            [f"Project PRJ-{4000 + i} has a budget of {1000 * i:,} dollars" for i in range(200)]
        )
        hits = hive.recall("What is the budget of PRJ-4071?", limit=3)
        assert "PRJ-4071" in hits[0].content
        hits = hive.recall("which project has 42,000 dollars", limit=3)
        assert "42,000" in hits[0].content


def test_newer_fact_about_a_subject_outranks_the_older_one() -> None:
    with Hive.in_process(agents=7) as hive:
        old = hive.remember(
            "Sarah Chen works as a designer in the Berlin office",
            subject="sarah/role",
            created=100.0,
        )
        new = hive.remember(
            "Sarah Chen now works as team lead", subject="sarah/role", created=200.0
        )
        hits = hive.recall("What does Sarah Chen work as in Berlin?")
        ids = [h.id for h in hits]
        assert ids.index(new) < ids.index(old)


def test_supersedes_links_a_new_fact_to_the_old_one() -> None:
    with Hive.in_process(agents=7) as hive:
        old = hive.remember(
            "The launch date of Apollo is June 3 and the venue is Hall B", created=1.0
        )
        new = hive.remember("Apollo launch date moved to July 9", supersedes=old, created=2.0)
        ids = [h.id for h in hive.recall("Apollo launch date venue Hall")]
        assert ids.index(new) < ids.index(old)


def test_same_content_twice_is_one_fact_and_counts_once() -> None:
    with Hive.in_process(agents=5, replication=3) as hive:
        a = hive.remember("Bob likes green tea")
        b = hive.remember("  Bob likes green tea  ")
        assert a == b
        assert sum(hive.stats()["facts_per_agent"].values()) == 3
        assert len(hive.recall("green tea")) == 1


def test_forgotten_content_remembered_again_is_a_new_fact() -> None:
    with Hive.in_process(agents=9) as hive:
        fid = hive.remember("The vault code is 7781")
        hive.remember("The vault is in the basement")
        assert hive.forget(fid) is True
        assert all(h.id != fid for h in hive.recall("vault code 7781"))
        again = hive.remember("The vault code is 7781")  # stored anew, under a new id
        assert again != fid
        hits = hive.recall("vault code 7781")
        assert hits[0].id == again and hits[0].content == "The vault code is 7781"
        assert all(h.id != fid for h in hits)
        assert sum(hive.stats()["facts_per_agent"].values()) == 6
        assert hive.remember("The vault code is 7781") == again  # and it is one fact
        assert hive.forget(fid) is False  # forgetting the old one twice is fine
        assert hive.forget(again) is True
        third = hive.remember("The vault code is 7781")
        assert third not in (fid, again)
        assert [h.id for h in hive.recall("vault code 7781")][:1] == [third]


def test_content_whose_id_was_forgotten_before_it_was_stored_can_be_stored() -> None:
    from amplihack_hive.memory.records import fact_id_for

    with Hive.in_process(agents=6) as hive:
        fid = fact_id_for("Never stored before")
        assert hive.forget(fid) is False
        stored = hive.remember("Never stored before")
        assert stored != fid
        assert [h.id for h in hive.recall("never stored")] == [stored]
        # ranking statistics count it once (the dead id left nothing behind)
        one = Hive.in_process(agents=1)
        with one:
            one.remember("Never stored before")
            # the same scores (the ids differ: the hive stored the content's next life)
            scores = [score for _, score in ranking(one, "never stored")]
            assert scores == [score for _, score in ranking(hive, "never stored")]


def test_forgotten_fact_stays_forgotten_after_data_moves_between_agents() -> None:
    with Hive.in_process(agents=6) as hive:
        fid = hive.remember("Alice owns the red bicycle")
        stores = hive._stores
        snapshot = [s.export() for s in stores]  # a stale copy made before the forget
        hive.forget(fid)
        for s, shard in zip(stores, reversed(snapshot), strict=True):
            s.import_(shard)  # the stale copy arrives everywhere afterwards
        assert hive.recall("red bicycle") == []


def test_records_per_agent_follow_replication() -> None:
    with Hive.in_process(agents=10, replication=3) as hive:
        hive.remember_many([f"fact number {i} about topic {i % 7}" for i in range(300)])
        per = hive.stats()["facts_per_agent"]
        assert sum(per.values()) == 900
        assert max(per.values()) < 300


def test_fewer_agents_than_replicas_keeps_a_copy_on_each() -> None:
    with Hive.in_process(agents=2, replication=3) as hive:
        hive.remember("x marks the spot")
        assert hive.stats()["facts_per_agent"] == {"agent-0": 1, "agent-1": 1}


def test_recall_contacts_a_bounded_number_of_agents() -> None:
    rnd = random.Random(3)
    docs = [" ".join(rnd.choice(VOCAB) for _ in range(8)) + f" tag{i}" for i in range(400)]
    fanouts = {}
    for n in (50, 200):
        with Hive.in_process(agents=n) as hive:
            hive.remember_many(docs)
            for _i in range(30):
                hive.recall(" ".join(rnd.sample(VOCAB, 3)), limit=5)
            fanouts[n] = hive.stats()["fanout"]["recall"]
    # terms (3) + bodies (5) + corpus (1), whatever N is
    assert fanouts[200] <= 9 + 0.5
    assert fanouts[200] <= fanouts[50] * 1.25


def test_recall_fails_over_to_a_live_replica() -> None:
    with Hive.in_process(agents=8, replication=3) as hive:
        fid = hive.remember("Carol's favourite number is 31337")
        transport = hive._transport
        owners = hive._coordinator.owners(fid)
        transport.down.add(owners[0])  # type: ignore[attr-defined]
        hits = hive.recall("Carol favourite number")
        assert hits and hits[0].id == fid


def test_a_fact_is_said_absent_only_on_a_read_quorum_of_its_owners() -> None:
    with Hive.in_process(agents=8, replication=3) as hive:
        fid = hive.remember("Dan parks in bay 42")
        absent = hive._coordinator.prepare("Dan never parked in bay 43")[0].id
        transport, owners = hive._transport, hive._coordinator.owners(absent)
        transport.down.add(owners[0])  # type: ignore[attr-defined]
        assert hive.fact(absent) is None  # two of three owners say so: it is not there
        transport.down.add(owners[1])  # type: ignore[attr-defined]
        with pytest.raises(AgentUnavailableError, match="too few owners"):
            hive.fact(absent)  # the one left may have missed its write
        with pytest.raises(AgentUnavailableError):
            hive.escalate(absent, "hive")  # not "no fact": nobody could say
        transport.down.clear()  # type: ignore[attr-defined]
        found = hive.fact(fid)
        assert found is not None and found.content == "Dan parks in bay 42"


@pytest.mark.parametrize(
    "bad",
    ["", "   \n\t", "x" * (64 * 1024 + 1), b"\xff\xfe not utf-8", "nul\x00byte"],
)
def test_bad_content_is_refused_and_nothing_is_stored(bad) -> None:
    with Hive.in_process(agents=3) as hive:
        with pytest.raises(InvalidInputError):
            hive.remember(bad)
        assert sum(hive.stats()["facts_per_agent"].values()) == 0


def test_unknown_kind_and_bad_sizes_are_refused() -> None:
    with Hive.in_process(agents=3) as hive, pytest.raises(InvalidInputError, match="kind"):
        hive.remember("fine text", kind="dreamy")
    for n, r in [(0, 3), (3, 0), (-1, 1)]:
        with pytest.raises(InvalidInputError):
            Hive.in_process(agents=n, replication=r)
    with pytest.raises(InvalidInputError):
        Hive.in_process(agents=2, backend="postgres")


def test_cypher_looking_text_is_just_text() -> None:
    evil = "'); MATCH (n) DETACH DELETE n //"
    with Hive.in_process(agents=4) as hive:
        keep = hive.remember("the ledger balance is 50")
        fid = hive.remember(evil)
        assert hive.recall("MATCH DETACH DELETE")[0].content == evil
        assert hive.recall("ledger balance")[0].id == keep
        assert fid != keep


def test_forget_checks_the_id() -> None:
    with Hive.in_process(agents=2) as hive, pytest.raises(InvalidInputError):
        hive.forget("../../etc/passwd")


def test_empty_question_and_bad_limit() -> None:
    with Hive.in_process(agents=2) as hive:
        with pytest.raises(InvalidInputError):
            hive.recall("  ")
        with pytest.raises(InvalidInputError):
            hive.recall("x", limit=0)
        assert hive.recall("nothing stored yet") == []


def test_coordinator_refuses_bad_replication() -> None:
    with pytest.raises(InvalidInputError):
        Coordinator(None, None, replication=0)  # type: ignore[arg-type]


def test_writes_with_two_owners_down_are_hinted_and_handed_back() -> None:
    with Hive.in_process(agents=5, replication=3) as hive:
        transport = hive._transport
        transport.down |= {"agent-1", "agent-2"}  # type: ignore[attr-defined]
        ids = hive.remember_many([f"hinted fact {i}" for i in range(50)])
        assert len(ids) == 50  # acknowledged: W=2 reached through stand-ins
        transport.down.clear()  # type: ignore[attr-defined]
        hive.repair()
        assert sum(hive.stats()["facts_per_agent"].values()) == 150
        for fid in ids:
            holders = {
                name
                for name, node in transport.nodes.items()  # type: ignore[attr-defined]
                if node.store.get_facts([fid])
            }
            assert holders == set(hive._coordinator.owners(fid))
        assert all(r.pushed == r.pulled == r.handed_off == 0 for r in hive.repair())
        assert hive.recall("hinted fact 7")[0].content == "hinted fact 7"


def test_write_fails_loudly_when_no_quorum_is_possible() -> None:
    with Hive.in_process(agents=3, replication=3) as hive:
        hive._transport.down |= {"agent-0", "agent-1"}  # type: ignore[attr-defined]
        with pytest.raises(WriteQuorumError) as info:
            hive.remember_many(["lonely fact"])
        assert info.value.failed and not info.value.stored
        assert set(info.value.unreachable) == {"agent-0", "agent-1"}


def test_each_down_owner_gets_its_own_stand_in() -> None:
    with Hive.in_process(agents=6, replication=3) as hive:
        transport = hive._transport
        fid = hive._coordinator.prepare("a fact whose owners are all down")[0].id
        owners = set(hive._coordinator.owners(fid))
        transport.down |= owners  # type: ignore[attr-defined]
        assert hive.remember("a fact whose owners are all down") == fid
        holders = {n for n, node in transport.nodes.items() if node.store.get_facts([fid])}  # type: ignore[attr-defined]
        assert len(holders) == 3 and not holders & owners  # three copies, not one
        transport.down.clear()  # type: ignore[attr-defined]
        hive.repair()
        holders = {n for n, node in transport.nodes.items() if node.store.get_facts([fid])}  # type: ignore[attr-defined]
        assert holders == owners


def test_forgotten_facts_stay_forgotten_across_a_membership_change() -> None:
    from amplihack_hive.memory.node import MemoryNode
    from amplihack_hive.memory.repair import RepairService
    from amplihack_hive.memory.store import InMemoryStore

    with Hive.in_process(agents=6, replication=3) as hive:
        ids = hive.remember_many([f"fact number {i} token k{i}z" for i in range(40)])
        transport = hive._transport
        for fid in ids:  # each forget misses one replica of the body
            missed = hive._coordinator.owners(fid)[2]
            transport.down.add(missed)  # type: ignore[attr-defined]
            hive.forget(fid)
            transport.down.discard(missed)  # type: ignore[attr-defined]
        ring = hive._coordinator.ring
        for j in range(6, 18):  # the ring grows before any repair ran
            name = f"agent-{j}"
            ring.add(name)
            store = InMemoryStore()
            transport.nodes[name] = MemoryNode(  # type: ignore[attr-defined]
                name, store, RepairService(name, store, lambda: hive._coordinator.ring, 3)
            )
            hive._agents.append(name)
        for _ in range(4):
            hive.repair()
        assert sum(hive.stats()["facts_per_agent"].values()) == 0
        assert all(hive.recall(f"k{i}z") == [] for i in range(40))


def test_facts_stay_recallable_when_the_corpus_list_owner_was_down() -> None:
    with Hive.in_process(agents=3, replication=1, write_quorum=1) as hive:
        counter_owner = hive._coordinator.owners(CORPUS_TERM)[0]
        hive._transport.down.add(counter_owner)  # type: ignore[attr-defined]
        fid = hive.remember("lonely words here")  # stored; only the counters lag
        hive._transport.down.clear()  # type: ignore[attr-defined]
        hive.repair()
        assert [h.id for h in hive.recall("lonely words")] == [fid]
