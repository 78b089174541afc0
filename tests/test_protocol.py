"""The typed messages of the memory protocol: every request and reply survives its wire form
unchanged, the wire form is the one older agents speak, and malformed input is refused with
a message that names what is wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amplihack_hive.errors import InvalidInputError
from amplihack_hive.memory import protocol as p
from amplihack_hive.memory.node import MemoryNode
from amplihack_hive.memory.records import Fact, Posting, ShardExport, Tombstone, fact_id_for
from amplihack_hive.memory.repair import RepairService
from amplihack_hive.memory.ring import HashRing
from amplihack_hive.memory.scopes import scoped
from amplihack_hive.memory.store import InMemoryStore

ids = st.text("abcdefghij", min_size=1, max_size=12).map(fact_id_for)
terms = st.text("abcxyz", min_size=1, max_size=6)
times = st.floats(min_value=0, max_value=2e9, allow_nan=False)
facts = st.builds(
    lambda fid, content, created: Fact(fid, content, created=created),
    ids,
    st.text(min_size=1, max_size=20),
    times,
)
postings = st.builds(
    Posting,
    terms,
    ids,
    st.integers(1, 9),
    st.integers(1, 99),
    times,
    st.none() | st.text(max_size=5),
)
tombstones = st.builds(Tombstone, ids, times)
shards = st.builds(ShardExport, st.lists(facts), st.lists(postings), st.lists(tombstones))
u64 = st.integers(0, 2**64 - 1)
buckets = st.integers(0, 48).flatmap(lambda b: st.tuples(st.just(b), st.integers(0, 2**b - 1)))
digests = st.builds(lambda bucket, c, x: (*bucket, c, x), buckets, u64, u64)

#: every tokenizer version (1 is left out on the wire, the others written)
versions = st.sampled_from((1, 2))
requests = st.one_of(
    st.builds(p.Put, st.lists(facts), st.lists(postings), tokenizer=versions),
    st.builds(
        p.Postings,
        st.lists(terms),
        st.floats(0.5, 50),
        st.none() | st.integers(1, 500),
        st.none() | st.dictionaries(terms, st.tuples(st.floats(0, 9), ids), min_size=1),
        tokenizer=versions,
    ),
    st.builds(
        lambda ts, only, v: p.Postings(ts, 3.0, only=only, tokenizer=v),
        st.lists(terms),
        st.dictionaries(terms, st.lists(ids)),
        versions,
    ),
    st.builds(p.Facts, st.lists(ids)),
    st.builds(p.Forget, st.lists(tombstones), tokenizer=versions),
    st.builds(p.Corpus, tokenizer=versions),
    st.just(p.Stats()),
    st.just(p.Export()),
    st.builds(p.Import, shards, tokenizer=versions),
    st.just(p.Ping()),
    st.builds(p.RepairDigest, terms, st.lists(digests)),
    st.builds(p.RepairKeys, terms, st.lists(buckets)),
    st.builds(
        p.RepairGet, terms, st.lists(st.text(max_size=8)), st.lists(buckets), tokenizer=versions
    ),
    st.builds(p.RepairPut, terms, shards, tokenizer=versions),
)


def over_the_wire(wire: dict[str, Any]) -> Any:
    return json.loads(json.dumps(wire, separators=(",", ":")))


@given(requests)
def test_every_request_survives_its_wire_form(request: p.Request) -> None:
    decoded = p.decode_request(over_the_wire(p.encode(request)))
    assert decoded == request and type(decoded) is type(request)


replies = st.one_of(
    st.builds(p.PutReply, st.lists(st.booleans()), st.lists(ids)),
    st.builds(p.FactsReply, st.lists(facts), st.lists(ids)),
    st.builds(p.ForgetReply, st.lists(st.booleans())),
    st.builds(p.CorpusReply, st.integers(0, 10**9), st.integers(0, 10**12)),
    st.builds(p.StatsReply, terms, st.integers(0), st.integers(0), st.booleans(), st.integers(0)),
    st.builds(p.ExportReply, shards),
    st.builds(p.ImportReply, st.booleans()),
    st.builds(p.PingReply, terms),
    st.builds(
        p.RepairDigestReply,
        st.lists(st.none() | st.lists(st.tuples(u64, u64), min_size=64, max_size=64)),
    ),
    st.builds(p.RepairKeysReply, st.lists(st.text(max_size=8))),
    st.builds(p.RepairGetReply, shards),
    st.builds(p.RepairPutReply, st.lists(tombstones)),
)
REPLY_OF = {cls.reply: cls for cls in p.REQUESTS.values()}


@given(replies)
def test_every_reply_survives_its_wire_form(reply: p.Reply) -> None:
    kind = REPLY_OF[type(reply)]
    request = kind(tokenizer=1) if issubclass(kind, p.Indexed) else kind()
    decoded = p.decode_reply(request, over_the_wire(p.encode(reply)))
    assert decoded == reply and type(decoded) is type(reply)


def test_the_wire_form_is_the_one_older_agents_speak() -> None:
    """Agents of the last version send and read these dicts: a rolling update mixes both."""
    fact = Fact(fact_id_for("owls"), "owls", created=5.0)
    posting = Posting("owl", fact.id, 1, 1, 5.0, None)
    assert p.encode(p.Put([fact], [posting], tokenizer=1)) == {
        "op": "put",
        "facts": [fact.to_dict()],
        "postings": [["owl", fact.id, 1, 1, 5.0, None]],
    }
    assert p.encode(p.Postings(["owl"], 2.5, 10, after={"owl": (1.5, fact.id)}, tokenizer=1)) == {
        "op": "postings",
        "terms": ["owl"],
        "avgdl": 2.5,
        "limit": 10,
        "after": {"owl": [1.5, fact.id]},
    }
    assert p.encode(p.Postings(["owl"], 2.5, only={"owl": [fact.id]}, tokenizer=1)) == {
        "op": "postings",
        "terms": ["owl"],
        "avgdl": 2.5,
        "only": {"owl": [fact.id]},
    }
    assert p.encode(p.Forget([Tombstone(fact.id, 7.0)], tokenizer=1)) == {
        "op": "forget",
        "tombstones": [[fact.id, 7.0]],
    }
    assert p.encode(p.RepairDigest("agent-1", [(0, 0, 3, 99)])) == {
        "op": "repair_digest",
        "peer": "agent-1",
        "buckets": [[0, 0, 3, 99]],
    }
    assert p.encode(p.Corpus(tokenizer=1)) == {"op": "corpus"}
    assert p.encode(p.CorpusReply(4, 20)) == {"count": 4, "total_length": 20}
    shard = ShardExport([fact], [posting], [Tombstone("b" * 32, 1.0)])
    wire_shard = {
        "facts": [fact.to_dict()],
        "postings": [["owl", fact.id, 1, 1, 5.0, None]],
        "tombstones": [["b" * 32, 1.0]],
    }
    golden: list[tuple[p.Request | p.Reply, dict[str, Any]]] = [
        (
            p.Postings(["owl"], 1.0, None, tokenizer=1),
            {"op": "postings", "terms": ["owl"], "avgdl": 1.0, "limit": None},
        ),
        (p.Facts([fact.id]), {"op": "facts", "ids": [fact.id]}),
        (p.Stats(), {"op": "stats"}),
        # (an agent of this version says it knows scopes; older ones leave it out)
        (p.Export(), {"op": "export", "scopes": True}),
        (p.Export(scopes=False), {"op": "export"}),
        (p.Import(shard, tokenizer=1), {"op": "import", "shard": wire_shard}),
        (p.Ping(), {"op": "ping"}),
        (p.RepairKeys("a-1", [(6, 3)]), {"op": "repair_keys", "peer": "a-1", "buckets": [[6, 3]]}),
        (
            p.RepairGet("a-1", ["k"], [(6, 3)], scopes=False, tokenizer=1),
            {"op": "repair_get", "peer": "a-1", "keys": ["k"], "buckets": [[6, 3]]},
        ),
        (
            p.RepairGet("a-1", ["k"], [(6, 3)], tokenizer=1),
            {"op": "repair_get", "peer": "a-1", "keys": ["k"], "buckets": [[6, 3]], "scopes": True},
        ),
        (
            p.RepairPut("a-1", shard, tokenizer=1),
            {"op": "repair_put", "peer": "a-1", "shard": wire_shard},
        ),
        (
            p.PutReply([True, False], [fact.id]),
            {"inserted": [True, False], "tombstoned": [fact.id]},
        ),
        (p.PostingsReply({"owl": {"df": 1}}), {"lists": {"owl": {"df": 1}}}),
        (p.FactsReply([fact], ["b" * 32]), {"facts": [fact.to_dict()], "tombstoned": ["b" * 32]}),
        (p.ForgetReply([True]), {"removed": [True]}),
        (
            p.StatsReply("agent-0", 3, 9, False, 2),
            {"agent": "agent-0", "facts": 3, "postings": 9, "ready": False, "hints_pending": 2},
        ),
        (p.ExportReply(shard), {"shard": wire_shard}),
        (p.ImportReply(True), {"ok": True}),
        (p.PingReply("agent-0"), {"agent": "agent-0"}),
        (p.RepairDigestReply([None, [(1, 2)] * 64]), {"digests": [None, [[1, 2]] * 64]}),
        (p.RepairKeysReply(["k"]), {"keys": ["k"]}),
        (p.RepairGetReply(shard), {"shard": wire_shard}),
        (p.RepairPutReply([Tombstone("b" * 32, 1.0)]), {"tombstones": [["b" * 32, 1.0]]}),
    ]
    for message, wire in golden:
        assert p.encode(message) == wire, message
    # what an older agent sent decodes to the same typed request
    legacy = {"op": "facts", "ids": [fact.id]}
    assert p.decode_request(legacy) == p.Facts([fact.id])


@pytest.mark.parametrize(
    ("wire", "words"),
    [
        ([], "must be a JSON object"),
        ({"op": 7}, "unknown operation 7"),
        ({"op": "drop tables"}, "unknown operation"),
        ({"op": "put", "facts": "rows"}, "'facts' must be a list"),
        ({"op": "put", "facts": ["not an object"]}, "a fact must be an object"),
        ({"op": "put", "postings": [["t"]]}, "a posting is"),
        ({"op": "postings", "terms": ["t"], "after": {"t": [1]}}, "a cursor is"),
        ({"op": "postings", "terms": ["t"], "only": ["a"]}, "'only' must be an object"),
        ({"op": "postings", "terms": ["t"], "limit": "ten"}, "limit must be an integer"),
        ({"op": "forget", "tombstones": [["a" * 32]]}, "a tombstone is"),
        ({"op": "facts", "ids": [None]}, "malformed 'facts' request"),
        ({"op": "import", "shard": {"facts": [1]}}, "a fact must be an object"),
        ({"op": "repair_put", "peer": "a", "shard": []}, "'shard' must be an object"),
        ({"op": "repair_digest", "buckets": [[1, 2]]}, "a bucket digest is"),
        ({"op": "repair_keys", "buckets": [[1, "x"]]}, "must be an integer"),
        ({"op": "repair_keys", "buckets": [[70, 0]]}, "out of range"),
        ({"op": "repair_get", "buckets": [[6, 64]]}, "out of range"),
        ({"op": "repair_digest", "buckets": [[6, -1, 0, 0]]}, "out of range"),
        ({"op": "facts", "ids": ["\u0001t:platform"]}, "malformed 'facts' request"),
        ({"op": "facts", "ids": ["x"] * (p.MAX_BATCH + 1)}, "more than"),
    ],
)
def test_malformed_requests_are_refused_with_what_is_wrong(wire: Any, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        p.decode_request(wire)


def test_a_malformed_reply_is_a_value_error_naming_the_operation() -> None:
    with pytest.raises(ValueError, match="malformed 'corpus' reply"):
        p.decode_reply(p.Corpus(tokenizer=1), {"count": "many", "total_length": 1})
    with pytest.raises(ValueError, match="must be a JSON object"):
        p.decode_reply(p.Ping(), ["agent-0"])


def test_repair_messages_are_bounded_by_the_body_size_only() -> None:
    """Repair sends a peer's whole shared set at once (a rebuild from empty): its shards
    and listings take more records than a coordinator's batch."""
    many = [Posting("t", fact_id_for(str(i)), 1, 1, 1.0, None) for i in range(p.MAX_BATCH + 1)]
    shard = ShardExport([], many, [])
    put = p.decode_request(over_the_wire(p.encode(p.RepairPut("a-1", shard, tokenizer=1))))
    assert isinstance(put, p.RepairPut) and len(put.shard.postings) == p.MAX_BATCH + 1
    got = p.decode_reply(p.RepairGet(tokenizer=1), over_the_wire(p.encode(p.RepairGetReply(shard))))
    assert isinstance(got, p.RepairGetReply) and len(got.shard.postings) == p.MAX_BATCH + 1
    with pytest.raises(InvalidInputError, match="more than"):
        p.decode_request(over_the_wire(p.encode(p.Put([], many, tokenizer=1))))  # a client batch is


