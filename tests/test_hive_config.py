"""Hive home, config model, strict loading, atomic locked updates, and the hive token."""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from amplihack_hive.agent.runstate import AGENT_MODULE, ProcessRecord, write_record
from amplihack_hive.errors import (
    ConfigError,
    HiveStateError,
    InvalidInputError,
    NotFoundError,
)
from amplihack_hive.hive import config as hive_config
from amplihack_hive.hive.config import (
    AgentConfig,
    AzureConfig,
    HiveConfig,
    add_agent,
    create_hive,
    list_hives,
    load,
    load_hive,
    locked,
    remove_agent,
    save,
)
from amplihack_hive.hive.home import (
    DEFAULT_HOME,
    HOME_ENV,
    hive_dir,
    hive_names,
    resolve_home,
    write_file_atomic,
)
from amplihack_hive.hive.token import read_token, token_matches, token_path


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` with its bytes (the lock file aside)."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


# --- home ----------------------------------------------------------------------------------


def test_home_precedence_argument_then_env_then_default(
    hive_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve_home(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_home() == hive_home
    monkeypatch.setenv(HOME_ENV, "")
    assert resolve_home() == Path(os.environ["HOME"]) / ".amplihack" / "hives"
    monkeypatch.delenv(HOME_ENV)
    assert resolve_home() == Path(os.path.expanduser(DEFAULT_HOME))


def test_home_expands_user_and_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_home("~/h") == Path(os.environ["HOME"]) / "h"
    monkeypatch.chdir(tmp_path)
    assert resolve_home("rel") == tmp_path / "rel"


def test_hive_dir_validates_the_name_before_building_a_path(hive_home: Path) -> None:
    assert hive_dir(None, "h1") == hive_home / "h1"
    for bad in ("../x", "..", "/etc", "a/b", ""):
        with pytest.raises(InvalidInputError):
            hive_dir(None, bad)


def test_hive_names_lists_only_real_hives(hive_home: Path) -> None:
    assert hive_names() == []  # the home does not exist yet
    create_hive(None, "beta")
    create_hive(None, "alpha")
    (hive_home / "no-config").mkdir()
    (hive_home / "Bad_Name").mkdir()
    (hive_home / "Bad_Name" / "config.yaml").write_text("name: x\n")
    (hive_home / "stray.txt").write_text("x")
    assert hive_names() == ["alpha", "beta"]


def test_write_file_atomic_leaves_the_old_file_when_the_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "d"
    directory.mkdir()
    target = directory / "f.yaml"
    target.write_bytes(b"old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        write_file_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in directory.iterdir()] == ["f.yaml"]  # no temp file left


# --- create ----------------------------------------------------------------------------------


def test_create_writes_config_and_token(hive_home: Path) -> None:
    cfg = create_hive(None, "h", agents=3, replication=2, backend="memory", prompt="be brief")
    directory = hive_home / "h"
    assert cfg.agent_names == ["agent-0", "agent-1", "agent-2"]
    assert all(agent.prompt == "be brief" and agent.kuzu_db is None for agent in cfg.agents)
    assert (cfg.replication, cfg.backend, cfg.buffer_pool_mb, cfg.agents_per_process) == (
        2,
        "memory",
        256,
        1,
    )
    assert cfg.azure == AzureConfig()
    assert load(directory / "config.yaml") == cfg
    assert load_hive(None, "h") == cfg
    token = read_token(directory)
    assert len(token) >= 40
    assert stat.S_IMODE(token_path(directory).stat().st_mode) == 0o600
    assert sorted(p.name for p in directory.iterdir()) == [".lock", "config.yaml", "token"]


def test_create_defaults_match_the_contract(hive_home: Path) -> None:
    cfg = create_hive(hive_home, "h")
    assert (cfg.agent_names, cfg.replication, cfg.backend) == (["agent-0"], 3, "kuzu")


def test_the_token_is_created_0600_even_with_a_permissive_umask(hive_home: Path) -> None:
    old = os.umask(0)
    try:
        create_hive(None, "h")
    finally:
        os.umask(old)
    assert stat.S_IMODE(token_path(hive_home / "h").stat().st_mode) == 0o600


def test_existing_hive_without_force_is_refused_and_unchanged(hive_home: Path) -> None:
    create_hive(None, "h", agents=2)
    before = snapshot(hive_home / "h")
    with pytest.raises(HiveStateError, match=r"already exists .*--force"):
        create_hive(None, "h", agents=5, backend="memory")
    assert snapshot(hive_home / "h") == before


def test_force_recreates_and_keeps_nothing_stale(hive_home: Path) -> None:
    create_hive(None, "h", agents=2)
    directory = hive_home / "h"
    old_token = read_token(directory)
    (directory / "logs").mkdir()
    (directory / "logs" / "agent-0.log").write_text("old log")
    (directory / "agents" / "agent-1" / "kuzu").mkdir(parents=True)
    (directory / "run.json").write_text("{}")
    outside = hive_home.parent / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    (directory / "link").symlink_to(outside, target_is_directory=True)

    cfg = create_hive(None, "h", agents=1, force=True)

    assert cfg.agent_names == ["agent-0"]
    assert sorted(p.name for p in directory.iterdir()) == [".lock", "config.yaml", "token"]
    assert read_token(directory) != old_token
    assert (outside / "keep").read_text() == "keep"  # a symlink is removed, not followed


def test_force_refuses_to_wipe_a_running_hive(hive_home: Path) -> None:
    create_hive(None, "h", agents=2)
    directory = hive_home / "h"
    # A stand-in agent process: its command line names the agent module and the hive, as
    # the supervisor's do, and it publishes a run record.
    code = "import time; time.sleep(60)"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, AGENT_MODULE, "--hive-dir", str(directory)]
    )
    try:
        # until it has exec'd: before that its command line is still ours (pytest's), and a
        # loaded machine can take a while (this is what made the test flaky under load)
        deadline = time.monotonic() + 30
        while AGENT_MODULE not in psutil.Process(proc.pid).cmdline():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        record = ProcessRecord(
            group="agent-0",
            pid=proc.pid,
            create_time=psutil.Process(proc.pid).create_time(),
            url="http://127.0.0.1:1",
            agents=["agent-0", "agent-1"],
            started=time.time(),
        )
        write_record(directory, record)
        before = snapshot(directory)
        with pytest.raises(HiveStateError, match=rf"is running \(agent processes {proc.pid}\)"):
            create_hive(None, "h", force=True)
        assert snapshot(directory) == before
    finally:
        proc.kill()
        proc.wait()
    create_hive(None, "h", force=True)  # the record is stale now: the hive is not running
    assert not (directory / "run").exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "../x"}, "invalid hive name '../x'"),
        ({"name": "Agent_1"}, "invalid hive name"),
        ({"agents": 0}, "number of agents must be an integer >= 1, got 0"),
        ({"agents": -3}, "number of agents"),
        ({"agents": True}, "number of agents"),
        ({"agents": hive_config.MAX_AGENTS + 1}, "at most"),
        ({"replication": 0}, "replication factor must be an integer >= 1"),
        ({"replication": 2.0}, "replication factor"),
        ({"backend": "sqlite"}, "backend must be one of kuzu, memory"),
        ({"prompt": 3}, "prompt must be a string"),
    ],
)
def test_bad_create_arguments_are_refused_before_anything_is_written(
    hive_home: Path, kwargs: dict[str, object], match: str
) -> None:
    arguments: dict[str, object] = {"name": "h", **kwargs}
    with pytest.raises(InvalidInputError, match=re.escape(match)):
        create_hive(None, **arguments)  # type: ignore[arg-type]
    assert not hive_home.exists()


def test_create_of_many_agents(hive_home: Path) -> None:
    cfg = create_hive(None, "big", agents=100)
    assert cfg.agent_names[-1] == "agent-99"
    assert len(load_hive(None, "big").agents) == 100


# --- add / remove ---------------------------------------------------------------------------


def test_add_agent_appends_and_persists(hive_home: Path) -> None:
    create_hive(None, "h")
    cfg = add_agent(None, "h", "helper", "you help", kuzu_db="/data/helper.kuzu")
    assert cfg.agent_names == ["agent-0", "helper"]
    assert load_hive(None, "h").agent("helper") == AgentConfig(
        "helper", "you help", "/data/helper.kuzu"
    )


def test_add_agent_refuses_duplicates_and_bad_names_without_writing(hive_home: Path) -> None:
    create_hive(None, "h")
    before = snapshot(hive_home / "h")
    with pytest.raises(HiveStateError, match="already has an agent named 'agent-0'"):
        add_agent(None, "h", "agent-0", "x")
    with pytest.raises(InvalidInputError, match=r"invalid agent name '\.\./x'"):
        add_agent(None, "h", "../x", "x")
    with pytest.raises(InvalidInputError, match="must not be empty"):
        add_agent(None, "h", "a2", "x", kuzu_db=" ")
    add_agent(None, "h", "a2", "x", kuzu_db="/db/one")
    after_a2 = snapshot(hive_home / "h")
    with pytest.raises(InvalidInputError, match="already the database of agents"):
        add_agent(None, "h", "a3", "x", kuzu_db="/db/./one")
    assert snapshot(hive_home / "h") == after_a2
    assert before != after_a2


def test_add_agent_to_a_missing_hive_names_the_path(hive_home: Path) -> None:
    with pytest.raises(NotFoundError, match=re.escape(str(hive_home / "nope" / "config.yaml"))):
        add_agent(None, "nope", "a", "x")
    assert not hive_home.exists()


def test_packed_agents_keep_their_domains_through_membership_changes(hive_home: Path) -> None:
    create_hive(None, "h", agents=7, agents_per_process=3)
    cfg = load_hive(None, "h")
    assert cfg.domains() == {
        **{f"agent-{i}": "p0" for i in range(3)},
        **{f"agent-{i}": "p1" for i in range(3, 6)},
        "agent-6": "p2",
    }
    add_agent(None, "h", "x1")  # the last domain has room
    add_agent(None, "h", "x2")
    add_agent(None, "h", "x3")  # it is full now: a new domain
    add_agent(None, "h", "x4", domain="zone-b")
    domains = load_hive(None, "h").domains()
    assert (domains["x1"], domains["x2"], domains["x3"], domains["x4"]) == (
        "p2",
        "p2",
        "p3",
        "zone-b",
    )
    remove_agent(None, "h", "agent-1")  # nobody else changes domain
    after = load_hive(None, "h").domains()
    assert after == {a: d for a, d in domains.items() if a != "agent-1"}
    with pytest.raises(InvalidInputError):
        add_agent(None, "h", "x5", domain="Bad Domain")


def test_agents_without_domains_are_grouped_by_position(hive_home: Path) -> None:
    create_hive(None, "h", agents=5)
    cfg = load_hive(None, "h")
    assert cfg.domains() == {f"agent-{i}": f"agent-{i}" for i in range(5)}
    assert cfg.domains(2) == {
        "agent-0": "agent-0",
        "agent-1": "agent-0",
        "agent-2": "agent-2",
        "agent-3": "agent-2",
        "agent-4": "agent-4",
    }


def test_remove_agent(hive_home: Path) -> None:
    create_hive(None, "h", agents=3)
    cfg = remove_agent(None, "h", "agent-1")
    assert cfg.agent_names == ["agent-0", "agent-2"]
    assert load_hive(None, "h").agent_names == ["agent-0", "agent-2"]
    with pytest.raises(NotFoundError, match="has no agent 'agent-1'"):
        remove_agent(None, "h", "agent-1")
    remove_agent(None, "h", "agent-0")
    with pytest.raises(HiveStateError, match="last agent"):
        remove_agent(None, "h", "agent-2")
    assert load_hive(None, "h").agent_names == ["agent-2"]
    with pytest.raises(NotFoundError):
        remove_agent(None, "missing", "agent-0")


def test_load_hive_missing_names_the_path(hive_home: Path) -> None:
    with pytest.raises(NotFoundError) as info:
        load_hive(None, "ghost")
    assert str(hive_home / "ghost" / "config.yaml") in str(info.value)


def test_load_hive_refuses_a_config_whose_name_is_not_its_directory(hive_home: Path) -> None:
    create_hive(None, "h")
    (hive_home / "h").rename(hive_home / "copy")
    with pytest.raises(ConfigError, match=r"name: 'h' does not match the directory name 'copy'"):
        load_hive(None, "copy")


def test_list_hives_shows_broken_ones_with_their_error(hive_home: Path) -> None:
    assert list_hives() == []
    create_hive(None, "good", agents=2, replication=1)
    create_hive(None, "broken")
    (hive_home / "broken" / "config.yaml").write_text("name: broken\nagents: [\n")
    summaries = list_hives()
    assert [s.name for s in summaries] == ["broken", "good"]
    broken, good = summaries
    assert (good.agents, good.replication, good.backend, good.error) == (2, 1, "kuzu", None)
    assert good.path == hive_home / "good"
    assert broken.error is not None and "malformed YAML" in broken.error
    assert broken.to_dict()["path"] == str(hive_home / "broken")


# --- strict loading ----------------------------------------------------------------------------

GOOD = """\
name: h
replication: 3
backend: kuzu
agents:
  - name: agent-0
    prompt: hello
  - name: agent-1
"""


def test_a_minimal_hand_written_config_loads_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(GOOD)
    cfg = load(path)
    # no tokenizer key: a hive made before versions existed, whose postings are of version 1
    assert cfg == HiveConfig(
        name="h", agents=[AgentConfig("agent-0", "hello"), AgentConfig("agent-1")], tokenizer=1
    )


def test_the_tokenizer_is_one_the_code_knows(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(GOOD + "tokenizer: 2\n")
    assert load(path).tokenizer == 2
    path.write_text(GOOD + "tokenizer: 7\n")
    with pytest.raises(
        ConfigError, match="tokenizer: unknown tokenizer 7; this version knows 1, 2"
    ):
        load(path)


def test_save_then_load_round_trips_every_field(tmp_path: Path) -> None:
    cfg = HiveConfig(
        name="h",
        replication=5,
        backend="memory",
        buffer_pool_mb=64,
        agents_per_process=4,
        agents=[AgentConfig("a", "p: with colon\nand newline", "rel/db"), AgentConfig("b", "ü")],
        azure=AzureConfig("rg", "westeurope", "img:1", 3, "sub-id"),
    )
    path = tmp_path / "config.yaml"
    save(path, cfg)
    assert load(path) == cfg
    assert path.read_text(encoding="utf-8").startswith("# amplihack-hive hive config")


def test_save_refuses_an_invalid_config_and_keeps_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(GOOD)
    bad = HiveConfig(name="h", agents=[AgentConfig("a"), AgentConfig("a")])
    with pytest.raises(ConfigError, match="duplicate agent name 'a'"):
        save(path, bad)
    assert path.read_text() == GOOD


def agents_yaml(*names: str) -> str:
    return "agents:\n" + "".join(f"  - name: {n}\n" for n in names)


BAD_CONFIGS = [
    ("top-level list", "- a\n- b\n", "top level: expected a mapping, got a list"),
    ("empty file", "", "top level: expected a mapping, got null"),
    ("unknown key", "name: h\nreplicas: 3\n" + agents_yaml("a"), "replicas: unknown key"),
    ("missing name", agents_yaml("a"), "name: missing"),
    ("missing agents", "name: h\n", "agents: missing"),
    ("bad hive name", "name: My_Hive\n" + agents_yaml("a"), "name: invalid hive name 'My_Hive'"),
    ("name not str", "name: 12\n" + agents_yaml("a"), "name: invalid hive name 12"),
    (
        "replication str",
        "name: h\nreplication: '3'\n" + agents_yaml("a"),
        "replication: expected an integer >= 1, got a string",
    ),
    (
        "replication zero",
        "name: h\nreplication: 0\n" + agents_yaml("a"),
        "replication: expected an integer >= 1, got 0",
    ),
    (
        "replication bool",
        "name: h\nreplication: yes\n" + agents_yaml("a"),
        "replication: expected an integer >= 1, got a boolean",
    ),
    (
        "buffer pool float",
        "name: h\nbuffer_pool_mb: 1.5\n" + agents_yaml("a"),
        "buffer_pool_mb: expected an integer >= 1, got a number",
    ),
    (
        "agents per process zero",
        "name: h\nagents_per_process: 0\n" + agents_yaml("a"),
        "agents_per_process: expected an integer >= 1, got 0",
    ),
    (
        "backend",
        "name: h\nbackend: sqlite\n" + agents_yaml("a"),
        "backend: expected one of kuzu, memory, got 'sqlite'",
    ),
    ("agents mapping", "name: h\nagents: {a: 1}\n", "agents: expected a list, got a mapping"),
    ("agents empty", "name: h\nagents: []\n", "agents: a hive needs at least one agent"),
    (
        "agent not mapping",
        "name: h\nagents:\n  - agent-0\n",
        "agents[0]: expected a mapping, got a string",
    ),
    (
        "path traversal agent",
        "name: h\n" + agents_yaml("agent-0", "agent-1", "agent-2", "../x"),
        "agents[3].name: invalid agent name '../x'",
    ),
    (
        "duplicate agent",
        "name: h\n" + agents_yaml("a", "b", "a"),
        "agents[2].name: duplicate agent name 'a' (also agents[0].name)",
    ),
    (
        "unknown agent key",
        "name: h\nagents:\n  - name: a\n    promt: x\n",
        "agents[0].promt: unknown key (expected one of: name, prompt, kuzu_db, domain)",
    ),
    (
        "prompt not str",
        "name: h\nagents:\n  - name: a\n    prompt: [1]\n",
        "agents[0].prompt: expected a string, got a list",
    ),
    (
        "agent missing name",
        "name: h\nagents:\n  - prompt: x\n",
        "agents[0].name: missing",
    ),
    (
        "shared database",
        "name: h\nagents:\n  - {name: a, kuzu_db: /d}\n  - {name: b, kuzu_db: /d/}\n",
        "agents[1].kuzu_db: '/d/' is already the database of agents[0]",
    ),
    (
        "azure unknown key",
        "name: h\n" + agents_yaml("a") + "azure:\n  region: x\n",
        "azure.region: unknown key",
    ),
    (
        "azure wrong type",
        "name: h\n" + agents_yaml("a") + "azure:\n  agents_per_app: many\n",
        "azure.agents_per_app: expected an integer >= 1, got a string",
    ),
    ("azure not mapping", "name: h\n" + agents_yaml("a") + "azure: 3\n", "azure: expected a map"),
    (
        "duplicate yaml key",
        "name: h\nreplication: 3\nreplication: 1\n" + agents_yaml("a"),
        "line 3, column 1: malformed YAML: duplicate key 'replication'",
    ),
    (
        "malformed yaml",
        "name: h\nagents:\n  - name: a\n   prompt: x\n",
        "line 4, column 4: malformed YAML: expected <block end>",
    ),
    ("unclosed flow", "name: h\nagents: [\n", "malformed YAML"),
    ("tab indentation", "name: h\n\tagents: []\n", "line 2, column 1: malformed YAML"),
    ("python tag", "name: !!python/object:os.system x\n", "malformed YAML"),
]


@pytest.mark.parametrize(
    ("text", "expected"), [(t, e) for _, t, e in BAD_CONFIGS], ids=[i for i, _, _ in BAD_CONFIGS]
)
def test_bad_configs_name_the_file_the_key_and_the_problem(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert expected in message
    assert "\n" not in message


def test_non_utf8_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"name: h\xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load(path)


def test_missing_config_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no hive config at"):
        load(tmp_path / "config.yaml")


# --- the lock -------------------------------------------------------------------------------


def slow_load(delay: float) -> Callable[[Path], HiveConfig]:
    """``load`` that waits after reading: widens the read-modify-write window."""
    real = hive_config.load

    def load_then_wait(path: Path) -> HiveConfig:
        cfg = real(path)
        time.sleep(delay)
        return cfg

    return load_then_wait


def add_concurrently(count: int) -> list[BaseException]:
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        start.wait()
        try:
            add_agent(None, "h", f"extra-{i}", f"prompt {i}")
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_adds_all_survive(hive_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    create_hive(None, "h")
    monkeypatch.setattr(hive_config, "load", slow_load(0.02))
    assert add_concurrently(8) == []
    names = load_hive(None, "h").agent_names
    assert sorted(names) == sorted(["agent-0", *(f"extra-{i}" for i in range(8))])


def test_without_the_lock_the_same_race_loses_updates(
    hive_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control for the test above: it fails when the lock does nothing."""
    import contextlib

    create_hive(None, "h")
    monkeypatch.setattr(hive_config, "load", slow_load(0.05))
    monkeypatch.setattr(hive_config, "locked", lambda directory: contextlib.nullcontext())
    assert add_concurrently(8) == []
    assert len(load_hive(None, "h").agent_names) < 9


def _add_agents_in_a_process(home: str, prefix: str, count: int) -> None:
    hive_config.load = slow_load(0.01)  # type: ignore[assignment]  # this child only
    for i in range(count):
        add_agent(home, "h", f"{prefix}-{i}", "x")


def test_concurrent_adds_from_processes_all_survive(hive_home: Path) -> None:
    create_hive(None, "h")
    context = multiprocessing.get_context("spawn")
    procs = [
        context.Process(target=_add_agents_in_a_process, args=(str(hive_home), f"p{n}", 3))
        for n in range(4)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    names = load_hive(None, "h").agent_names
    assert len(names) == 1 + 4 * 3
    assert set(names) == {"agent-0"} | {f"p{n}-{i}" for n in range(4) for i in range(3)}


def test_lock_times_out_with_a_clear_error(hive_home: Path) -> None:
    create_hive(None, "h")
    with locked(hive_home / "h"):
        started = time.monotonic()
        holds = r"another amplihack-hive command holds .*\.lock"
        with pytest.raises(HiveStateError, match=holds), locked(hive_home / "h", timeout=0.1):
            pass
        assert time.monotonic() - started < 5
    with locked(hive_home / "h", timeout=0.1):
        pass  # released


def test_lock_of_a_missing_hive(hive_home: Path) -> None:
    with pytest.raises(NotFoundError), locked(hive_home / "nope"):
        pass


# --- token ------------------------------------------------------------------------------------


def test_token_errors_and_comparison(hive_home: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = hive_home / "h"
    directory.mkdir(parents=True)
    with pytest.raises(NotFoundError, match="no hive token"):
        read_token(directory)
    token_path(directory).write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        read_token(directory)
    token_path(directory).write_text("secret\n")
    token_path(directory).chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="amplihack_hive"):
        assert read_token(directory) == "secret"
    assert "readable by others" in caplog.text
    assert token_matches("secret", "secret")
    assert not token_matches("secret", "secreT")
    assert not token_matches("secret", None)
