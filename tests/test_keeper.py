"""The keeper's restart policy: real child processes, an injected clock and sleep for the
policy's arithmetic; then real agent processes under a real hive's keepers."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest

from amplihack_hive.hive.config import RestartConfig, create_hive, load_hive, save
from amplihack_hive.hive.home import config_path, hive_dir
from amplihack_hive.hive.keeper import (
    CRASHED,
    EXITED,
    Exit,
    Keeper,
    Spawn,
    keeper_path,
    read_keeper,
)
from amplihack_hive.hive.supervisor import AgentStatus, Supervisor


class FakeTime:
    """A clock that only moves when slept on (or when a test moves it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def exits_with(
    *codes: int, runs_for: float = 0.0, fake: FakeTime | None = None
) -> tuple[Spawn, list[Sequence[str]]]:
    """A process factory whose n-th child exits with ``codes[n]`` (real processes), each
    taking ``runs_for`` seconds of the fake clock."""
    calls: list[Sequence[str]] = []

    def spawn(command: Sequence[str]) -> subprocess.Popen[bytes]:
        code = codes[min(len(calls), len(codes) - 1)]
        calls.append(command)
        if fake is not None:
            fake.now += runs_for
        return subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])

    return spawn, calls


def keeper(tmp_path: Path, policy: RestartConfig, spawn: Spawn, fake: FakeTime) -> Keeper:
    return Keeper(
        tmp_path,
        "agent-0",
        ["agent-0"],
        ["agent"],
        policy,
        spawn=spawn,
        clock=fake.clock,
        pause=fake.sleep,
    )


def test_failing_agent_is_restarted_with_doubling_backoff_then_given_up(tmp_path: Path) -> None:
    fake = FakeTime()
    spawn, calls = exits_with(3, fake=fake)
    policy = RestartConfig(
        "on-failure", max_restarts=3, window_s=60, backoff_s=0.5, backoff_max_s=1.5
    )
    k = keeper(tmp_path, policy, spawn, fake)
    assert k.run() == 1
    assert len(calls) == 4  # the first run and three restarts
    assert fake.slept == [0.5, 1.0, 1.5]  # doubled, capped
    state = read_keeper(keeper_path(tmp_path, "agent-0"))
    assert state is not None and state.state == CRASHED and state.restarts == 3
    assert state.last_exit is not None and state.last_exit.code == 3
    assert state.reason and "gave up after 3 restarts within 60 s" in state.reason
    assert state.pid == os.getpid() and state.child_pid is None


def test_a_run_as_long_as_the_window_starts_the_count_again(tmp_path: Path) -> None:
    fake = FakeTime()
    # every run lasts the whole window: each failure is the first of its window
    spawn, calls = exits_with(1, 1, 1, 1, 1, 0, runs_for=61.0, fake=fake)
    policy = RestartConfig("on-failure", max_restarts=1, window_s=60, backoff_s=2)
    assert keeper(tmp_path, policy, spawn, fake).run() == 0
    assert len(calls) == 6
    assert fake.slept == [2.0] * 5  # never doubled, never given up
    state = read_keeper(keeper_path(tmp_path, "agent-0"))
    assert state is not None and state.state == EXITED and state.restarts == 5


@pytest.mark.parametrize(
    ("policy", "codes", "runs", "final"),
    [
        ("on-failure", (0,), 1, EXITED),  # a clean exit is not a failure
        ("no", (9,), 1, CRASHED),  # a failure, not restarted
        ("always", (0, 0, 4), 3, CRASHED),  # restarted after clean exits too, until given up
    ],
)
def test_policies(
    tmp_path: Path, policy: str, codes: tuple[int, ...], runs: int, final: str
) -> None:
    fake = FakeTime()
    spawn, calls = exits_with(*codes, fake=fake)
    k = keeper(tmp_path, RestartConfig(policy, max_restarts=2, backoff_s=0.1), spawn, fake)
    assert k.run() == (1 if final == CRASHED else 0)
    assert len(calls) == runs
    state = read_keeper(keeper_path(tmp_path, "agent-0"))
    assert state is not None and state.state == final
    assert state.last_exit is not None and state.last_exit.code == codes[-1]


def test_stop_during_backoff_restarts_nothing(tmp_path: Path) -> None:
    fake = FakeTime()
    spawn, calls = exits_with(2, fake=fake)
    k = keeper(tmp_path, RestartConfig(backoff_s=5.0), spawn, fake)

    def sleep_then_stop(seconds: float) -> None:
        fake.sleep(seconds)
        k.stop()

    k.pause = sleep_then_stop
    assert k.run() == 0
    assert len(calls) == 1
    state = read_keeper(keeper_path(tmp_path, "agent-0"))
    assert state is not None and state.state == EXITED and state.reason == "stopped"
    assert state.restarts == 0


def test_exit_reads_signals() -> None:
    assert str(Exit.of(-9, 0.0)) == "killed by SIGKILL"
    assert str(Exit.of(75, 0.0)) == "exited with status 75"
    assert not Exit.of(0, 0.0).failed and Exit.of(-15, 0.0).failed


