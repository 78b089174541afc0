"""Start-up cost of the command line: whole processes, each beside a baseline of the same run.

    python -m benchmarks.bench_startup [--repeats 15] [--no-recall]

Every figure is the wall time of one whole process (``subprocess.run``, from spawn to exit,
output thrown away), the median over ``--repeats`` rounds after one warm-up round. In each
round every command runs once, in turn, so a machine that slows down mid-run slows all of
them; ratios are the median of the per-round ratios to the baseline.

* ``python -c pass``: the interpreter alone, the baseline of every row;
* ``amplihack-hive --version`` and ``python -m amplihack_hive --version`` (issue 8: within
  3x of the baseline), ``python -c 'import amplihack_hive'``;
* ``--help``, ``list`` (3 hives), ``create --force``, ``render``: the commands that need no
  memory;
* ``recall`` on a running 2-agent hive (memory backend, the sample facts learnt), beside the
  same recall through the Python API in a fresh interpreter (``Hive.connect(...).recall``).
  Target (issue 8): as close to 300 ms as possible. ``--no-recall`` skips it (and the
  agents it starts).

Below the table: the largest top-level imports of ``list`` and ``recall`` (``-X importtime``,
one run each), to show where the time goes. The hive home is a temporary directory, the
hive started is stopped in a ``finally``. Progress goes to stderr, the table to stdout.
Nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.bench_memory import Row, note, render

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "amplihack_hive" / "samples" / "team.txt"
QUESTION = "Who is on call this week?"
#: issue 8, "Start-up cost"
VERSION_RATIO_MAX = 3.0
RECALL_TARGET_MS = 300.0
#: The hive home of every command; also their working directory, so that ``python -c`` and
#: ``-m`` import the package the way a user's shell does (not from this source tree's cwd).
HOME_ENV = "AMPLIHACK_HIVE_HOME"


@dataclass
class Command:
    label: str
    argv: list[str]
    times: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times) * 1000 if self.times else float("nan")


def cli_argv() -> tuple[list[str], str]:
    """How to run the command line: the console script beside this interpreter, else
    ``python -m amplihack_hive``; and how to name it in the table."""
    script = shutil.which("amplihack-hive", path=str(Path(sys.executable).parent))
    if script:
        return [script], "amplihack-hive"
    return [sys.executable, "-m", "amplihack_hive"], "python -m amplihack_hive"


def run_once(argv: Sequence[str], env: dict[str, str], check: bool = True) -> float:
    """Wall seconds of one whole process."""
    t = time.perf_counter()
    done = subprocess.run(
        argv,
        cwd=env[HOME_ENV],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    seconds = time.perf_counter() - t
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()}")
    return seconds


def measure(commands: Sequence[Command], env: dict[str, str], repeats: int) -> None:
    """One warm-up round, then ``repeats`` rounds of every command in turn."""
    for round_ in range(repeats + 1):
        for command in commands:
            seconds = run_once(command.argv, env)
            if round_:
                command.times.append(seconds)
        if round_:
            note(
                f"round {round_}/{repeats}: "
                + ", ".join(f"{c.label} {c.times[-1] * 1000:.0f}" for c in commands)
                + " ms"
            )


def ratio(a: Command, b: Command) -> float:
    return statistics.median(x / y for x, y in zip(a.times, b.times, strict=True))


def top_imports(cli: list[str], args: Sequence[str], env: dict[str, str], count: int = 6) -> str:
    """The ``count`` largest top-level imports of one run of the command line ``cli`` with
    ``args`` (``-X importtime``, cumulative)."""
    script = cli[1:] if cli[0] == sys.executable else cli  # the console script is Python
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *script, *args],
        cwd=env[HOME_ENV],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    found = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        _, cumulative, name = line.split("|")
        if cumulative.strip().isdigit() and not name.startswith("  "):  # not nested
            found.append((int(cumulative), name.strip()))
    found.sort(reverse=True)
    return ", ".join(f"{name} {us / 1000:.0f} ms" for us, name in found[:count])


def start_hive(cli: list[str], env: dict[str, str]) -> None:
    note("starting a 2-agent hive for recall ...")
    for args in (
        ["create", "live", "--agents", "2", "--backend", "memory", "--force"],
        ["start", "live", "--timeout", "120"],
        ["learn", "live", str(SAMPLE)],
    ):
        run_once([*cli, *args], env)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_startup", description=__doc__)
    parser.add_argument("--repeats", type=int, default=15, help="rounds counted (default 15)")
    parser.add_argument("--no-recall", action="store_true", help="skip recall (starts agents)")
    args = parser.parse_args(argv)

    cli, named = cli_argv()
    py = sys.executable
    home = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    env = {**os.environ, HOME_ENV: str(home)}
    for name in ("alpha", "beta", "gamma"):
        run_once([*cli, "create", name, "--agents", "3"], env)
    base = Command("python -c pass", [py, "-c", "pass"])
    version = Command(f"{named} --version", [*cli, "--version"])
    dash_m = Command(
        "python -m amplihack_hive --version", [py, "-m", "amplihack_hive", "--version"]
    )
    package = Command("python -c 'import amplihack_hive'", [py, "-c", "import amplihack_hive"])
    others = [
        Command(f"{named} --help", [*cli, "--help"]),
        Command(f"{named} list", [*cli, "list"]),
        Command(f"{named} create --force", [*cli, "create", "alpha", "--agents", "3", "--force"]),
        Command(f"{named} render", [*cli, "render", "beta"]),
    ]
    commands = [base, version, dash_m, package, *others]
    recall = api = None
    try:
        if not args.no_recall:
            start_hive(cli, env)
            recall = Command(f"{named} recall", [*cli, "recall", "live", QUESTION, "-k", "3"])
            code = (
                "from amplihack_hive import Hive\n"
                f"with Hive.connect('live') as hive: hive.recall({QUESTION!r}, 3)\n"
            )
            api = Command("python -c 'Hive.connect(...).recall(...)'", [py, "-c", code])
            commands += [recall, api]
        note(f"{len(commands)} commands x {args.repeats} rounds ...")
        measure(commands, env, args.repeats)
        imports = {"list": top_imports(cli, ["list"], env)}
        if recall is not None:
            imports["recall"] = top_imports(cli, recall.argv[len(cli) :], env)
    finally:
        if not args.no_recall:
            run_once([*cli, "stop", "live"], env, check=False)
        shutil.rmtree(home, ignore_errors=True)

    def row(
        command: Command, against: Command = base, target: str = "", ok: bool | None = None
    ) -> Row:
        return Row(
            f"{command.label}, ms",
            f"{against.label}: {against.median_ms:.0f}",
            f"{command.median_ms:.0f}",
            f"{ratio(command, against):.2f}x",
            target,
            ok,
        )

    version_ratio = ratio(version, base)
    rows = [
        row(version, target=f"<= {VERSION_RATIO_MAX:g}x", ok=version_ratio <= VERSION_RATIO_MAX),
        row(dash_m),
        row(package),
        *(row(command) for command in others),
    ]
    if recall is not None and api is not None:
        ok = recall.median_ms <= RECALL_TARGET_MS
        rows += [row(recall, target=f"~{RECALL_TARGET_MS:.0f} ms", ok=ok), row(recall, api)]
    print(render(rows))
    print(f"medians of {args.repeats} rounds; each process from spawn to exit")
    for label, line in imports.items():
        print(f"largest top-level imports of `{label}` (-X importtime): {line}")
    note("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
