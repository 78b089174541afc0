"""What a command line imports: the commands that need no memory import none of it.

Each command runs in a fresh interpreter, through the real console entry point, and the
modules loaded by the time the interpreter exits are read from an ``atexit`` hook (or,
for ``python -m amplihack_hive``, from ``-X importtime``). ``--version`` is answered before
typer and rich are imported; the config commands (``create``, ``list``, ``add-agent``,
``remove-agent``), ``--help`` and ``render`` import no numpy, aiohttp, Kuzu or Azure SDK.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import REPO_ROOT, installed
from typer.testing import Result

from amplihack_hive._version import __version__

Cli = Callable[..., Result]
slow = pytest.mark.slow

#: Top-level packages that no command without memory or cloud work may import.
HEAVY = {"numpy", "aiohttp", "kuzu", "ladybug", "azure"}
#: What ``--version`` must not import either: it is answered before the typer app.
APP = {"typer", "click", "rich", "pydantic", "yaml", "psutil", "importlib.metadata"}

# Runs the console script's function (``module:function``) with the remaining arguments,
# and at exit writes the names of the loaded modules to the file named first.
RUNNER = """
import atexit, importlib, sys

def _report(path=sys.argv[1]):
    import json
    with open(path, "w") as handle:
        json.dump(sorted(sys.modules), handle)

atexit.register(_report)
module, _, function = sys.argv[2].partition(":")
sys.argv = ["amplihack-hive", *sys.argv[3:]]
sys.exit(getattr(importlib.import_module(module), function)())
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)  # $AMPLIHACK_HIVE_HOME: this test's home (conftest)
    if not installed():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def _console_entry() -> str:
    """``module:function`` of the installed ``amplihack-hive`` script (the one in
    pyproject.toml when not installed)."""
    import importlib.metadata

    for entry in importlib.metadata.entry_points(group="console_scripts"):
        if entry.name == "amplihack-hive":
            return str(entry.value)
    return "amplihack_hive.cli:main"


class Run:
    """One command line run in a fresh interpreter: exit code, output, loaded modules."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        report = tmp_path / f"modules-{os.getpid()}-{id(self)}.json"
        done = subprocess.run(
            [sys.executable, "-c", RUNNER, str(report), _console_entry(), *args],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.args = args
        self.returncode = done.returncode
        self.stdout = done.stdout
        self.stderr = done.stderr
        self.modules: set[str] = set(json.loads(report.read_text())) if report.exists() else set()

    def loaded(self, names: set[str]) -> list[str]:
        """The modules loaded among ``names`` or in the packages they name."""
        return sorted(
            module
            for module in self.modules
            if module in names or module.split(".")[0] in names - {"importlib.metadata"}
        )

    def check(self, code: int = 0) -> Run:
        assert self.returncode == code, (self.args, self.stdout, self.stderr)
        assert self.modules, "the runner did not report its modules"
        return self


@pytest.fixture
def run(tmp_path: Path) -> Callable[..., Run]:
    def invoke(*args: str) -> Run:
        return Run(tmp_path, *args)

    return invoke


@pytest.fixture
def hive(run: Callable[..., Run]) -> str:
    """A stopped hive "h" of 2 agents in this test's home."""
    run("create", "h", "--agents", "2").check()
    return "h"


# --- --version ------------------------------------------------------------------------------


def test_version_is_answered_before_the_app(run: Callable[..., Run]) -> None:
    result = run("--version").check()
    assert result.stdout == f"amplihack-hive {__version__}\n"
    assert result.stderr == ""
    assert result.loaded(HEAVY | APP) == []
    ours = sorted(m for m in result.modules if m.split(".")[0] == "amplihack_hive")
    assert ours == ["amplihack_hive", "amplihack_hive._version", "amplihack_hive.cli"]


def test_python_dash_m_version_imports_no_app(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "amplihack_hive", "--version"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, f"amplihack-hive {__version__}\n")
    imported = {
        line.rpartition("|")[2].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "amplihack_hive.cli" in imported  # -X importtime did list the imports
    assert sorted(m for m in imported if m in APP or m.split(".")[0] in HEAVY | APP) == []


def test_version_with_other_options_still_goes_through_the_app(
    run: Callable[..., Run], tmp_path: Path
) -> None:
    result = run("--home", str(tmp_path / "elsewhere"), "--version").check()
    assert result.stdout == f"amplihack-hive {__version__}\n"
    assert "typer" in result.modules


# --- the commands that need no memory -----------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["list"],
        ["list", "--json"],
        ["create", "new", "--agents", "3", "--backend", "memory"],
        ["add-agent", "h", "agent-9", "--prompt", "hello"],
        ["remove-agent", "h", "agent-1"],
        ["render", "h"],
    ],
    ids=lambda args: " ".join(args),
)
def test_commands_without_memory_import_no_heavy_module(
    run: Callable[..., Run], hive: str, args: list[str]
) -> None:
    result = run(*args).check()
    assert result.loaded(HEAVY) == [], result.args
    if args[0] != "remove-agent":  # which asks whether agents run: psutil
        assert result.loaded({"psutil", "asyncio"}) == [], result.args


def test_list_shows_the_hive_without_heavy_modules(run: Callable[..., Run], hive: str) -> None:
    result = run("list", "--json").check()
    assert [h["name"] for h in json.loads(result.stdout)["hives"]] == [hive]


def test_import_amplihack_hive_loads_nothing_until_used(tmp_path: Path) -> None:
    code = (
        "import sys, amplihack_hive\n"
        "before = sorted(m for m in sys.modules if m.startswith('amplihack_hive'))\n"
        "from amplihack_hive import Hive, HiveError, Memory, MemoryConfig, Hit, Hits\n"
        "import amplihack_hive.api as api\n"
        "assert Hive is api.Hive and Memory is api.Memory\n"
        "assert set(amplihack_hive.__all__) <= set(dir(amplihack_hive))\n"
        "print(before, amplihack_hive.__version__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"['amplihack_hive'] {__version__}\n"


# --- recall: one agent coordinates, the command imports none of the memory -------------------


def test_recall_through_an_agent_imports_no_heavy_module(run: Callable[..., Run]) -> None:
    """A ``recall`` in a shell loop pays a process start each time: the command sends the
    question to one agent (which coordinates) with the standard library's HTTP client."""
    run("create", "r", "--agents", "3", "--backend", "memory").check()
    run("start", "r").check()
    try:
        facts = "Marcus Okafor is on call this week\n\nOwls hunt at night\n"
        learned = subprocess.run(
            [sys.executable, "-m", "amplihack_hive", "learn", "r", "-", "--quiet"],
            input=facts,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert learned.returncode == 0, learned.stderr
        result = run("recall", "r", "who is on call", "--json").check()
        assert json.loads(result.stdout)[0]["content"] == "Marcus Okafor is on call this week"
        assert result.loaded(HEAVY) == [], result.args
        assert "amplihack_hive.memory.coordinator" not in result.modules
    finally:
        run("stop", "r").check()