def test_a_rebuild_larger_than_a_batch_pulls_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """One agent empty, its peer holding more records than a batch: one repair round brings
    them all (with the cap lowered, so the test stays small)."""
    from amplihack_hive import Hive

    with Hive.in_process(2, replication=2, write_quorum=1) as hive:
        transport = hive._transport
        victim = transport.nodes["agent-1"]  # type: ignore[attr-defined]
        transport.down.add("agent-1")  # type: ignore[attr-defined]
        hive.remember_many([f"fact number {i} about owls" for i in range(30)])
        transport.down.discard("agent-1")  # type: ignore[attr-defined]
        assert victim.store.fact_count() == 0
        monkeypatch.setattr(p, "MAX_BATCH", 50)
        reports = hive.repair()
        assert all(not r.failed_peers for r in reports)
        assert victim.store.fact_count() == 30 and victim.store.posting_count() > 50


def test_callers_share_no_mutable_state_with_the_stores() -> None:
    """Without JSON between them (agents of one process), a recalled fact's metadata is
    the caller's own: changing it changes nothing stored."""
    from amplihack_hive import Hive

    with Hive.in_process(3) as hive:
        hive._transport.encode = False  # type: ignore[attr-defined]
        hive.remember("Owls hunt at night", metadata={"source": "field notes"})
        hit = hive.recall("owls")[0]
        hit.metadata["source"] = "changed"
        assert hive.recall("owls")[0].metadata == {"source": "field notes"}


