"""``start --foreground``: a hive attached to the terminal, as honcho and ``docker compose
up`` run their processes.

Every agent process runs under its keeper (restart policy and all) in our process group,
so Ctrl-C reaches each of them; their output comes to us on a pipe and is printed line by
line with the name of the process's first agent in front (``agent-0 | ...``), and also
appended to the agent's log file, so ``logs`` and every other command work as for a
background hive. When Ctrl-C (or SIGTERM) comes, every agent is stopped gracefully (the
same stop as ``stop``), and the exit status says how it ended: 0 when every agent was
stopped cleanly, 1 when an agent crashed (its keeper gave up) or had to be killed.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from amplihack_hive.errors import HiveStateError
from amplihack_hive.hive.keeper import CRASHED, keeper_path, read_keeper

if TYPE_CHECKING:
    from amplihack_hive.hive.supervisor import Supervisor

#: ``emit(label, line)`` prints one line of one process (label "hive" for our own).
Emit = Callable[[str, str], None]
HIVE_LABEL = "hive"


class Foreground:
    """Run a hive's agents attached until interrupted."""

    def __init__(
        self,
        supervisor: Supervisor,
        emit: Emit,
        *,
        stop_timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.supervisor, self.emit, self.stop_timeout = supervisor, emit, stop_timeout
        self.sleep, self.clock = sleep, clock
        self.crashed: list[str] = []

    def run(self, timeout: float = 60.0, agents_per_process: int | None = None) -> int:
        """Start every agent attached, say when all are healthy, and wait for Ctrl-C."""
        sup = self.supervisor
        hosted, _, chunks = sup.plan(agents_per_process)
        if hosted:
            raise HiveStateError(
                f"hive {sup.name!r} is already running in the background ({len(hosted)} "
                f"agents); stop it first (amplihack-hive stop {sup.name}), or follow it with "
                f"amplihack-hive logs {sup.name} --follow"
            )
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C
        children: list[tuple[str, subprocess.Popen[bytes]]] = []
        pumps: list[threading.Thread] = []
        interrupted = False
        try:
            try:
                for chunk in chunks:
                    proc = sup.launch(chunk, attached=True)
                    children.append((chunk[0], proc))
                    pump = threading.Thread(
                        target=self._pump,
                        args=(chunk[0], proc.stdout, sup.open_log(chunk)),
                        name=f"foreground-{chunk[0]}",
                        daemon=True,
                    )
                    pump.start()
                    pumps.append(pump)
                self._announce_healthy(len(sup.config.ring_names), timeout)
                self._watch(children)
            except KeyboardInterrupt:
                interrupted = True
        finally:
            # a second Ctrl-C (or SIGTERM): the stop goes on
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            try:
                sup.close()
                result = sup.stop(timeout=self.stop_timeout)
                for pump in pumps:
                    pump.join(timeout=5)
            finally:
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGTERM, previous)
        how = "interrupted" if interrupted else "every agent ended"
        line = f"{how}; stopped {len(result.stopped)} agents"
        if result.killed:
            line += f" ({len(result.killed)} killed after {self.stop_timeout:g}s)"
        if self.crashed:
            line += f"; crashed: {', '.join(self.crashed)}"
        self.emit(HIVE_LABEL, line)
        return 1 if self.crashed or result.killed or not interrupted else 0

    def _pump(self, label: str, stream: IO[bytes] | None, log: IO[bytes]) -> None:
        """Copy a process's output to our stdout, prefixed, and to its log file."""
        try:
            if stream is None:
                return
            shown = True
            for raw in iter(stream.readline, b""):
                log.write(raw)
                log.flush()
                if not shown:
                    continue
                try:
                    self.emit(label, raw.decode("utf-8", errors="replace").rstrip("\n"))
                except OSError:  # our stdout went away (| head): keep draining to the log
                    shown = False
        finally:
            log.close()

    def _announce_healthy(self, total: int, timeout: float) -> None:
        deadline = self.clock() + timeout
        while self.clock() < deadline:
            if len(self.supervisor.ready_agents()) >= total:
                self.emit(HIVE_LABEL, f"all {total} agents healthy; Ctrl-C stops them")
                return
            self.sleep(0.2)
        self.emit(HIVE_LABEL, f"not every agent is healthy after {timeout:g}s (still starting)")

    def _watch(self, children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
        """Until every keeper has ended: say so when one gives up on its agent."""
        running = dict(children)
        while running:
            for label, proc in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[label]
                kept = read_keeper(keeper_path(self.supervisor.dir, label))
                state = kept.state if kept else "exited"
                reason = (kept.reason if kept else None) or f"keeper exit {proc.returncode}"
                if proc.returncode or state == CRASHED:  # counted before it is said
                    self.crashed.append(label)
                self.emit(label, f"{state}: {reason}")
            self.sleep(0.2)
