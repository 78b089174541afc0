"""A local hive learning a large text through the command line, as a user runs it.

    python -m benchmarks.bench_learn [--agents 10] [--paragraphs 20000] [--strict]

Creates a hive of ``--agents`` agent processes on Kuzu (defaults otherwise), starts it,
writes ``--paragraphs`` short paragraphs (``corpus.filler_facts``) to a file and runs
``amplihack-hive learn`` on it. Meanwhile a thread probes every agent's ``/healthz`` every
100 ms with a 2 s timeout. Then: ``status`` (its exit code), the agents' total RSS, and
``stop`` (whether any agent needed SIGKILL). The baseline of the health figure is the same
probe on the same hive while it is idle, in the same run.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.bench_local import _configure, agent_processes, kill_leftovers, memory_mb
from benchmarks.bench_memory import Row, finish, note, render
from benchmarks.corpus import filler_facts

PROBE_EVERY_S = 0.1
PROBE_TIMEOUT_S = 2.0
TARGET_ITEMS_S = 2000
TARGET_HEALTH_P99_MS = 250
TARGET_RSS_MB = 1500


class Prober(threading.Thread):
    """Probes ``/healthz`` of every URL in turn until stopped; keeps latencies (ms)."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(daemon=True)
        self.urls = urls
        self.latencies: list[float] = []
        self.timeouts = 0
        self.halt = threading.Event()

    def probe(self, url: str) -> None:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=PROBE_TIMEOUT_S)
        started = time.perf_counter()
        try:
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            self.latencies.append((time.perf_counter() - started) * 1000)
        except (TimeoutError, OSError):
            self.timeouts += 1
        finally:
            conn.close()

    def run(self) -> None:
        while not self.halt.is_set():
            for url in self.urls:
                self.probe(url)
            self.halt.wait(PROBE_EVERY_S)


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else float("nan")


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "amplihack_hive", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=3600,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_learn", description=__doc__)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--paragraphs", type=int, default=20_000)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    from amplihack_hive.agent.runstate import read_records
    from amplihack_hive.hive.supervisor import Supervisor

    home = Path(tempfile.mkdtemp(prefix="bench-learn-"))
    name = "learn"
    directory = _configure(home, name, args.agents, 1)
    text = home / "input.txt"
    text.write_text("\n\n".join(filler_facts(args.paragraphs, seed=5)) + "\n")
    rows: list[Row] = []
    try:
        note(f"starting {args.agents} agents")
        Supervisor(home, name).start(timeout=120)
        urls = [r.url for r in read_records(directory)]
        idle = Prober(urls)
        idle.start()
        time.sleep(3)
        idle.halt.set()
        idle.join()
        busy = Prober(urls)
        busy.start()
        note(f"learning {args.paragraphs} paragraphs ({text.stat().st_size / 1e6:.1f} MB)")
        started = time.perf_counter()
        learned = _cli(home, "learn", name, str(text), "--json")
        seconds = time.perf_counter() - started
        busy.halt.set()
        busy.join()
        note(f"learn exit {learned.returncode}: {learned.stdout.strip()[:200]}")
        if learned.returncode != 0:
            note(learned.stderr.strip()[-2000:])
        rss, pss = memory_mb(agent_processes(directory))
        status = _cli(home, "status", name)
        stopped = Supervisor(home, name).stop(timeout=20.0)
        left = kill_leftovers(directory, "learn")
        rate = args.paragraphs / seconds
        rows += [
            Row(
                f"learn items/s, {args.agents} agent processes, {args.paragraphs:,} paragraphs",
                "",
                f"{rate:,.0f} ({learned.returncode=})",
                "",
                f">= {TARGET_ITEMS_S:,}",
                rate >= TARGET_ITEMS_S and learned.returncode == 0,
            ),
            Row(
                "/healthz p99 ms while learning (probes; timeouts)",
                f"idle: {_p99(idle.latencies):.1f}",
                f"{_p99(busy.latencies):.1f} ({len(busy.latencies)}; {busy.timeouts})",
                f"{_p99(busy.latencies) / _p99(idle.latencies):.1f}x",
                f"<= {TARGET_HEALTH_P99_MS} ms, 0 timeouts",
                _p99(busy.latencies) <= TARGET_HEALTH_P99_MS and busy.timeouts == 0,
            ),
            Row(
                "status exit code right after learn",
                "",
                str(status.returncode),
                "",
                "0",
                status.returncode == 0,
            ),
            Row(
                "agents killed by SIGKILL at stop (left after stop)",
                "",
                f"{len(stopped.killed)} ({left})",
                "",
                "0 (0)",
                not stopped.killed and not left,
            ),
            Row(
                "total agent RSS after learn, MB",
                "",
                f"{rss:,.0f} (PSS {pss:,.0f})",
                "",
                f"<= {TARGET_RSS_MB:,}",
                rss <= TARGET_RSS_MB,
            ),
        ]
    finally:
        kill_leftovers(directory, "learn")
        shutil.rmtree(home, ignore_errors=True)
    print(
        f"learn through the CLI: {args.agents} agent processes (Kuzu, defaults), "
        f"{args.paragraphs:,} paragraphs, {os.cpu_count()} cpus"
    )
    print(render(rows))
    return finish(rows, args.strict)


if __name__ == "__main__":
    sys.exit(main())