#: Every op an agent from before scopes answers: it refuses any other with a 400.
OPS_BEFORE_SCOPES = {
    "put", "postings", "facts", "forget", "corpus", "stats", "export", "import", "ping",
    "repair_digest", "repair_keys", "repair_get", "repair_put",
}  # fmt: skip


def test_writes_of_scoped_records_use_ops_that_agents_before_scopes_refuse() -> None:
    """An agent from before scopes would drop a fact's scope and place its scoped lists by
    their own keys: a scoped write must be one it refuses, a hive-wide one stays as it was,
    and this version reads both (and the plain op, as the first version with scopes sent)."""
    hive_fact = Fact(fact_id_for("owls"), "owls", created=5.0)
    mine = Fact(fact_id_for("owls", scope="agent:a-1"), "owls", created=5.0, scope="agent:a-1")
    hive_posting = Posting("owl", hive_fact.id, 1, 1, 5.0, None)
    scoped_posting = Posting(scoped("agent:a-1", "owl"), mine.id, 1, 1, 5.0, None)
    writes: list[tuple[p.Request, bool]] = [
        (p.Put([hive_fact], [hive_posting], tokenizer=1), False),
        (p.Put([mine], [], tokenizer=1), True),
        (p.Put([], [hive_posting, scoped_posting], tokenizer=1), True),
        (p.Import(ShardExport([mine], [], []), tokenizer=1), True),
        (p.RepairPut("a-1", ShardExport([hive_fact], [hive_posting], []), tokenizer=1), False),
        (p.RepairPut("a-1", ShardExport([], [scoped_posting], []), tokenizer=1), True),
    ]
    for request, is_scoped in writes:
        wire = p.encode(request)
        assert (wire["op"] not in OPS_BEFORE_SCOPES) is is_scoped, wire["op"]
        assert p.decode_request(over_the_wire(wire)) == request
        assert p.decode_request({**over_the_wire(wire), "op": request.op}) == request
    with pytest.raises(InvalidInputError, match="unknown operation 'facts\\+scopes'"):
        p.decode_request({"op": "facts+scopes", "ids": []})