# --- real agents under a real hive's keepers -------------------------------------------------


def _set_restart(home: Path, name: str, **changes: Any) -> None:
    cfg = load_hive(home, name)
    save(
        config_path(hive_dir(home, name)),
        dataclasses.replace(cfg, restart=dataclasses.replace(cfg.restart, **changes)),
    )


def _row(sup: Supervisor, agent: str) -> AgentStatus:
    return next(r for r in sup.status() if r.name == agent)


def _until(sup: Supervisor, agent: str, state: str, timeout: float = 30.0) -> AgentStatus:
    deadline = time.monotonic() + timeout
    while (row := _row(sup, agent)).state != state:
        assert time.monotonic() < deadline, row
        time.sleep(0.1)
    return row


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).wait(timeout=10)


def test_agent_killed_twice_in_its_window_is_crashed_until_started(hive_home: Path) -> None:
    create_hive(hive_home, "k", agents=2, replication=2, backend="memory")
    _set_restart(hive_home, "k", max_restarts=1, backoff_s=0.2)
    sup = Supervisor(hive_home, "k")
    sup.start(timeout=60)
    try:
        first = _row(sup, "agent-1")
        assert first.pid is not None
        _kill(first.pid)
        back = _until(sup, "agent-1", "healthy")
        assert back.restarts == 1 and back.pid != first.pid
        assert back.pid is not None
        _kill(back.pid)  # the second failure within the window: given up
        row = _until(sup, "agent-1", "crashed")
        assert row.reason is not None and "killed by SIGKILL" in row.reason
        assert "gave up after 1 restarts" in row.reason
        assert row.last_exit is not None and row.last_exit["signal"] == "SIGKILL"
        assert _row(sup, "agent-0").state == "healthy"
        result = sup.start(timeout=60)  # start brings a crashed agent back, count reset
        assert result.started == ["agent-1"]
        row = _until(sup, "agent-1", "healthy")
        assert row.restarts == 0 and row.last_exit is None
    finally:
        sup.stop(timeout=10)
    assert all(r.state == "stopped" and r.restarts is None for r in sup.status())


def test_policy_no_leaves_a_killed_agent_crashed(hive_home: Path) -> None:
    create_hive(hive_home, "n", agents=1, replication=1, backend="memory")
    _set_restart(hive_home, "n", policy="no")
    sup = Supervisor(hive_home, "n")
    sup.start(timeout=60)
    try:
        pid = _row(sup, "agent-0").pid
        assert pid is not None
        _kill(pid)
        row = _until(sup, "agent-0", "crashed")
        assert row.reason == "killed by SIGKILL; policy no" and row.restarts == 0
    finally:
        sup.stop(timeout=10)


def test_agent_failing_while_starting_fails_the_start_and_leaves_no_keeper(
    hive_home: Path,
) -> None:
    create_hive(hive_home, "f", agents=1, replication=1, backend="kuzu")
    blocker = hive_home / "not-a-dir"
    blocker.write_text("a file where the database's folder should be")
    cfg = load_hive(hive_home, "f")
    cfg.agents[0].kuzu_db = str(blocker / "db")
    save(config_path(hive_dir(hive_home, "f")), cfg)
    sup = Supervisor(hive_home, "f")
    from amplihack_hive.errors import HiveStateError

    with pytest.raises(HiveStateError, match="agent-0 exited with status 1 while starting"):
        sup.start(timeout=60)
    assert sup.live_keepers() == []
    assert _row(sup, "agent-0").state == "stopped"


def test_start_times_out_on_the_injected_clock_and_names_the_late_agents(
    hive_home: Path,
) -> None:
    """The supervisor's process factory and clock are seams: here the "keeper" it spawns
    is a process that never starts an agent, and the clock jumps, so the start's timeout
    is reached at once and reported."""
    create_hive(hive_home, "slow", agents=2, replication=1, backend="memory")
    spawned: list[subprocess.Popen[bytes]] = []

    def spawn(command: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        assert "amplihack_hive.hive.keeper" in command and kwargs["start_new_session"]
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        spawned.append(proc)
        return proc

    now = [0.0]

    def clock() -> float:
        now[0] += 10.0
        return now[0]

    sup = Supervisor(hive_home, "slow", spawn=spawn, clock=clock, sleep=lambda s: None)
    from amplihack_hive.errors import HiveStateError

    try:
        with pytest.raises(HiveStateError, match=r"2 of 2 agents not healthy after 25s: agent-0"):
            sup.start(timeout=25)
        assert len(spawned) == 2  # one process per agent (no packing)
    finally:
        for proc in spawned:
            proc.kill()
            proc.wait()


def test_an_agent_that_cannot_be_started_is_crashed_with_the_reason(tmp_path: Path) -> None:
    def spawn(command: Sequence[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen([str(tmp_path / "no-such-python")])

    fake = FakeTime()
    assert keeper(tmp_path, RestartConfig(), spawn, fake).run() == 1
    state = read_keeper(keeper_path(tmp_path, "agent-0"))
    assert state is not None and state.state == CRASHED
    assert state.reason is not None and "cannot start the agent process" in state.reason
