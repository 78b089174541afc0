"""Time and RSS to open 100 Kuzu-backed agents, beside raw Kuzu opening 100 databases.

    python -m benchmarks.bench_kuzu_open [--agents 100] [--repeats 3] [--strict]

Each measurement runs in its own subprocess, so its RSS holds nothing but what it opened:

* raw: ``kuzu.Database(path, buffer_pool_size=256 MiB, max_db_size=4 GiB)`` 100 times, a
  ``Connection`` to each, and one small node table created in each;
* hive: ``Hive.in_process(agents=100, backend="kuzu", path=DIR)`` with the same caps.

Time counts from after the imports to the last database ready; RSS is read (psutil) right
after, with everything still open. Raw and hive alternate; medians of the repeats are shown.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
#: the issue's "Done when" thresholds
TIME_RATIO_MAX = 2.0
RSS_MAX_MB = 1000.0  # 1 GB, in MB of 10^6 bytes
ROOT = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 1e6


def child_raw(root: Path, agents: int, buffer_pool_mb: int, max_db_size_mb: int) -> dict[str, Any]:
    import kuzu

    rss_before = _rss_mb()
    t = time.perf_counter()
    opened = []
    for i in range(agents):
        db = kuzu.Database(
            str(root / f"agent-{i}.kuzu"),
            buffer_pool_size=buffer_pool_mb * MIB,
            max_db_size=max_db_size_mb * MIB,
        )
        conn = kuzu.Connection(db)
        conn.execute("CREATE NODE TABLE Fact(id STRING, content STRING, PRIMARY KEY(id))")
        opened.append((db, conn))
    seconds = time.perf_counter() - t
    rss = _rss_mb()
    t = time.perf_counter()
    for db, conn in opened:
        conn.close()
        db.close()
    return {
        "seconds": seconds,
        "rss_mb": rss,
        "rss_before_mb": rss_before,
        "close_seconds": time.perf_counter() - t,
    }


def child_hive(root: Path, agents: int, buffer_pool_mb: int, max_db_size_mb: int) -> dict[str, Any]:
    from amplihack_hive import Hive

    rss_before = _rss_mb()
    t = time.perf_counter()
    hive = Hive.in_process(
        agents=agents,
        replication=3,
        backend="kuzu",
        path=root,
        buffer_pool_mb=buffer_pool_mb,
        max_db_size_mb=max_db_size_mb,
    )
    seconds = time.perf_counter() - t
    rss = _rss_mb()
    t = time.perf_counter()
    hive.close()
    return {
        "seconds": seconds,
        "rss_mb": rss,
        "rss_before_mb": rss_before,
        "close_seconds": time.perf_counter() - t,
    }


def measure(side: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter on a fresh directory."""
    root = Path(tempfile.mkdtemp(prefix=f"bench-kuzu-{side}-"))
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.bench_kuzu_open",
        "--child",
        side,
        "--dir",
        str(root),
        "--agents",
        str(args.agents),
        "--buffer-pool-mb",
        str(args.buffer_pool_mb),
        "--max-db-size-mb",
        str(args.max_db_size_mb),
    ]
    try:
        done = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout} s"}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return {"error": f"exit {done.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _median(results: Sequence[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in results if "error" not in r]
    return statistics.median(values) if values else float("nan")


def render(raw: list[dict[str, Any]], hive: list[dict[str, Any]], agents: int) -> tuple[str, bool]:
    rt, ht = _median(raw, "seconds"), _median(hive, "seconds")
    rr, hr = _median(raw, "rss_mb"), _median(hive, "rss_mb")
    time_ok = ht <= TIME_RATIO_MAX * rt
    rss_ok = hr <= RSS_MAX_MB
    header = ("figure", f"raw Kuzu, {agents} DBs", f"{agents} Kuzu-backed agents", "ratio")
    rows = [
        (
            "open time, s",
            f"{rt:.2f}",
            f"{ht:.2f}",
            f"{ht / rt:.2f}x",
            f"<= {TIME_RATIO_MAX:g}x raw",
            "PASS" if time_ok else "FAIL",
        ),
        (
            "RSS after open, MB",
            f"{rr:.0f}",
            f"{hr:.0f}",
            f"{hr / rr:.2f}x",
            f"<= {RSS_MAX_MB:.0f} MB",
            "PASS" if rss_ok else "FAIL",
        ),
        (
            "RSS before open (imports), MB",
            f"{_median(raw, 'rss_before_mb'):.0f}",
            f"{_median(hive, 'rss_before_mb'):.0f}",
            "",
            "",
            "",
        ),
        (
            "close time, s",
            f"{_median(raw, 'close_seconds'):.2f}",
            f"{_median(hive, 'close_seconds'):.2f}",
            "",
            "",
            "",
        ),
    ]
    cells = [(*header, "target", "ok"), *rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]

    def line(c: Sequence[str]) -> str:
        return "| " + " | ".join(s.ljust(w) for s, w in zip(c, widths, strict=True)) + " |"

    out = [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(c) for c in rows]
    return "\n".join(out), time_ok and rss_ok


def _fmt_runs(results: Sequence[dict[str, Any]]) -> str:
    return ", ".join(
        r["error"] if "error" in r else f"{r['seconds']:.2f} s / {r['rss_mb']:.0f} MB"
        for r in results
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_kuzu_open", description=__doc__
    )
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--buffer-pool-mb", type=int, default=256)
    parser.add_argument("--max-db-size-mb", type=int, default=4096)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per measurement")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--child", choices=("raw", "hive"), help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        fn = child_raw if args.child == "raw" else child_hive
        result = fn(args.dir, args.agents, args.buffer_pool_mb, args.max_db_size_mb)
        print(json.dumps(result))
        return 0

    raw: list[dict[str, Any]] = []
    hive: list[dict[str, Any]] = []
    for rep in range(args.repeats):
        for side, results in (("raw", raw), ("hive", hive)):
            print(f"[{rep + 1}/{args.repeats}] opening {args.agents} ({side}) ...", file=sys.stderr)
            results.append(measure(side, args))
            print(f"    {_fmt_runs(results[-1:])}", file=sys.stderr, flush=True)
    failed = [r for r in raw + hive if "error" in r]
    print(
        f"Kuzu open benchmark: {args.agents} databases, buffer pool {args.buffer_pool_mb} MiB, "
        f"max_db_size {args.max_db_size_mb} MiB, median of {args.repeats} runs, each in its "
        "own process"
    )
    if len([r for r in raw if "error" not in r]) == 0 or not [r for r in hive if "error" not in r]:
        print(f"could not measure: raw: {_fmt_runs(raw)}; hive: {_fmt_runs(hive)}")
        return 1
    table, ok = render(raw, hive, args.agents)
    print(table)
    print(f"runs (time / RSS): raw: {_fmt_runs(raw)}; hive: {_fmt_runs(hive)}")
    if failed:
        print(f"{len(failed)} run(s) failed; medians are over the others")
    print("all targets met" if ok else "targets missed")
    return 1 if (args.strict and not ok) or failed else 0


if __name__ == "__main__":
    sys.exit(main())
