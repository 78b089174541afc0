"""``start --foreground``: the real command in a session of its own (as a terminal runs
it), Ctrl-C sent to its process group as a terminal sends it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from helpers import REPO_ROOT, installed, run_module

from amplihack_hive.agent.runstate import AGENT_MODULE, command_of
from amplihack_hive.hive.keeper import KEEPER_MODULE

pytestmark = pytest.mark.slow


def hive_processes(directory: Path) -> set[int]:
    """Agent and keeper processes of the hive in ``directory`` (zombies do not count)."""
    found = set()
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        cmd = command_of(proc.info["cmdline"] or [])
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if (AGENT_MODULE in cmd or KEEPER_MODULE in cmd) and str(directory) in cmd:
            found.add(proc.pid)
    return found


class Attached:
    """``amplihack-hive start NAME --foreground`` running, its stdout read line by line."""

    def __init__(self, home: Path, name: str) -> None:
        env = dict(os.environ, AMPLIHACK_HIVE_HOME=str(home))
        if not installed():
            env["PYTHONPATH"] = str(REPO_ROOT)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "amplihack_hive", "start", name, "--foreground"],
            cwd=home,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, like a terminal's job
        )
        self.lines: list[str] = []

    def until(self, fragment: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            if fragment in line:
                return line
        raise AssertionError(f"no {fragment!r} in {self.lines[-20:]}")

    def ctrl_c(self, timeout: float = 60.0) -> tuple[int, list[str], str]:
        os.killpg(self.proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        out, err = self.proc.communicate(timeout=timeout)
        self.lines += out.splitlines()
        return self.proc.returncode, self.lines, err


@pytest.fixture
def made(hive_home: Path) -> Iterator[Path]:
    hive_home.mkdir(parents=True, exist_ok=True)
    result = run_module(
        "create", "fg", "--agents", "2", "--backend", "memory", "--restart", "no", cwd=hive_home
    )
    assert result.returncode == 0, result.stderr
    yield hive_home / "fg"
    run_module("stop", "fg", cwd=hive_home)


def test_foreground_prefixes_every_line_and_ctrl_c_stops_every_agent(
    hive_home: Path, made: Path
) -> None:
    attached = Attached(hive_home, "fg")
    attached.until("all 2 agents healthy; Ctrl-C stops them")
    # the hive serves other commands meanwhile, as a background one does
    status = run_module("status", "fg", "--json", cwd=hive_home)
    assert status.returncode == 0, status.stderr
    assert [a["state"] for a in json.loads(status.stdout)["agents"]] == ["healthy"] * 2
    learned = run_module("learn", "fg", "--json", "-", cwd=hive_home)
    assert learned.returncode == 0
    code, lines, err = attached.ctrl_c()
    assert code == 0, (lines[-10:], err)
    assert err == ""
    labels = {line.split(" | ", 1)[0].strip() for line in lines}
    assert labels == {"agent-0", "agent-1", "hive"}
    assert any(line.startswith("agent-0 | ") and "listening on" in line for line in lines)
    assert sum("amplihack_hive.agent.process: stopped" in line for line in lines) == 2
    # a brand-new hive had nothing to rebuild, and its log does not say it did
    assert sum("in step with its replicas; serving reads" in line for line in lines) == 2
    assert not any("rebuilt from its replicas" in line for line in lines)
    assert lines[-1] == "hive    | interrupted; stopped 2 agents"
    assert hive_processes(made) == set()
    # the log files got the same lines
    assert "listening on" in (made / "logs" / "agent-1.log").read_text()
    after = run_module("status", "fg", "--json", cwd=hive_home)
    assert after.returncode == 3
    assert {a["state"] for a in json.loads(after.stdout)["agents"]} == {"stopped"}


def test_a_crash_in_the_foreground_is_said_and_makes_the_exit_status_1(
    hive_home: Path, made: Path
) -> None:
    attached = Attached(hive_home, "fg")
    attached.until("all 2 agents healthy")
    status = json.loads(run_module("status", "fg", "--json", cwd=hive_home).stdout)
    victim = next(a for a in status["agents"] if a["name"] == "agent-1")
    os.kill(victim["pid"], signal.SIGKILL)
    attached.until("agent-1 | crashed: killed by SIGKILL; policy no")
    code, lines, _ = attached.ctrl_c()
    assert code == 1
    assert lines[-1] == "hive    | interrupted; stopped 1 agents; crashed: agent-1"
    assert hive_processes(made) == set()


def test_foreground_refuses_a_hive_running_in_the_background(hive_home: Path, made: Path) -> None:
    assert run_module("start", "fg", cwd=hive_home).returncode == 0
    result = run_module("start", "fg", "--foreground", cwd=hive_home)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: hive 'fg' is already running in the background")
    assert len(result.stderr.splitlines()) == 1


def test_restart_from_another_shell_leaves_the_foreground_command_running(
    hive_home: Path, made: Path
) -> None:
    """The foreground hive shares the command's process group (and whatever it is piped
    to): another shell's restart signals the agent's processes one by one, not the group."""
    attached = Attached(hive_home, "fg")
    attached.until("all 2 agents healthy")
    before = json.loads(run_module("status", "fg", "--json", cwd=hive_home).stdout)
    restarted = run_module("restart", "fg", "agent-1", cwd=hive_home)
    assert restarted.returncode == 0, restarted.stderr
    assert attached.proc.poll() is None  # the foreground command was not signalled
    after = json.loads(run_module("status", "fg", "--json", cwd=hive_home).stdout)
    pids = {a["name"]: a["pid"] for a in after["agents"]}
    old = {a["name"]: a["pid"] for a in before["agents"]}
    assert pids["agent-0"] == old["agent-0"] and pids["agent-1"] != old["agent-1"]
    code, lines, _ = attached.ctrl_c()
    assert code == 0, lines[-5:]
    assert hive_processes(made) == set()
