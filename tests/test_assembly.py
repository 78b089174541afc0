"""One place builds every agent: the settings given to ``Hive.in_process``, ``Memory``, the
agent process's command line and ``Hive.connect`` reach the parts they build (the store,
repair, the ring, the coordinator), so none of them can quietly run with a default."""

from __future__ import annotations

from pathlib import Path

import pytest

from amplihack_hive.agent.process import parse_args
from amplihack_hive.api import Hive, Memory
from amplihack_hive.errors import InvalidInputError
from amplihack_hive.memory.assembly import (
    AgentSettings,
    build_coordinator,
    build_node,
    open_agent_store,
)
from amplihack_hive.memory.config import MemoryConfig
from amplihack_hive.memory.kuzu_store import KuzuStore
from amplihack_hive.transport.inprocess import InProcessTransport


def test_in_process_hives_build_with_every_setting_given() -> None:
    with Hive.in_process(4, replication=2, write_quorum=1, vnodes=16) as hive:
        coordinator = hive._coordinator
        assert (coordinator.replication, coordinator.write_quorum) == (2, 1)
        assert coordinator.ring.vnodes == 16 and len(coordinator.ring) == 4
        transport = hive._transport
        assert isinstance(transport, InProcessTransport)
        for node in transport.nodes.values():
            assert node.repair is not None and node.repair.replication == 2
            assert node.repair.ring() is coordinator.ring  # the current ring, not a copy


def test_memory_builds_from_its_config(tmp_path: Path) -> None:
    cfg = MemoryConfig.resolve(
        backend="kuzu", data_dir=tmp_path, vnodes=32, replication=2, max_content_bytes=100
    )
    with Memory("agent-0", cfg) as memory:
        coordinator = memory._coordinator
        assert coordinator.ring.vnodes == 32 and coordinator.replication == 2
        assert coordinator.max_content_bytes == 100
        assert isinstance(memory._store, KuzuStore)
        with pytest.raises(InvalidInputError, match="at most 100"):
            memory.remember("x" * 101)


def test_the_agent_process_builds_from_its_command_line(tmp_path: Path) -> None:
    opts = parse_args(
        [
            "--hive-dir",
            str(tmp_path),
            "--agents",
            "agent-0",
            "--all-agents",
            "agent-0,agent-1",
            "--replication",
            "2",
            "--backend",
            "memory",
            "--buffer-pool-mb",
            "64",
        ]
    )
    # no --tokenizer: an agent of a hive rendered before versions existed indexes with 1
    assert opts.settings() == AgentSettings(
        backend="memory", buffer_pool_mb=64, replication=2, tokenizer=1
    )
    again = parse_args(["--hive-dir", str(tmp_path), "--agents", "agent-0", "--tokenizer", "2"])
    assert again.settings().tokenizer == 2


def test_the_builders_pass_the_settings_on(tmp_path: Path) -> None:
    settings = AgentSettings(
        backend="kuzu", buffer_pool_mb=64, replication=2, write_quorum=1, vnodes=8
    )
    store = open_agent_store(settings, tmp_path / "a")
    try:
        assert isinstance(store, KuzuStore)
        coordinator = build_coordinator(
            ["a", "b"], InProcessTransport({}), settings, domains={"a": "p1"}, agent="a"
        )
        assert coordinator.ring.vnodes == 8 and coordinator.ring.domain("a") == "p1"
        assert (coordinator.replication, coordinator.write_quorum, coordinator.agent) == (
            2,
            1,
            "a",
        )
        node = build_node("a", store, settings, lambda: coordinator.ring)
        assert node.repair is not None and node.repair.replication == 2
        assert build_node("a", store, settings).repair is None  # one agent: no anti-entropy
    finally:
        store.close()


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"backend": "sqlite"}, "unknown backend 'sqlite'"),
        ({"replication": 0}, "replication must be an integer >= 1"),
        ({"write_quorum": True}, "write_quorum must be an integer >= 1"),
        ({"vnodes": -1}, "vnodes must be an integer >= 1"),
        ({"max_content_bytes": 0}, "max_content_bytes must be"),
    ],
)
def test_settings_are_checked_once_for_every_builder(
    changes: dict[str, object], words: str
) -> None:
    with pytest.raises(InvalidInputError, match=words):
        AgentSettings(**changes)  # type: ignore[arg-type]
    if "max_content_bytes" not in changes:  # in_process takes the rest as arguments
        with pytest.raises(InvalidInputError, match=words):
            Hive.in_process(2, **changes)  # type: ignore[arg-type]


def test_a_client_of_running_agents_builds_with_the_hives_settings(hive_home: Path) -> None:
    """Hive.connect: the replication of the hive's config, the ring the agents published
    (their failure domains), and the default ring settings the agents use too."""
    from amplihack_hive.hive.config import create_hive
    from amplihack_hive.hive.supervisor import Supervisor

    create_hive(hive_home, "c", agents=4, replication=2, backend="memory", agents_per_process=2)
    with Supervisor(hive_home, "c") as sup:
        sup.start(timeout=60)
        try:
            with Hive.connect("c", hive_home) as client:
                coordinator = client._coordinator
                assert coordinator.replication == 2 and coordinator.write_quorum == 2
                assert coordinator.ring.vnodes == AgentSettings().vnodes
                assert len(coordinator.ring) == 4 and coordinator.ring.domain_count == 2
                client.remember("Owls hunt at night")
                assert client.recall("owls")[0].content == "Owls hunt at night"
        finally:
            sup.stop(timeout=30)
