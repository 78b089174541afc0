"""The keeper: one process per agent process, applying the hive's restart policy.

``start`` runs the keeper (``python -m amplihack_hive.hive.keeper ... -- <agent options>``,
or a fork of the launcher named so: hive/launcher.py) in a session of its own; the keeper
runs the agent process (``python -m amplihack_hive.agent <agent options>``, or a fork of
itself named so) as its child (same process group, so ``stop``'s signal to the group
reaches both) and, when the agent exits on its own, restarts it under
:class:`~amplihack_hive.hive.restart.RestartConfig`: exponential backoff, and a cap on
restarts per window after which it gives up and says ``crashed`` (supervisord's
``startretries``, compose's ``restart: on-failure``). A SIGTERM or SIGINT to the keeper is a
stop: it passes it on, waits for the agent, and never restarts it.

Its state, for ``status``, is ``<hive>/run/keepers/<group>.json``: the keeper's pid, the
agent's, ``state`` (``running``, ``restarting``, ``crashed`` or ``exited``), restarts so
far, and the last exit (code or signal). Started as its own interpreter, the keeper
imports only the standard library and psutil: a few MB, and it is not the agent. Forked
from the launcher, it holds the agent's modules, one copy shared by every keeper and
agent process copy-on-write.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from amplihack_hive.agent.runstate import AGENT_MODULE, our_process
from amplihack_hive.hive.home import write_file_atomic
from amplihack_hive.hive.restart import RESTART_POLICIES, RestartConfig

logger = logging.getLogger("amplihack_hive.keeper")

KEEPER_MODULE = "amplihack_hive.hive.keeper"
KEEPER_DIR = "keepers"

#: The keeper's states. ``exited``: the agent exited and the policy says not to restart it
#: (a clean exit under on-failure, any exit under no) or it was stopped.
RUNNING, RESTARTING, CRASHED, EXITED = "running", "restarting", "crashed", "exited"

Spawn = Callable[[Sequence[str]], "subprocess.Popen[bytes] | ForkedAgent"]


@dataclass
class Exit:
    """How an agent process ended: its exit status, or the signal that killed it."""

    code: int | None
    signal: str | None
    at: float

    @classmethod
    def of(cls, returncode: int, at: float) -> Exit:
        if returncode < 0:
            try:
                name = signal.Signals(-returncode).name
            except ValueError:
                name = f"signal {-returncode}"
            return cls(None, name, at)
        return cls(returncode, None, at)

    @property
    def failed(self) -> bool:
        return self.code != 0

    def __str__(self) -> str:
        return f"killed by {self.signal}" if self.signal else f"exited with status {self.code}"


@dataclass
class KeeperState:
    group: str
    agents: list[str]
    pid: int
    create_time: float
    state: str
    policy: str
    restarts: int = 0
    child_pid: int | None = None
    last_exit: Exit | None = None
    #: wall-clock time of the next restart, while ``restarting``
    next_start: float | None = None
    #: why it stopped restarting, when ``crashed`` or ``exited``
    reason: str | None = None
    started: float = field(default_factory=time.time)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()


def keeper_path(hive: Path, group: str) -> Path:
    return hive / "run" / KEEPER_DIR / f"{group}.json"


def read_keeper(path: Path) -> KeeperState | None:
    try:
        data = json.loads(path.read_text())
        last = data.get("last_exit")
        return KeeperState(
            group=str(data["group"]),
            agents=[str(a) for a in data["agents"]],
            pid=int(data["pid"]),
            create_time=float(data["create_time"]),
            state=str(data["state"]),
            policy=str(data["policy"]),
            restarts=int(data["restarts"]),
            child_pid=None if data.get("child_pid") is None else int(data["child_pid"]),
            last_exit=None if last is None else Exit(last["code"], last["signal"], last["at"]),
            next_start=data.get("next_start"),
            reason=data.get("reason"),
            started=float(data["started"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring unreadable keeper state %s: %s", path, exc)
        return None


def read_keepers(hive: Path) -> list[KeeperState]:
    directory = hive / "run" / KEEPER_DIR
    if not directory.is_dir():
        return []
    found = (read_keeper(p) for p in sorted(directory.glob("*.json")))
    return [k for k in found if k is not None]


def keeper_process(state: KeeperState, hive: Path) -> psutil.Process | None:
    """The live keeper process of ``state``, or None (gone, a zombie, or a reused PID)."""
    return our_process(state.pid, state.create_time, KEEPER_MODULE, hive)


def keeper_command(
    hive: Path, group: str, agents: list[str], policy: RestartConfig, agent_options: list[str]
) -> list[str]:
    """The keeper's command line; its agent runs ``python -m amplihack_hive.agent`` with
    ``agent_options`` (the module is not named here, so no scan for agent processes ever
    takes a keeper for one)."""
    return [
        sys.executable,
        "-m",
        KEEPER_MODULE,
        "--hive-dir",
        str(hive),
        "--group",
        group,
        "--agents",
        ",".join(agents),
        "--policy",
        policy.policy,
        "--max-restarts",
        str(policy.max_restarts),
        "--window",
        repr(policy.window_s),
        "--backoff",
        repr(policy.backoff_s),
        "--backoff-max",
        repr(policy.backoff_max_s),
        "--",
        *agent_options,
    ]


class Keeper:
    """Run ``command`` and restart it under ``policy`` until stopped or given up."""

    def __init__(
        self,
        hive: Path,
        group: str,
        agents: list[str],
        command: Sequence[str],
        policy: RestartConfig,
        *,
        spawn: Spawn | None = None,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[float], None] | None = None,
    ) -> None:
        """``spawn`` starts the agent process; ``clock`` times runs against the window;
        ``pause(seconds)`` waits out a backoff (by default in slices, ending early once
        stopping)."""
        self.hive, self.command, self.policy = hive, list(command), policy
        self.spawn = spawn or (lambda cmd: subprocess.Popen(cmd, stdin=subprocess.DEVNULL))
        self.clock = clock
        self.pause = pause or self._pause
        self.stopping = False
        self.child: subprocess.Popen[bytes] | ForkedAgent | None = None
        self.path = keeper_path(hive, group)
        me = psutil.Process(os.getpid())
        self.state = KeeperState(group, agents, me.pid, me.create_time(), RUNNING, policy.policy)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop: pass ``sig`` to the agent and restart nothing (from a signal handler)."""
        self.stopping = True
        child = self.child
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(sig)

    def _publish(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self.state, key, value)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file_atomic(self.path, self.state.to_json())

    def run(self) -> int:
        """Keep the agent running; the exit status of the keeper: 0 when stopped or when
        the agent exited cleanly and is not restarted, 1 when it failed and is not
        restarted (given up, or policy ``no``)."""
        recent: deque[float] = deque()  # when the restarts within the window happened
        while True:
            if self.stopping:
                return self._finish(EXITED, "stopped")
            try:
                self.child = self.spawn(self.command)
            except OSError as exc:  # nothing to run (the interpreter gone, no memory)
                logger.error("cannot start the agent process: %s", exc)
                return self._finish(CRASHED, f"cannot start the agent process: {exc}", code=1)
            if self.stopping:  # the stop came while it was being spawned
                self.stop()
            self._publish(state=RUNNING, child_pid=self.child.pid, next_start=None)
            began = self.clock()
            ended = Exit.of(self._wait(self.child), time.time())
            self.child = None
            self._publish(last_exit=ended, child_pid=None)
            if self.stopping:
                return self._finish(EXITED, "stopped")
            if self.policy.policy == "no" or (
                self.policy.policy == "on-failure" and not ended.failed
            ):
                state = CRASHED if ended.failed else EXITED
                logger.warning(
                    "agent process %s; not restarted (policy %s)", ended, self.policy.policy
                )
                return self._finish(
                    state, f"{ended}; policy {self.policy.policy}", code=int(ended.failed)
                )
            now = self.clock()
            if now - began >= self.policy.window_s:
                recent.clear()  # it ran a whole window: a new failure starts a new count
            while recent and now - recent[0] >= self.policy.window_s:
                recent.popleft()
            if len(recent) >= self.policy.max_restarts:
                why = (
                    f"{ended}; gave up after {len(recent)} restarts within "
                    f"{self.policy.window_s:g} s"
                )
                logger.error("agent process %s", why)
                return self._finish(CRASHED, why, code=1)
            delay = min(self.policy.backoff_s * 2 ** len(recent), self.policy.backoff_max_s)
            logger.warning(
                "agent process %s; restarting it in %.1f s (restart %d of at most %d within %g s)",
                ended,
                delay,
                len(recent) + 1,
                self.policy.max_restarts,
                self.policy.window_s,
            )
            self._publish(state=RESTARTING, next_start=time.time() + delay)
            self.pause(delay)
            recent.append(self.clock())
            if not self.stopping:
                self._publish(restarts=self.state.restarts + 1)

    def _wait(self, child: subprocess.Popen[bytes] | ForkedAgent) -> int:
        return child.wait()  # retried across signals (PEP 475); the handler only flags

    def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, but return early once stopping (a signal handler that only
        sets a flag does not cut a ``sleep`` short)."""
        deadline = time.monotonic() + seconds
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

    def _finish(self, state: str, reason: str, code: int = 0) -> int:
        self._publish(state=state, reason=reason, child_pid=None, next_start=None)
        return code


def _parse(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args:
        raise SystemExit("usage: keeper OPTIONS -- AGENT OPTIONS")
    cut = args.index("--")
    parser = argparse.ArgumentParser(prog=KEEPER_MODULE)
    parser.add_argument("--hive-dir", type=Path, required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--agents", required=True)
    parser.add_argument("--policy", choices=RESTART_POLICIES, default="on-failure")
    parser.add_argument("--max-restarts", type=int, default=RestartConfig.max_restarts)
    parser.add_argument("--window", type=float, default=RestartConfig.window_s)
    parser.add_argument("--backoff", type=float, default=RestartConfig.backoff_s)
    parser.add_argument("--backoff-max", type=float, default=RestartConfig.backoff_max_s)
    return parser.parse_args(args[:cut]), args[cut + 1 :]


class ForkedAgent:
    """An agent process forked from this keeper (hive/launcher.py: the keeper imported
    the agent's modules once, before it forked), with what the keeper uses of a Popen:
    ``pid``, ``poll``, ``wait``, ``send_signal`` and ``returncode`` (negative: a signal)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """None while the agent runs, else its exit status: seen, not reaped. Only
        :meth:`wait` reaps, so a poll from a signal handler (Keeper.stop) never races it
        for the status, and an exited agent's pid stays its own until then."""
        if self.returncode is not None:
            return self.returncode
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped in the moment wait() returned: gone
            return 0 if self.returncode is None else self.returncode
        if info is None:
            return None
        return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status

    def wait(self) -> int:
        while self.returncode is None:
            try:
                _, status = os.waitpid(self.pid, 0)
            except ChildProcessError:  # reaped by the system (SIGCHLD ignored): as Popen
                self.returncode = 0
                break
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)


