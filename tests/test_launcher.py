"""The launcher forks every keeper from one interpreter, and each keeper forks its agent
process (hive/launcher.py): real processes of a real hive, on both paths."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
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
from amplihack_hive.hive.launcher import FORK_ENV, LAUNCHER_MODULE, can_fork, launcher_command
from amplihack_hive.hive.supervisor import Supervisor

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux")


def _titled(pid: int) -> bool:
    """Whether a process names itself by one title (setproctitle: forked, not exec'd):
    its arguments are not NUL-separated as an exec'd interpreter's are."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return b" -m " in raw.split(b"\0")[0]


def _wait_restarted(sup: Supervisor, agent: str, old: int) -> int:
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
    def keeper(hive: Path, *more: str) -> list[str]:
        return [sys.executable, "-m", KEEPER_MODULE, "--hive-dir", str(hive), *more]

    assert not can_fork([keeper(tmp_path / "hive"), keeper(tmp_path / "a hive")])
    assert not can_fork([keeper(tmp_path / "hive", "--", "--kuzu-db", "a=/x y/db")])
    monkeypatch.setenv(FORK_ENV, "0")
    assert not can_fork([keeper(tmp_path / "hive")])
    monkeypatch.setenv(FORK_ENV, "1")
    assert can_fork([keeper(tmp_path / "hive")]) is sys.platform.startswith("linux")


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


def _launcher(
    spec: object, *, room: bool = True, env: dict[str, str] | None = None
) -> tuple[list[str], bytes]:
    command = launcher_command([["x" * 600]]) if room else [sys.executable, "-m", LAUNCHER_MODULE]
    done = subprocess.run(
        command,
        input=spec if isinstance(spec, bytes) else json.dumps(spec).encode(),
        capture_output=True,
        timeout=60,
        env=env,
    )
    return done.stdout.decode().splitlines(), done.stderr


def _keeper_spec(tmp_path: Path, log: Path) -> dict[str, object]:
    hive = tmp_path / "hive"
    argv = [sys.executable, "-m", KEEPER_MODULE, "--hive-dir", str(hive), "--group", "g"]
    return {
        "backend": "memory",
        "keepers": [{"argv": [*argv, "--agents", "a", "--", "x"], "log": str(log)}],
    }


def _gone(pid: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).wait(timeout=20)


def test_the_launcher_reports_what_it_could_not_do(tmp_path: Path) -> None:
    """Bad input: ``error: ...`` and exit 1, no pid. A keeper whose log cannot be opened:
    forked (its pid given), it says why where it can and exits."""
    lines, _ = _launcher(b"not json")
    assert len(lines) == 1 and lines[0].startswith("error: JSONDecodeError")
    lines, stderr = _launcher(_keeper_spec(tmp_path, tmp_path / "no" / "such.log"))
    assert lines[-1] == "ok" and len(lines) == 2 and lines[0].isdigit()
    _gone(int(lines[0]))
    assert b"FileNotFoundError" in stderr


def test_a_forked_process_whose_title_does_not_fit_exits_and_says_so(tmp_path: Path) -> None:
    """A title can only be as long as the process's first command line (and, but for a
    small environment, what follows it): without the room the supervisor gives it, a
    keeper of a long command line under an empty environment cannot name itself, and
    exits with why, rather than run where no check would recognise it."""
    log = tmp_path / "keeper.log"
    spec = _keeper_spec(tmp_path, log)
    spec["keepers"][0]["argv"][-1] = "x" * 4000  # type: ignore[index]
    lines, _ = _launcher(spec, room=False, env={"PATH": os.environ["PATH"]})
    assert lines[-1] == "ok"
    _gone(int(lines[0]))
    assert "its title does not fit" in log.read_text()


@pytest.mark.parametrize(("code", "status"), [("os._exit(3)", 3), ("os.kill(os.getpid(), 9)", -9)])
def test_a_forked_agent_is_seen_exited_by_poll_and_reaped_only_by_wait(
    code: str, status: int
) -> None:
    """poll (which Keeper.stop calls from a signal handler) never reaps: the status is
    still there for wait, so the two never race for it."""
    from amplihack_hive.hive.keeper import ForkedAgent

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        exec(code)
        os._exit(0)
    child = ForkedAgent(pid)
    deadline = time.monotonic() + 10
    while child.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert child.poll() == status and psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert child.wait() == status and not psutil.pid_exists(pid)
    assert child.poll() == status and child.wait() == status
    child.send_signal(signal.SIGTERM)  # gone: nothing to signal, and no error


@linux_only
def test_start_under_a_bare_environment_forks_recognisable_processes(tmp_path: Path) -> None:
    """cron, systemd and ``env -i`` give a process a small environment, so less room for
    a title after its arguments: the launcher's own command line makes the room, for
    whole titles (here longer than the launcher's arguments and environment together)."""
    home = tmp_path / "home"
    cli = [sys.executable, "-m", "amplihack_hive"]
    env = {"AMPLIHACK_HIVE_HOME": str(home)}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=120)

    created = run("create", "bare", "--agents", "12", "--backend", "memory")
    assert created.returncode == 0, created.stderr
    started = run("start", "bare", "--agents-per-process", "4")
    try:
        assert started.returncode == 0, started.stderr
        directory = hive_dir(home, "bare")
        records = read_records(directory)
        assert len(records) == 3 and all(_titled(r.pid) for r in records)
        for rec in records:  # the whole command line, to its last option
            assert command_of(psutil.Process(rec.pid).cmdline())[-2] == "--tokenizer"
        sup = Supervisor(home, "bare")
        assert len(sup.live_records()) == 3 and len(sup.live_keepers()) == 3
        assert "12 of 12 agents healthy" in run("status", "bare").stdout
    finally:
        stopped = run("stop", "bare")
    assert stopped.returncode == 0, stopped.stderr
    assert not [
        p
        for p in psutil.process_iter(["cmdline"])
        if runs_for(p.info["cmdline"] or [], AGENT_MODULE, hive_dir(home, "bare"))
        or runs_for(p.info["cmdline"] or [], KEEPER_MODULE, hive_dir(home, "bare"))
    ]


def test_the_supervisor_reads_what_the_launcher_forked_before_it_failed(hive_home: Path) -> None:
    """Each pid is a line as soon as it is forked: a launcher that fails later still
    names the keepers to stop (here a stand-in command prints two and an error)."""
    create_hive(hive_home, "p", agents=2, replication=2, backend="memory")
    sup = Supervisor(hive_home, "p")
    script = "print(101); print(102, flush=True); print('error: OSError: no more processes')"
    pids, why = sup._run_launcher([sys.executable, "-c", script], {"keepers": [{}, {}, {}]})
    assert pids == [101, 102] and why == "OSError: no more processes"
    pids, why = sup._run_launcher(
        [sys.executable, "-c", "print(7); print('ok')"], {"keepers": [{}]}
    )
    assert pids == [7] and why is None
    pids, why = sup._run_launcher(
        [sys.executable, "-c", "import sys; sys.exit(3)"], {"keepers": [{}]}
    )
    assert pids == [] and why is not None and "code 3" in why