def test_an_agent_sends_scoped_records_only_to_a_peer_that_knows_scopes() -> None:
    """repair_get and export as an agent before scopes sends them (no "scopes"): refused
    when the records include scoped ones, answered when they are all the hive's."""
    store = InMemoryStore()
    repair = RepairService("a-0", store, lambda: HashRing(["a-0", "a-1"]), 2, tokenizer=1)
    node = MemoryNode("a-0", store, repair, tokenizer=1)
    hive_fact = Fact(fact_id_for("owls"), "owls", created=5.0)
    node.handle(p.encode(p.Put([hive_fact], [], tokenizer=1)))
    old = {"op": "repair_get", "peer": "a-1", "keys": [f"f\x1f{hive_fact.id}"], "buckets": []}
    assert node.handle(old)["shard"]["facts"] == [hive_fact.to_dict()]
    assert node.handle({"op": "export"})["shard"]["facts"] == [hive_fact.to_dict()]
    mine = Fact(fact_id_for("owls", scope="agent:a-1"), "owls", created=5.0, scope="agent:a-1")
    node.handle(p.encode(p.Put([mine], [], tokenizer=1)))
    with pytest.raises(InvalidInputError, match="a-1 does not know scopes"):
        node.handle({**old, "keys": [f"f\x1f{mine.id}"]})
    with pytest.raises(InvalidInputError, match="does not know scopes"):
        node.handle({"op": "export"})
    asked = node.handle({**old, "keys": [f"f\x1f{mine.id}"], "scopes": True})
    assert asked["shard"]["facts"] == [mine.to_dict()]
    assert len(node.handle({"op": "export", "scopes": True})["shard"]["facts"]) == 2


