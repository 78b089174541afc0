"""Shared fixtures. Every test gets its own hive home and HOME, so none touches the real one."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

# CI runs a fixed set of examples (a red build must be reproducible); local runs explore.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

if TYPE_CHECKING:
    from typer.testing import Result

# A shell without job control starts a background job (``make test &``, a CI step run that
# way) with SIGINT ignored, and every process it execs inherits that: the tests that send
# Ctrl-C to a command would then see it ignored, as the command rightly does. Take SIGINT
# back here, so the commands the tests start get the default disposition a terminal gives.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point ``$AMPLIHACK_HIVE_HOME`` and ``$HOME`` into this test's tmp dir, and clear the
    ``AMPLIHACK_MEMORY_*`` variables. Yields the hive home (not created yet)."""
    user_home = tmp_path / "user-home"
    user_home.mkdir()
    hive_home = tmp_path / "hives"
    monkeypatch.setenv("HOME", str(user_home))
    monkeypatch.delenv("USERPROFILE", raising=False)
    monkeypatch.setenv("AMPLIHACK_HIVE_HOME", str(hive_home))
    for var in list(os.environ):
        if var.startswith("AMPLIHACK_MEMORY_"):
            monkeypatch.delenv(var)
    # no test may reach a real model: the LLM answerer is enabled by these keys
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("AMPLIHACK_HIVE_API_KEY", raising=False)
    # nor a real embeddings endpoint (memory/embed.py)
    monkeypatch.delenv("AMPLIHACK_HIVE_EMBED_KEY", raising=False)
    monkeypatch.delenv("AMPLIHACK_HIVE_EMBED_URL", raising=False)
    yield hive_home


@pytest.fixture(autouse=True)
def no_agent_left_behind(tmp_path: Path) -> Iterator[None]:
    """Whatever a test does (or fails to do), kill the agent processes it started: any
    process running our agent module with a hive dir under this test's tmp_path."""
    yield
    import psutil

    from amplihack_hive.agent.runstate import AGENT_MODULE, command_of
    from amplihack_hive.hive.keeper import KEEPER_MODULE

    root = str(tmp_path)
    leftovers = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = command_of(proc.info["cmdline"] or [])
        if (AGENT_MODULE in cmd or KEEPER_MODULE in cmd) and "--hive-dir" in cmd[:-1]:
            where = cmd[cmd.index("--hive-dir") + 1]
            if where.startswith(root):
                leftovers.append(proc)
    for proc in leftovers:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(leftovers, timeout=5)


@pytest.fixture
def hive_home(isolated_home: Path) -> Path:
    """The hive home of this test (``$AMPLIHACK_HIVE_HOME``); it may not exist yet."""
    return isolated_home


@pytest.fixture
def cli() -> Callable[..., Result]:
    """Invoke the real typer app in process: ``cli("create", "h", "--json")``.

    stdout and stderr are captured separately (``result.stdout``, ``result.stderr``).
    """
    from typer.testing import CliRunner

    from amplihack_hive.cli.app import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input)

    return invoke