def fork_agent(command: Sequence[str]) -> ForkedAgent:
    """Run the agent process of ``command`` (``python -m amplihack_hive.agent ...``) as a
    fork of this process, named ``command`` (its title, for ``ps`` and for
    :func:`~amplihack_hive.agent.runstate.our_process`)."""
    from amplihack_hive.hive.launcher import entitle, run_forked

    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return ForkedAgent(pid)

    def agent() -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)  # the agent sets its own
        entitle(command)
        from amplihack_hive.agent.process import main as agent_main

        return agent_main(list(command[3:]))

    run_forked(agent)


def main(argv: list[str] | None = None, *, fork: bool = False) -> int:
    """The keeper; with ``fork``, its agent processes are forks of it (it has imported
    their modules: hive/launcher.py), not new interpreters."""
    os.umask(0o077)
    logging.basicConfig(
        level=os.environ.get("AMPLIHACK_HIVE_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )
    opts, agent_options = _parse(argv)
    command = [sys.executable, "-m", AGENT_MODULE, *agent_options]
    policy = RestartConfig(
        opts.policy, opts.max_restarts, opts.window, opts.backoff, opts.backoff_max
    )
    keeper = Keeper(
        opts.hive_dir,
        opts.group,
        opts.agents.split(","),
        command,
        policy,
        spawn=fork_agent if fork else None,
    )

    def on_signal(signum: int, _frame: object) -> None:
        keeper.stop(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    return keeper.run()


if __name__ == "__main__":
    sys.exit(main())
