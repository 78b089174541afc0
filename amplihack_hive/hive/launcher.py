"""The launcher: one interpreter imports the agent's modules once and forks every keeper.

``start`` of a local hive used to run a new interpreter per agent process, and each one
imported aiohttp, numpy, kuzu and the memory core again: about 0.6 s of CPU per process,
most of the time to bring up 100 agents at 5 per process on 2 cores. Now ``start`` runs
``python -m amplihack_hive.hive.launcher`` once, with the keepers to start as JSON on its
stdin; the launcher imports what an agent process imports, then forks one keeper per
agent process (each in a session of its own, writing its log, named by its usual command
line with ``setproctitle``) and prints their pids as JSON. Each keeper forks its agent
process from itself, and again when it restarts one (hive/keeper.py), so a restart costs
no imports either. Copy-on-write: the imported modules are one copy in memory, shared.

The launcher forks only where forking is sound: Linux, ``setproctitle`` importable, no
thread running in the launcher, and hive paths without white space (a forked process's
title is split at spaces to read its arguments, agent/runstate.py). Elsewhere, and with
``AMPLIHACK_HIVE_FORK=0``, ``start`` runs a new interpreter per keeper as before.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LAUNCHER_MODULE = "amplihack_hive.hive.launcher"
#: ``AMPLIHACK_HIVE_FORK=0``: a new interpreter per keeper and per agent process
FORK_ENV = "AMPLIHACK_HIVE_FORK"


def can_fork(hive: Path) -> bool:
    """Whether keepers of the hive at ``hive`` can be forked from a launcher here."""
    if os.environ.get(FORK_ENV, "1").strip().lower() in ("0", "no", "false", "off"):
        return False
    if not sys.platform.startswith("linux") or any(c.isspace() for c in str(hive)):
        return False
    try:
        importlib.import_module("setproctitle")
    except ImportError:
        return False
    return True


def preload(backend: str) -> None:
    """Import what an agent process of ``backend`` imports before it serves."""
    importlib.import_module("amplihack_hive.agent.process")
    if backend in ("kuzu", "ladybug"):
        with contextlib.suppress(ImportError):  # the agent says so itself, in its log
            importlib.import_module(backend)


def _become_keeper(argv: Sequence[str], log: str) -> None:
    """In a forked child: a keeper in a session of its own, stdio on its log; never
    returns."""
    code = 1
    try:
        os.setsid()
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.close(null)
        from setproctitle import setproctitle

        from amplihack_hive.hive import keeper

        setproctitle(" ".join(argv))
        code = keeper.main(list(argv[3:]), fork=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def launch(keepers: Sequence[dict[str, Any]], backend: str, pids: list[int]) -> None:
    """Fork one keeper per ``{"argv": keeper command line, "log": path}``, each one's pid
    appended to ``pids`` (so that a fork that fails leaves the others known)."""
    preload(backend)
    if threading.active_count() > 1:
        raise RuntimeError(f"{threading.active_count()} threads after imports: cannot fork")
    for spec in keepers:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _become_keeper([str(a) for a in spec["argv"]], str(spec["log"]))
        pids.append(pid)


def main() -> int:
    """Read ``{"backend", "keepers": [...]}`` on stdin; print ``{"pids": [...]}`` and, when
    something failed, ``"error"`` (the keepers forked before it are in ``pids``)."""
    os.umask(0o077)
    pids: list[int] = []
    out: dict[str, Any] = {"pids": pids}
    try:
        spec = json.load(sys.stdin)
        launch(spec["keepers"], str(spec.get("backend", "")), pids)
    except Exception as exc:  # the supervisor reports it
        out["error"] = f"{type(exc).__name__}: {exc}"
    json.dump(out, sys.stdout)
    return 1 if "error" in out else 0


if __name__ == "__main__":
    sys.exit(main())
