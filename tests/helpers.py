"""Assertions shared by the CLI tests."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from typer.testing import Result

if TYPE_CHECKING:
    from amplihack_hive.hive.supervisor import Supervisor

REPO_ROOT = Path(__file__).resolve().parent.parent


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """Exit 1, nothing on stdout, exactly one ``error: ...`` line on stderr, no traceback."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def installed() -> bool:
    """Whether the amplihack-hive distribution is installed (editable or not)."""
    try:
        importlib.metadata.distribution("amplihack-hive")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def run_module(*args: str, cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """``python -m amplihack_hive ARGS`` as a user runs it (from the source tree if the
    package is not installed)."""
    env = dict(os.environ)
    if not installed():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "amplihack_hive", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def started_hive(
    home: Path, name: str, agents: int, *, backend: str = "kuzu", learn: list[str] | None = None
) -> Supervisor:
    """A created and started local hive (its agents real processes), having learned
    ``learn`` through a client when given. The caller stops it."""
    from amplihack_hive import Hive
    from amplihack_hive.hive.config import create_hive
    from amplihack_hive.hive.supervisor import Supervisor

    create_hive(home, name, agents=agents, backend=backend)
    sup = Supervisor(home, name)
    sup.start(timeout=60)
    if learn:
        with Hive.connect(name, home) as client:
            client.remember_many(learn)
    return sup
