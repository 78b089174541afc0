"""The launcher: one interpreter imports the agent's modules once and forks every keeper.

``start`` of a local hive used to run a new interpreter per agent process, and each one
imported aiohttp, numpy, kuzu and the memory core again: about 0.6 s of CPU per process,
most of the time to bring up 100 agents at 5 per process on 2 cores. Now ``start`` runs
``python -m amplihack_hive.hive.launcher`` once, with the keepers to start as JSON on its
stdin; the launcher imports what an agent process imports, then forks one keeper per
agent process (each in a session of its own, writing its log, named by its usual command
line with ``setproctitle``), printing each one's pid as it goes. Each keeper forks its
agent process from itself, and again when it restarts one (hive/keeper.py), so a restart
costs no imports either. The imported modules are one copy in memory, shared
copy-on-write (frozen out of the garbage collector's reach first, so that collections do
not copy them page by page).

A title can only be as long as the memory of the process's first command line: the
supervisor pads the launcher's with one argument as long as the longest title, and each
forked process checks that it reads as its usual command line (agent/runstate.py's
``runs_for``), else exits rather than run unrecognisable. The launcher forks only where
forking is sound: Linux, ``setproctitle`` importable, no Python thread and no native
thread but numpy's (OpenBLAS handles a fork itself, with ``pthread_atfork``), command
lines without white space in an argument (a title is read back split at spaces: a hive
path or a Kuzu path with a space). Elsewhere, with
``AMPLIHACK_HIVE_FORK=0``, or when the launcher could fork nothing, ``start`` runs a new
interpreter per keeper as before.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import importlib.util
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

LAUNCHER_MODULE = "amplihack_hive.hive.launcher"
#: ``AMPLIHACK_HIVE_FORK=0``: a new interpreter per keeper and per agent process
FORK_ENV = "AMPLIHACK_HIVE_FORK"
#: The argument that makes room for the forked processes' titles (see the docstring).
ROOM_FLAG = "--title-room"


def can_fork(commands: Sequence[Sequence[str]]) -> bool:
    """Whether keepers of these command lines can be forked from a launcher here (a
    title is read back split at spaces: no argument may hold one)."""
    if os.environ.get(FORK_ENV, "1").strip().lower() in ("0", "no", "false", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    if any(c.isspace() for argv in commands for arg in argv for c in arg):
        return False
    return importlib.util.find_spec("setproctitle") is not None


def launcher_command(commands: Sequence[Sequence[str]]) -> list[str]:
    """The launcher's command line, with room for the longest title of ``commands`` (the
    keepers': each holds its agent's options, so its agent's title is shorter)."""
    room = max((len(" ".join(c)) for c in commands), default=0) + 16
    return [sys.executable, "-m", LAUNCHER_MODULE, ROOM_FLAG, "x" * room]


def exit_code(exc: SystemExit) -> int:
    """The status an interpreter exits with for ``exc`` (a message is printed, status 1)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def entitle(argv: Sequence[str]) -> None:
    """Name this (forked) process ``argv``; SystemExit when it then does not read back as
    ``argv`` (the title did not fit), so no check would recognise it."""
    import psutil
    from setproctitle import setproctitle

    from amplihack_hive.agent.runstate import command_of

    setproctitle(" ".join(argv))
    if command_of(psutil.Process().cmdline()) != list(argv):
        raise SystemExit(
            f"cannot name this process {' '.join(argv[:3])!r} (its title does not fit); "
            f"start the hive with {FORK_ENV}=0"
        )


def run_forked(body: Callable[[], int]) -> NoReturn:
    """In a forked child: run ``body`` and exit with its status, as an interpreter would
    (SystemExit honoured, anything else printed, stdio flushed), never returning into the
    parent's code."""
    code = 1
    try:
        code = body()
    except SystemExit as exc:
        code = exit_code(exc)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _native_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def preload(backend: str) -> None:
    """Import what an agent process of ``backend`` imports before it serves; RuntimeError
    when that left a thread running that a fork would not carry over."""
    importlib.import_module("numpy")
    allowed = _native_threads()  # numpy's OpenBLAS pool: fork-aware
    importlib.import_module("amplihack_hive.agent.process")
    if backend in ("kuzu", "ladybug"):
        with contextlib.suppress(ImportError):  # the agent says so itself, in its log
            importlib.import_module(backend)
    if threading.active_count() > 1 or _native_threads() > allowed:
        raise RuntimeError(
            f"{_native_threads()} threads after the imports ({threading.active_count()} "
            "Python threads): a fork would not carry them over"
        )
    gc.collect()
    gc.freeze()


def _become_keeper(argv: Sequence[str], log: str, pids_fd: int) -> int:
    """In a forked child: a keeper in a session of its own, stdio on its log, the pipe
    of pids to the supervisor closed (it reads until every holder closes it)."""
    os.close(pids_fd)
    os.setsid()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)
    from amplihack_hive.hive import keeper

    entitle(argv)
    return keeper.main(list(argv[3:]), fork=True)


def launch(keepers: Sequence[dict[str, Any]], backend: str, out: Any) -> None:
    """Fork one keeper per ``{"argv": keeper command line, "log": path}``, writing each
    one's pid to ``out`` as a line as soon as it is forked."""
    preload(backend)
    for spec in keepers:
        out.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            argv = [str(a) for a in spec["argv"]]
            run_forked(functools.partial(_become_keeper, argv, str(spec["log"]), out.fileno()))
        out.write(f"{pid}\n")
    out.flush()


def main() -> int:
    """Read ``{"backend", "keepers": [...]}`` on stdin; write the keepers' pids to stdout,
    one per line, then ``ok``, or ``error: <why>`` (the pids before it were forked)."""
    os.umask(0o077)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # an inherited SIG_IGN reaps for us
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever an import prints goes to stderr, not among the pids
    try:
        spec = json.load(sys.stdin)
        launch(spec["keepers"], str(spec.get("backend", "")), out)
    except Exception as exc:  # the supervisor reports it
        out.write(f"error: {type(exc).__name__}: {exc}\n")
        out.flush()
        return 1
    out.write("ok\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
