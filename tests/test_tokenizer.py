"""Tokenizer versions (memory/text.py): the stemmer, the version kept with the postings,
refusals of mixed versions, and ``reindex`` (memory/reindex.py, hive/reindex.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import Result

from amplihack_hive import Hive, Memory, MemoryConfig
from amplihack_hive.errors import HiveStateError, IndexVersionError, InvalidInputError
from amplihack_hive.hive.config import create_hive, load_hive
from amplihack_hive.hive.home import config_path, hive_dir
from amplihack_hive.hive.supervisor import Supervisor
from amplihack_hive.memory import protocol as p
from amplihack_hive.memory.assembly import AgentSettings, build_ring, open_agent_store
from amplihack_hive.memory.node import MemoryNode
from amplihack_hive.memory.records import CORPUS_TERM, Fact, Posting
from amplihack_hive.memory.reindex import reindex_stores
from amplihack_hive.memory.scopes import Access, is_corpus_key
from amplihack_hive.memory.store import REINDEXING, InMemoryStore, Store
from amplihack_hive.memory.text import TOKENIZER, tokenize
from tests.helpers import assert_one_line_error

CORPUS = [
    "The chief technology officers were running the budgets of Project Heron.",
    "Heron's dashboards run nightly on PRJ-4471 in AWS.",
    "Budget reviews happen every quarter; the officer in charge is Dmitri.",
    "Forklift batteries are replaced after 1,400 charging cycles.",
    "The fleet dashboard shows every forklift's charge.",
    "Running costs of the fleet rose by 12 percent.",
]


# -- the tokenizer ------------------------------------------------------------------------


def test_version_2_stems_words_and_keeps_identifiers_numbers_and_acronyms_whole() -> None:
    assert tokenize("running runs ran officers budgets") == ["run", "run", "ran", "offic", "budget"]
    assert tokenize("PRJ-4471's v4.2 budget of 1,200") == [
        "prj-4471",
        "prj",
        "4471",
        "v4.2",
        "v4",
        "2",
        "budget",
        "1200",
    ]
    # three letters or fewer stay as they are (Snowball would make "aws" "aw")
    assert tokenize("AWS CTO ids") == ["aws", "cto", "ids"]
    assert tokenize("what is the budget of the fleet?") == ["budget", "fleet"]


def test_version_1_is_unchanged_for_hives_made_before_versions() -> None:
    assert tokenize("running runs officers budgets cities", 1) == [
        "running",
        "run",
        "officer",
        "budget",
        "city",
    ]


def test_an_unknown_version_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="unknown tokenizer 3; this version knows 1, 2"):
        tokenize("x", 3)
    with pytest.raises(InvalidInputError, match="unknown tokenizer"):
        AgentSettings(tokenizer=0)


def test_recall_finds_other_inflections_with_version_2_only() -> None:
    with Hive.in_process(4, 3) as hive, Hive.in_process(4, 3, tokenizer=1) as old:
        hive.remember_many(CORPUS)
        old.remember_many(CORPUS)
        found = [h.content for h in hive.recall("who runs the dashboards", limit=3)]
        assert found[0] == CORPUS[1]
        # version 1 does not relate "runs" to "running" / "run"
        assert CORPUS[5] in [h.content for h in hive.recall("run", limit=3)]
        assert CORPUS[5] not in [h.content for h in old.recall("run", limit=3)]


# -- the version on the wire and at the node -----------------------------------------------


def test_requests_name_their_tokenizer_only_when_it_is_not_1() -> None:
    assert p.encode(p.Corpus(tokenizer=2)) == {"op": "corpus", "tokenizer": 2}
    assert p.encode(p.Corpus(tokenizer=1)) == {"op": "corpus"}
    assert p.decode_request({"op": "corpus"}) == p.Corpus(tokenizer=1)
    wire = p.encode(p.Postings(["owl"], 1.0, 5, tokenizer=2))
    assert wire["tokenizer"] == 2
    assert p.decode_request(wire) == p.Postings(["owl"], 1.0, 5, None, None, tokenizer=2)
    # a request that carries terms or postings cannot be built without naming its version
    with pytest.raises(TypeError, match="tokenizer"):
        p.Forget([])  # type: ignore[call-arg]
    with pytest.raises(InvalidInputError, match="malformed 'corpus' request: unknown tokenizer 9"):
        p.decode_request({"op": "corpus", "tokenizer": 9})


def test_a_node_refuses_terms_of_another_version_and_takes_bodies_alone() -> None:
    node = MemoryNode("a", InMemoryStore(), tokenizer=2)
    fact = Fact.new("owls hunt", created=1.0)
    posting = Posting("owl", fact.id, 1, 2, 1.0, None)
    with pytest.raises(IndexVersionError, match="agent a indexes with tokenizer 2, and this"):
        node.handle({"op": "postings", "terms": ["owl"], "avgdl": 1.0, "limit": 3})
    with pytest.raises(IndexVersionError):
        node.answer(p.Put([fact], [posting], tokenizer=1))
    with pytest.raises(IndexVersionError):
        node.answer(p.Corpus(tokenizer=1))
    assert node.answer(p.Put([fact], [], tokenizer=1)).inserted == [True]  # bodies have no terms
    node.answer(p.Put([], [posting], tokenizer=2))
    assert node.answer(p.Postings(["owl"], 1.0, 3, tokenizer=2)).lists["owl"]


def test_a_coordinator_of_another_version_gets_an_error_not_an_incomplete_result() -> None:
    with Hive.in_process(5, 3) as hive:
        hive.remember_many(CORPUS)
        hive._coordinator.tokenizer = 1  # a client whose config is out of date
        with pytest.raises(IndexVersionError, match=r"tokenizer 2.*built with tokenizer 1"):
            hive.recall("budget")
        with pytest.raises(IndexVersionError):
            hive.remember("a fact written with the wrong terms")


# -- the version in the stores --------------------------------------------------------------


@pytest.fixture(params=["memory", "kuzu"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    opened: list[Store] = []
    shared = InMemoryStore()

    def again() -> Store:
        if request.param == "memory":
            return shared
        for s in opened:
            s.close()
        s = open_agent_store(AgentSettings(backend="kuzu"), tmp_path / "s", check_index=False)
        opened.append(s)
        return s

    yield again
    for s in opened:
        s.close()


def test_a_store_keeps_its_version_and_a_reset_drops_only_postings(
    open_store: Callable[[], Store],
) -> None:
    store = open_store()
    assert store.tokenizer() is None
    fact = Fact.new("owls hunt", created=1.0)
    store.put_facts([fact])
    store.put_postings(
        [Posting("owl", fact.id, 1, 2, 1.0, None), Posting(CORPUS_TERM, fact.id, 1, 2, 0, None)]
    )
    store.set_tokenizer(2)
    store = open_store()
    assert store.tokenizer() == 2
    store.reset_index()
    assert store.tokenizer() == REINDEXING
    store = open_store()
    assert store.tokenizer() == REINDEXING
    assert store.posting_count() == 0 and store.term_stats(CORPUS_TERM) == (0, 0)
    assert list(store.get_facts([fact.id])) == [fact.id]


def test_a_store_of_another_version_or_half_rebuilt_is_refused(tmp_path: Path) -> None:
    v1 = AgentSettings(backend="kuzu", tokenizer=1)
    v2 = AgentSettings(backend="kuzu", tokenizer=2)
    # records written before versions were recorded: version 1
    store = open_agent_store(v1, tmp_path / "old", check_index=False)
    store.put_facts([Fact.new("owls hunt", created=1.0)])
    store.close()
    with pytest.raises(IndexVersionError, match="indexed with tokenizer 1, and this hive uses 2"):
        open_agent_store(v2, tmp_path / "old")
    open_agent_store(v1, tmp_path / "old").close()  # and now it says so
    store = open_agent_store(v2, tmp_path / "old", check_index=False)
    assert store.tokenizer() == 1
    store.reset_index()
    store.close()
    with pytest.raises(
        IndexVersionError, match="rebuild did not finish; run `amplihack-hive reindex"
    ):
        open_agent_store(v1, tmp_path / "old")
    # a new store takes the hive's version
    open_agent_store(v2, tmp_path / "new").close()
    with pytest.raises(IndexVersionError):
        open_agent_store(v1, tmp_path / "new")


def test_memory_adopts_its_stores_version_unless_told(tmp_path: Path) -> None:
    old = MemoryConfig(data_dir=tmp_path, tokenizer=1, backend="kuzu")
    with Memory("agent-0", old) as memory:
        memory.remember("The officers were running late.")
    with Memory("agent-0", MemoryConfig(data_dir=tmp_path, backend="kuzu")) as memory:
        assert memory._coordinator.tokenizer == 1
        assert memory.recall("running")  # the version-1 term
    with pytest.raises(IndexVersionError):
        Memory("agent-0", MemoryConfig(data_dir=tmp_path, backend="kuzu", tokenizer=2))
    with Memory("agent-1", MemoryConfig(data_dir=tmp_path, backend="kuzu")) as memory:
        assert memory._coordinator.tokenizer == TOKENIZER


# -- reindex ---------------------------------------------------------------------------------


def ranked(hive: Hive, question: str) -> list[tuple[str, float]]:
    return [(h.id, round(h.score, 9)) for h in hive.recall(question, limit=20)]


QUESTIONS = ["running budget", "officer", "dashboards run", "forklift charge", "1,400", "prj-4471"]


def test_a_rebuilt_hive_ranks_as_one_indexed_with_the_new_version_from_the_start(
    tmp_path: Path,
) -> None:
    extra = [f"Fact {i} about running item{i} and officers of w{i % 7}" for i in range(300)]
    with Hive.in_process(6, 3, backend="kuzu", path=tmp_path / "old", tokenizer=1) as old:
        ids = old.remember_many(CORPUS + extra)
        old.forget(ids[0])
        old.forget(ids[10])
    live = [c for i, c in enumerate(CORPUS + extra) if i not in (0, 10)]
    settings = AgentSettings(backend="kuzu", tokenizer=2)
    names = [f"agent-{i}" for i in range(6)]
    stores = {n: open_agent_store(settings, tmp_path / "old" / n, check_index=False) for n in names}
    seen: list[tuple[int, int]] = []
    try:
        report = reindex_stores(
            stores, build_ring(names, settings), 3, 2, progress=lambda d, t: seen.append((d, t))
        )
    finally:
        for s in stores.values():
            s.close()
    assert (report.facts, report.stores, report.version) == (len(live), 6, 2)
    assert seen[0] == (0, len(live)) and seen[-1] == (len(live), len(live))
    with (
        Hive.in_process(6, 3, backend="kuzu", path=tmp_path / "old", tokenizer=2) as rebuilt,
        Hive.in_process(6, 3) as fresh,
    ):
        fresh.remember_many(live)
        for q in QUESTIONS:
            assert ranked(rebuilt, q) == ranked(fresh, q), q
        assert ids[0] not in {h.id for h in rebuilt.recall("chief technology officers")}
    with pytest.raises(IndexVersionError, match="indexed with tokenizer 2, and this hive uses 1"):
        Hive.in_process(6, 3, backend="kuzu", path=tmp_path / "old", tokenizer=1)


def test_a_rebuild_needs_every_store_on_the_ring() -> None:
    settings = AgentSettings()
    with pytest.raises(InvalidInputError, match="missing: b"):
        reindex_stores({"a": InMemoryStore()}, build_ring(["a", "b"], settings), 1, 2)


# -- reindex of a local hive, with real agent processes ---------------------------------------


def as_version_1(home: Path, name: str) -> None:
    """The hive's config as written before versions existed (no tokenizer key)."""
    path = config_path(hive_dir(home, name))
    data = yaml.safe_load(path.read_text())
    del data["tokenizer"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert load_hive(home, name).tokenizer == 1


@pytest.mark.slow
def test_reindex_moves_a_running_hive_of_version_1_to_version_2(
    hive_home: Path, cli: Callable[..., Result]
) -> None:
    create_hive(hive_home, "old", agents=3)
    as_version_1(hive_home, "old")
    sup = Supervisor(hive_home, "old")
    sup.start(timeout=60)
    try:
        with Hive.connect("old", hive_home) as client:
            client.remember_many(CORPUS)
            assert CORPUS[5] not in [h.content for h in client.recall("run", limit=3)]
        assert_one_line_error(cli("reindex", "old"), "hive 'old' is running", "stop it first")
    finally:
        sup.stop()
    result = cli("reindex", "old")
    assert result.exit_code == 0, result.stderr
    assert f"re-indexed {len(CORPUS)} facts of hive old with tokenizer 2" in result.stdout
    assert load_hive(hive_home, "old").tokenizer == 2
    sup = Supervisor(hive_home, "old")
    sup.start(timeout=60)
    try:
        with Hive.connect("old", hive_home) as client:
            assert CORPUS[5] in [h.content for h in client.recall("run", limit=3)]
        # a client that read the config before the move: refused over HTTP (409), not
        # answered with terms of two versions nor called incomplete
        stale = Hive.connect("old", hive_home)
        try:
            stale._coordinator.tokenizer = 1
            with pytest.raises(IndexVersionError, match="built with tokenizer 1"):
                stale.recall("running costs")
        finally:
            stale.close()
    finally:
        sup.stop()
    # a config that names another version than the stores hold: the agents do not start,
    # and start says why
    as_version_1(hive_home, "old")
    assert_one_line_error(
        cli("start", "old", "--timeout", "30"),
        "is indexed with tokenizer 2, and this hive uses 1",
    )
    Supervisor(hive_home, "old").stop()


def test_reindex_refuses_an_unknown_version_and_a_missing_hive(
    hive_home: Path, cli: Callable[..., Result]
) -> None:
    assert_one_line_error(cli("reindex", "nope"), "hive 'nope' not found")
    create_hive(hive_home, "h", agents=1)
    assert_one_line_error(cli("reindex", "h", "--tokenizer", "7"), "unknown tokenizer 7")


def test_a_half_done_reindex_is_finished_by_running_it_again(
    hive_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amplihack_hive.hive.reindex import reindex_hive
    from amplihack_hive.memory.kuzu_store import KuzuStore

    create_hive(hive_home, "h", agents=3)
    as_version_1(hive_home, "h")
    directory = hive_dir(hive_home, "h")
    with Hive.in_process(3, 3, backend="kuzu", path=directory / "data", tokenizer=1) as hive:
        hive.remember_many(CORPUS)
    real = KuzuStore.put_postings
    calls = 0

    def dies_on_the_second_write(self: KuzuStore, postings: list[Posting]) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt  # one store has its new postings, the others not yet
        real(self, postings)

    monkeypatch.setattr(KuzuStore, "put_postings", dies_on_the_second_write)
    with pytest.raises(KeyboardInterrupt):
        reindex_hive(hive_home, "h", 2)
    monkeypatch.setattr(KuzuStore, "put_postings", real)
    assert load_hive(hive_home, "h").tokenizer == 1  # the config moves last
    for tokenizer in (1, 2):
        with pytest.raises(IndexVersionError, match="did not finish"):
            Hive.in_process(3, 3, backend="kuzu", path=directory / "data", tokenizer=tokenizer)
    assert not list((directory / "data").glob("*.postings.old"))  # set aside, then removed
    report = reindex_hive(hive_home, "h", 2)
    assert report.facts == len(CORPUS) and load_hive(hive_home, "h").tokenizer == 2
    with Hive.in_process(3, 3, backend="kuzu", path=directory / "data") as hive:
        assert hive._coordinator.tokenizer == 2  # adopted from the stores
        assert CORPUS[5] in [h.content for h in hive.recall("run", limit=3)]
    sup = Supervisor(hive_home, "h")
    sup.start(timeout=60)
    try:
        with pytest.raises(HiveStateError, match="is running"):
            reindex_hive(hive_home, "h", 2)
    finally:
        sup.stop()


def test_reindex_refuses_a_hive_whose_stores_are_not_on_this_machine(hive_home: Path) -> None:
    from amplihack_hive.hive.reindex import reindex_hive

    create_hive(hive_home, "azure", agents=3)  # created here, deployed elsewhere
    as_version_1(hive_home, "azure")
    with pytest.raises(HiveStateError, match="no agent of hive 'azure' has a store on this"):
        reindex_hive(hive_home, "azure", 2)
    assert load_hive(hive_home, "azure").tokenizer == 1


def test_a_forget_from_a_client_of_another_version_is_refused() -> None:
    with Hive.in_process(5, 3) as hive:
        fid = hive.remember("The officers were running late.")
        hive._coordinator.tokenizer = 1
        with pytest.raises(IndexVersionError):
            hive.forget(fid)
        hive._coordinator.tokenizer = 2
        assert hive.recall("run")  # nothing was forgotten half way
        hive.forget(fid)
        assert not hive.recall("run")


def test_memory_with_peers_and_a_new_store_takes_version_1_unless_told(tmp_path: Path) -> None:
    peers = {"agent-1": "http://127.0.0.1:9"}  # never reached: nothing is sent
    with Memory("agent-0", MemoryConfig(data_dir=tmp_path, peers=peers)) as memory:
        assert memory._coordinator.tokenizer == 1
    with Memory("agent-2", MemoryConfig(data_dir=tmp_path, peers=peers, tokenizer=2)) as memory:
        assert memory._coordinator.tokenizer == 2


def test_a_rebuild_keeps_every_fact_in_its_scope_and_corpus_lists_with_the_hives(
    tmp_path: Path,
) -> None:
    groups = {"ops": ["agent-0"]}
    scopes = ["hive", "agent:agent-1", "group:ops"]
    items = [{"content": c, "scope": scopes[i % 3]} for i, c in enumerate(CORPUS)]
    with Hive.in_process(6, 3, backend="kuzu", path=tmp_path / "old", tokenizer=1) as old:
        old._coordinator.access = Access.admin(groups)
        old.remember_many(items)
    settings = AgentSettings(backend="kuzu", tokenizer=2)
    names = [f"agent-{i}" for i in range(6)]
    stores = {n: open_agent_store(settings, tmp_path / "old" / n, check_index=False) for n in names}
    try:
        reindex_stores(stores, build_ring(names, settings), 3, 2)
    finally:
        for s in stores.values():
            s.close()
    with (
        Hive.in_process(6, 3, backend="kuzu", path=tmp_path / "old", groups=groups) as rebuilt,
        Hive.in_process(6, 3, groups=groups) as fresh,
    ):
        fresh.remember_many(items)
        for q in QUESTIONS:
            for seen in (["hive"], ["agent:agent-1"], scopes):
                got = [(h.id, h.scope, round(h.score, 9)) for h in rebuilt.recall(q, 20, seen)]
                want = [(h.id, h.scope, round(h.score, 9)) for h in fresh.recall(q, 20, seen)]
                assert got == want, (q, seen)
        corpus_owners = set(rebuilt._coordinator.owners(CORPUS_TERM))
        for name, node in rebuilt._transport.nodes.items():
            if any(is_corpus_key(t) for t, _ in node.store.posting_keys()):
                assert name in corpus_owners


def test_the_word_cache_gives_what_tokenizing_afresh_gives_and_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from amplihack_hive.memory import text

    sample = "The PRJ-4471 budgets were raised; Ana's teams run the runners at 1,200 km/h."
    for version in text.TOKENIZERS:
        first = text.tokenize(sample, version)
        text._word_terms[version].clear()
        assert text.tokenize(sample, version) == first == text.tokenize(sample, version)
    monkeypatch.setattr(text, "_WORD_CACHE_MAX", 3)
    text._word_terms[2].clear()
    assert text.tokenize(sample, 2) == first
    assert len(text._word_terms[2]) <= 3
