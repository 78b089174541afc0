"""How long a killed agent is down: its keeper's restart beside a manual ``start``.

    python -m benchmarks.bench_restart [--agents 5] [--kills 7] [--backend kuzu]

Issue 10, "Supervision": the closing note gives the restart time of a killed agent. A local
hive of N agent processes learns a few hundred facts; one agent at a time is killed with
SIGKILL and timed until it answers ``/health`` as ready again (rebuilt from its replicas).
Ours: the keeper restarts it (the default policy, on-failure, with its 0.5 s first backoff).
Baseline, in the same run: the same hive with restart policy ``no``, where the agent comes
back only when ``start`` is run, which is run at once. Medians of ``--kills`` kills; the
kills are spaced out past the restart window, so no backoff grows. Progress to stderr,
the table to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

from amplihack_hive import Hive
from amplihack_hive.hive.config import create_hive, load_hive, save
from amplihack_hive.hive.home import config_path, hive_dir
from amplihack_hive.hive.supervisor import Supervisor
from benchmarks.bench_memory import Row, finish, note, render


def _down_for(sup: Supervisor, agent: str, restart_by_hand: bool, timeout: float = 60) -> float:
    """Kill ``agent`` with SIGKILL; seconds until it is ready again."""
    row = next(r for r in sup.status() if r.name == agent)
    assert row.pid is not None, row
    began = time.perf_counter()
    os.kill(row.pid, signal.SIGKILL)
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(row.pid).wait(timeout=10)
    if restart_by_hand:
        sup.start(timeout=timeout)
    deadline = began + timeout
    while agent not in sup.ready_agents():
        if time.perf_counter() > deadline:
            raise SystemExit(f"{agent} not ready after {timeout}s")
        time.sleep(0.02)
    return time.perf_counter() - began


def measure(
    home: Path, name: str, policy: str, agents: int, kills: int, backend: str, gap: float
) -> list[float]:
    create_hive(home, name, agents=agents, backend=backend, restart=policy)
    cfg = load_hive(home, name)
    # the window short enough that spaced kills never stack backoffs
    restart = dataclasses.replace(cfg.restart, window_s=max(1.0, gap))
    save(config_path(hive_dir(home, name)), dataclasses.replace(cfg, restart=restart))
    sup = Supervisor(home, name)
    sup.start(timeout=120)
    try:
        with Hive.connect(name, home) as client:
            client.remember_many([f"restart bench fact {i} about item{i}" for i in range(300)])
        out = []
        for i in range(kills):
            agent = f"agent-{i % agents}"
            took = _down_for(sup, agent, restart_by_hand=policy == "no")
            note(f"{policy}: {agent} back in {took:.2f} s")
            out.append(took)
            time.sleep(gap)
        return out
    finally:
        sup.stop(timeout=20)
        sup.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=5)
    ap.add_argument("--kills", type=int, default=7)
    ap.add_argument("--backend", default="kuzu")
    ap.add_argument("--gap", type=float, default=2.0, help="seconds between kills")
    ap.add_argument("--strict", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-restart-") as tmp:
        home = Path(tmp)
        note(f"{args.agents} agents ({args.backend}), {args.kills} kills each way")
        by_hand = measure(home, "byhand", "no", args.agents, args.kills, args.backend, args.gap)
        kept = measure(home, "kept", "on-failure", args.agents, args.kills, args.backend, args.gap)
    ours, base = statistics.median(kept), statistics.median(by_hand)
    rows = [
        Row(
            f"killed agent ready again, s (median of {args.kills}; {args.agents} agents, "
            f"{args.backend})",
            f"kill, then start at once: {base:.2f}",
            f"keeper: {ours:.2f}",
            f"{ours / base:.2f}x",
        ),
        Row(
            "slowest of them, s",
            f"{max(by_hand):.2f}",
            f"{max(kept):.2f}",
        ),
    ]
    print(f"restart of a killed agent: {args.agents} agent processes, {os.cpu_count()} cpus")
    print(render(rows))
    return finish(rows, args.strict)


if __name__ == "__main__":
    sys.exit(main())