def test_a_put_sends_the_rows_its_coordinator_built_and_builds_them_otherwise() -> None:
    a = Posting("alpha", fact_id_for("a"), 1, 3, 1.0, None)
    b = Posting("beta", fact_id_for("b"), 2, 4, 2.0, "s", 1, 5)
    assert p.Put([], [a, b], tokenizer=2).fields()["postings"] == [a.to_list(), b.to_list()]
    assert p.Put([], [a, b], tokenizer=2, rows=[a.to_list(), b.to_list()]) == p.Put(
        [], [a, b], tokenizer=2
    )
    # rows that do not match the postings (a caller's mistake) are not sent
    assert p.Put([], [a, b], tokenizer=2, rows=[a.to_list()]).fields()["postings"] == [
        a.to_list(),
        b.to_list(),
    ]


def test_a_write_split_in_parts_stores_each_posting_as_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A coordinator builds each posting's row once for all its owners, and a batch over
    MAX_BATCH goes in parts: every store must hold exactly the postings of its terms."""
    import asyncio

    from amplihack_hive.memory.coordinator import Coordinator, corpus_posting
    from amplihack_hive.transport.inprocess import InProcessTransport

    monkeypatch.setattr(p, "MAX_BATCH", 7)
    names = ["a0", "a1", "a2", "a3"]
    stores = {n: InMemoryStore() for n in names}
    nodes = {n: MemoryNode(n, stores[n]) for n in names}
    coordinator = Coordinator(HashRing(names), InProcessTransport(nodes), replication=2)
    texts = [
        f"Reading {i}: sensor {i % 5} in room {i * 7} logged {i % 3} alerts" for i in range(40)
    ]
    asyncio.run(coordinator.remember_many(texts))
    want: dict[str, set[tuple[str, str, int, int]]] = {n: set() for n in names}
    for text in texts:
        fact, postings = coordinator.prepare(text)
        for q in (*postings, corpus_posting(fact, postings)):
            for owner in coordinator.owners(q.term):
                want[owner].add((q.term, q.fact_id, q.tf, q.length))
    for n in names:
        held = stores[n].postings_by_key(stores[n].posting_keys())
        assert {(q.term, q.fact_id, q.tf, q.length) for q in held} == want[n]
