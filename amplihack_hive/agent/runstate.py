"""Run state of a local hive: which agent processes run, where, and whether they are ours.

Each agent process writes ``<hive>/run/<group>.json`` once it listens, where ``group`` is
the name of the first agent it hosts. A PID file alone lies (the process died, the PID was
reused), so a record counts as live only when a process with that PID exists, started at
the recorded ``create_time``, and runs our agent module for this hive.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from amplihack_hive.hive.home import write_file_atomic

logger = logging.getLogger(__name__)

RUN_DIR = "run"
LOG_DIR = "logs"
AGENT_MODULE = "amplihack_hive.agent"


@dataclass(frozen=True)
class ProcessRecord:
    group: str
    pid: int
    create_time: float
    url: str
    agents: list[str]
    started: float

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()


def run_dir(hive: Path) -> Path:
    return hive / RUN_DIR


def log_path(hive: Path, agent: str) -> Path:
    return hive / LOG_DIR / f"{agent}.log"


def record_path(hive: Path, group: str) -> Path:
    return run_dir(hive) / f"{group}.json"


def write_record(hive: Path, record: ProcessRecord) -> None:
    """Publish a record atomically: readers see the old file or the new one, never half."""
    run_dir(hive).mkdir(mode=0o700, parents=True, exist_ok=True)
    path = record_path(hive, record.group)
    write_file_atomic(path, record.to_json())


def remove_record(hive: Path, group: str, pid: int | None = None) -> None:
    """Remove a record (only if it is still the one of ``pid``, when given)."""
    path = record_path(hive, group)
    if pid is not None:
        rec = read_record(path)
        if rec is None or rec.pid != pid:
            return
    path.unlink(missing_ok=True)


def read_record(path: Path) -> ProcessRecord | None:
    try:
        data = json.loads(path.read_text())
        return ProcessRecord(
            group=str(data["group"]),
            pid=int(data["pid"]),
            create_time=float(data["create_time"]),
            url=str(data["url"]),
            agents=[str(a) for a in data["agents"]],
            started=float(data["started"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring unreadable run record %s: %s", path, exc)
        return None


def read_records(hive: Path) -> list[ProcessRecord]:
    directory = run_dir(hive)
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.json")):
        if path.name == MEMBERS_FILE:
            continue
        rec = read_record(path)
        if rec is not None:
            out.append(rec)
    return out


def process_of(record: ProcessRecord, hive: Path) -> psutil.Process | None:
    """The live process of ``record``, or None if it is gone or is not ours (PID reuse)."""
    return our_process(record.pid, record.create_time, AGENT_MODULE, hive)


def command_of(cmdline: list[str]) -> list[str]:
    """A process's arguments from psutil's ``cmdline()``. A process forked from the
    launcher (hive/launcher.py) names itself with one title string, padded with NULs
    (psutil gives ``[title, "", "", ...]``): its arguments are the title's words (the
    launcher forks only for hive paths without white space)."""
    args = [a for a in cmdline if a]
    if len(args) == 1 and " " in args[0]:
        return args[0].split(" ")
    return args


def runs_for(cmdline: list[str], module: str, hive: Path) -> bool:
    """Whether a process with ``cmdline`` (psutil's) runs ``module`` for the hive at
    ``hive`` (``--hive-dir``, as agents and keepers are started)."""
    args = command_of(cmdline)
    if module not in args or "--hive-dir" not in args:
        return False
    at = args.index("--hive-dir") + 1
    return at < len(args) and args[at] == str(hive)


def our_process(pid: int, create_time: float, module: str, hive: Path) -> psutil.Process | None:
    """The live process ``pid`` if it started at ``create_time`` and runs ``module`` for
    ``hive``; None if it is gone, a zombie, or another program (a reused PID)."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > 1.0:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    if not runs_for(cmdline, module, hive):
        return None
    return proc


def own_create_time() -> float:
    return psutil.Process(os.getpid()).create_time()


class PeerDirectory:
    """Agent name -> base URL, read from the hive's run records; re-read on a miss or when
    an agent proved unreachable (it may have restarted on another port)."""

    def __init__(self, hive: Path, min_interval_s: float = 0.2) -> None:
        self.hive = hive
        self.min_interval_s = min_interval_s
        self._urls: dict[str, str] = {}
        self._loaded = 0.0

    def _reload(self) -> None:
        now = time.monotonic()
        if now - self._loaded < self.min_interval_s:
            return
        self._loaded = now
        urls: dict[str, str] = {}
        for rec in read_records(self.hive):
            for agent in rec.agents:
                urls[agent] = rec.url
        self._urls = urls

    def url(self, agent: str) -> str | None:
        if agent not in self._urls:
            self._reload()
        return self._urls.get(agent)

    def forget(self, agent: str) -> None:
        self._urls.pop(agent, None)


MEMBERS_FILE = "members.json"


def write_members(hive: Path, agents: list[str], domains: dict[str, str] | None = None) -> None:
    """Publish the hive's membership (the ring: agents and their failure domains); running
    agents adopt changes."""
    run_dir(hive).mkdir(mode=0o700, parents=True, exist_ok=True)
    body: dict[str, Any] = {"agents": agents}
    if domains:
        body["domains"] = {a: domains[a] for a in agents if a in domains}
    write_file_atomic(run_dir(hive) / MEMBERS_FILE, json.dumps(body).encode())


class MembersFile:
    """Reads the published membership, re-reading only when the file changed."""

    def __init__(self, hive: Path) -> None:
        self.path = run_dir(hive) / MEMBERS_FILE
        self._stamp: float | None = None
        self._agents: list[str] | None = None
        self._domains: dict[str, str] = {}

    def __call__(self) -> list[str] | None:
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return self._agents
        if stamp != self._stamp:
            try:
                data = json.loads(self.path.read_text())
                agents = [str(a) for a in data["agents"]]
                domains = {str(a): str(d) for a, d in (data.get("domains") or {}).items()}
                self._agents, self._domains = agents, domains
                self._stamp = stamp
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                logger.warning("ignoring unreadable %s: %s", self.path, exc)
        return self._agents

    def domains(self) -> dict[str, str]:
        """Agent -> failure domain, as last read (agents not named are their own)."""
        self()
        return dict(self._domains)
