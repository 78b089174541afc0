"""The launcher forks every keeper from one interpreter, and each keeper forks its agent
process (hive/launcher.py): real processes of a real hive, on both paths."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from amplihack_hive import Hive
from amplihack_hive.agent.runstate import (
    AGENT_MODULE,
    command_of,
    read_records,
    runs_for,
)
from amplihack_hive.hive.config import create_hive
from amplihack_hive.hive.home import hive_dir
from amplihack_hive.hive.keeper import KEEPER_MODULE, read_keepers
from amplihack_hive.hive.launcher import FORK_ENV, LAUNCHER_MODULE, can_fork
from amplihack_hive.hive.supervisor import Supervisor

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux")


def _titled(pid: int) -> bool:
    """Whether a process names itself by one title (setproctitle: forked, not exec'd):
    its arguments are not NUL-separated as an exec'd interpreter's are."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return b" -m " in raw.split(b"\0")[0]


def _wait_restarted(sup: Supervisor, agent: str, old: int) -> int:
    import time

    deadline = time.monotonic() + 30
    while True:
        row = next(r for r in sup.status() if r.name == agent)
        if row.state == "healthy" and row.pid not in (None, old):
            assert row.pid is not None
            return row.pid
        assert time.monotonic() < deadline, row
        time.sleep(0.1)


def test_a_title_reads_as_the_arguments_it_names() -> None:
    hive = Path("/tmp/h/demo")
    # psutil gives a title padded with NULs as one string, or (when the title ran past
    # the original arguments' space) split at spaces already
    split = ["/py", "-m", AGENT_MODULE, "--hive-dir", str(hive), "--agents", "a"]
    assert command_of(split) == split and runs_for(split, AGENT_MODULE, hive)
    forked = [f"/py -m {AGENT_MODULE} --hive-dir {hive} --agents a", "", "", ""]
    assert command_of(forked) == [
        "/py",
        "-m",
        AGENT_MODULE,
        "--hive-dir",
        str(hive),
        "--agents",
        "a",
    ]
    assert runs_for(forked, AGENT_MODULE, hive)
    assert not runs_for(forked, KEEPER_MODULE, hive)
    assert not runs_for(forked, AGENT_MODULE, Path("/tmp/h/dem"))
    assert not runs_for(forked, AGENT_MODULE, Path("/tmp/h/demo2"))
    execd = ["/py", "-m", AGENT_MODULE, "--hive-dir", "/a b/c"]
    assert command_of(execd) == execd and runs_for(execd, AGENT_MODULE, Path("/a b/c"))
    assert not runs_for(["/py", "-m", AGENT_MODULE, "--hive-dir"], AGENT_MODULE, hive)


def test_forking_is_off_for_paths_with_spaces_and_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not can_fork(tmp_path / "a hive")
    monkeypatch.setenv(FORK_ENV, "0")
    assert not can_fork(tmp_path / "hive")
    monkeypatch.setenv(FORK_ENV, "1")
    assert can_fork(tmp_path / "hive") is sys.platform.startswith("linux")


@linux_only
def test_keepers_and_agents_are_forked_serve_restart_and_stop(hive_home: Path) -> None:
    create_hive(hive_home, "f", agents=3, replication=2, backend="kuzu")
    sup = Supervisor(hive_home, "f")
    directory = hive_dir(hive_home, "f")
    sup.start(timeout=60)
    try:
        keepers = {k.group: k for k in read_keepers(directory)}
        records = read_records(directory)
        assert len(keepers) == 3 and len(records) == 3
        for rec in records:
            agent = psutil.Process(rec.pid)
            keeper = keepers[rec.group]
            # the agent is its keeper's fork, both named by their usual command lines
            assert agent.ppid() == keeper.pid
            assert _titled(rec.pid) and _titled(keeper.pid)
            assert runs_for(agent.cmdline(), AGENT_MODULE, directory)
            assert runs_for(psutil.Process(keeper.pid).cmdline(), KEEPER_MODULE, directory)
            assert sup.live_records() and sup.live_keepers()
        with Hive.connect("f", hive_home) as hive:
            hive.remember_many([f"Forked agent fact number {i}." for i in range(30)])
            # kill -9 one agent: its keeper forks it again, and it serves what it held
            old = records[0].pid
            os.kill(old, signal.SIGKILL)
            new = _wait_restarted(sup, records[0].group, old)
            assert psutil.Process(new).ppid() == keepers[records[0].group].pid and _titled(new)
            assert len(hive.recall("forked agent fact number 7", 40)) == 30
    finally:
        sup.stop(timeout=20)
    left = [
        p
        for p in psutil.process_iter(["cmdline"])
        if runs_for(p.info["cmdline"] or [], AGENT_MODULE, directory)
        or runs_for(p.info["cmdline"] or [], KEEPER_MODULE, directory)
    ]
    assert left == []
    assert all(r.state == "stopped" for r in sup.status())


def test_without_forking_each_process_is_a_new_interpreter(
    hive_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FORK_ENV, "0")
    create_hive(hive_home, "e", agents=2, replication=2, backend="memory")
    sup = Supervisor(hive_home, "e")
    sup.start(timeout=60)
    try:
        for rec in read_records(hive_dir(hive_home, "e")):
            assert not _titled(rec.pid)
            assert psutil.Process(rec.pid).cmdline()[1:3] == ["-m", AGENT_MODULE]
    finally:
        sup.stop(timeout=20)


def test_the_launcher_reports_what_it_could_not_do(tmp_path: Path) -> None:
    """Bad input, and a keeper whose log cannot be opened: the launcher says why (as JSON
    on stdout, exit 1); a keeper that fails is reported by its state, not silently."""
    bad = subprocess.run(
        [sys.executable, "-m", LAUNCHER_MODULE], input=b"not json", capture_output=True
    )
    out = json.loads(bad.stdout)
    assert bad.returncode == 1 and out["pids"] == [] and "JSONDecodeError" in out["error"]
    spec = {"backend": "memory", "keepers": [{"argv": ["x"] * 3, "log": str(tmp_path / "no/such")}]}
    done = subprocess.run(
        [sys.executable, "-m", LAUNCHER_MODULE],
        input=json.dumps(spec).encode(),
        capture_output=True,
        timeout=60,
    )
    pids = json.loads(done.stdout)["pids"]
    assert done.returncode == 0 and len(pids) == 1
    # the forked keeper could not open its log: it said why where it could, and exited
    assert b"FileNotFoundError" in done.stderr
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pids[0]).wait(timeout=10)
