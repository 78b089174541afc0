"""The local supervisor: start, watch and stop a hive's agent processes.

Modeled on honcho's manager: each agent process runs in its own session (so a signal to
its process group reaches everything it started), stop sends SIGTERM, waits a grace
period, then SIGKILL. The process factory and the clock are injectable for tests.
Processes are identified by PID *and* start time *and* command line
(:func:`amplihack_hive.agent.runstate.process_of`), so a stale record or a reused PID is
never mistaken for a running agent, and never signalled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Union

import psutil

from amplihack_hive.agent.runstate import (
    AGENT_MODULE,
    LOG_DIR,
    MembersFile,
    ProcessRecord,
    log_path,
    process_of,
    read_records,
    record_path,
    runs_for,
    write_members,
)
from amplihack_hive.errors import ConfigError, HiveError, HiveStateError, NotFoundError
from amplihack_hive.hive.config import HiveConfig, load_hive, pin_domains
from amplihack_hive.hive.home import HomeArg, hive_dir
from amplihack_hive.hive.keeper import (
    CRASHED,
    KEEPER_MODULE,
    RESTARTING,
    RUNNING,
    KeeperState,
    keeper_command,
    keeper_path,
    keeper_process,
    read_keeper,
    read_keepers,
)
from amplihack_hive.hive.launcher import can_fork, launcher_command
from amplihack_hive.hive.token import read_token

if TYPE_CHECKING:
    from amplihack_hive.hive.probe import AgentProbe

# asyncio, the event loop thread and the HTTP transport (aiohttp) are imported by the
# methods that talk to agents: `remove-agent` on a stopped hive needs none of them.

logger = logging.getLogger(__name__)

#: How long ``status`` waits for an agent's ``/health`` (answered from memory).
HEALTH_TIMEOUT_S = 2.0
#: How long it waits for ``/stats`` (counted on the stores, which may be busy).
STATS_TIMEOUT_S = 3.0

Spawn = Callable[..., subprocess.Popen[bytes]]
Progress = Callable[[int, int], None]


@dataclass
class AgentStatus:
    name: str
    state: str  # "healthy" | "unhealthy" | "restarting" | "crashed" | "stopped"
    pid: int | None = None
    url: str | None = None
    facts: int | None = None
    rss_mb: float | None = None
    uptime_s: float | None = None
    #: how the other agents see it: "alive", "suspect" or "down" (their failure detectors)
    seen_by_hive: str | None = None
    ready: bool | None = None
    hints_pending: int | None = None
    last_repair: float | None = None
    #: why it is not healthy, when it is not
    reason: str | None = None
    #: restarts by its keeper since ``start``, and how its process last ended
    #: (``{"code": int | None, "signal": str | None, "at": unix time}``)
    restarts: int | None = None
    last_exit: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StartResult:
    started: list[str]
    already_running: list[str]


@dataclass
class StopResult:
    stopped: list[str]
    killed: list[int]


def agent_command(cfg: HiveConfig, directory: Path, agents: Sequence[str]) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        AGENT_MODULE,
        "--hive-dir",
        str(directory),
        "--agents",
        ",".join(agents),
        "--all-agents",
        ",".join(cfg.ring_names),
        "--replication",
        str(cfg.replication),
        "--backend",
        cfg.backend,
        "--buffer-pool-mb",
        str(cfg.buffer_pool_mb),
        "--tokenizer",
        str(cfg.tokenizer),
    ]
    if cfg.semantic is not None:
        cmd += ["--embedder", cfg.semantic.embedder, "--nprobe", str(cfg.semantic.nprobe)]
    for a in cfg.agents:
        if a.name in agents and a.kuzu_db:
            cmd += ["--kuzu-db", f"{a.name}={a.kuzu_db}"]
    return cmd


class Supervisor:
    """Start, inspect and stop the local processes of one hive."""

    def __init__(
        self,
        home: HomeArg,
        name: str,
        *,
        spawn: Spawn = subprocess.Popen,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.home = home
        self.dir = hive_dir(home, name)
        self._config: HiveConfig | None = None
        #: Why the config does not load (None when it does): ``stop`` and ``status`` still
        #: work from the run records, so a broken config never strands running agents.
        self.config_error: ConfigError | None = None
        try:
            self._config = load_hive(home, name)
        except ConfigError as exc:
            if not read_records(self.dir) and not read_keepers(self.dir):
                raise
            self.config_error = exc
        self.spawn = spawn
        self.clock = clock
        self.sleep = sleep
        self._probe: AgentProbe | None = None

    @property
    def config(self) -> HiveConfig:
        """The hive's config; its ConfigError when it does not load."""
        if self._config is None:
            assert self.config_error is not None
            raise self.config_error
        return self._config

    # -- records -------------------------------------------------------------------------

    def live_records(self) -> list[tuple[ProcessRecord, psutil.Process]]:
        """Records whose process is alive and ours; stale records are removed."""
        live = []
        for rec in read_records(self.dir):
            proc = process_of(rec, self.dir)
            if proc is None:
                logger.info("removing stale record of %s (pid %d)", rec.group, rec.pid)
                record_path(self.dir, rec.group).unlink(missing_ok=True)
            else:
                live.append((rec, proc))
        return live

    def live_keepers(self) -> list[tuple[KeeperState, psutil.Process]]:
        """Keepers whose process is alive and ours (a dead keeper's state stays, for
        ``status``, until the next start or stop)."""
        live = []
        for kept in read_keepers(self.dir):
            proc = keeper_process(kept, self.dir)
            if proc is not None:
                live.append((kept, proc))
        return live

    def _hosting_keepers(self, settle_s: float = 3.0) -> list[KeeperState]:
        """The live keepers that will keep their agents: running or restarting them. A
        keeper whose agent just died decides within moments whether to restart it; it is
        waited for, so that a start right after a crash neither skips the agent (its keeper
        is giving up) nor runs it twice (its keeper restarts it)."""
        deadline = self.clock() + settle_s
        while True:
            undecided = []
            hosting = []
            for kept, _ in self.live_keepers():
                if kept.state == RESTARTING or (kept.state == RUNNING and _alive(kept.child_pid)):
                    hosting.append(kept)
                elif kept.state == RUNNING:  # its agent is gone: restart or give up?
                    undecided.append(kept)
                else:  # crashed or exited: it is on its way out
                    undecided.append(kept)
            if not undecided or self.clock() >= deadline:
                return hosting + [k for k in undecided if k.state == RUNNING]
            self.sleep(0.05)

    def _orphans(self, known: set[int]) -> list[psutil.Process]:
        """Agent and keeper processes of this hive that have no record (e.g. killed
        before writing one)."""
        out = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            try:
                cmd = proc.info["cmdline"] or []
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if proc.pid in known:
                continue
            if runs_for(cmd, AGENT_MODULE, self.dir) or runs_for(cmd, KEEPER_MODULE, self.dir):
                out.append(proc)
        return out

    # -- start ---------------------------------------------------------------------------

    def start(
        self,
        timeout: float = 60.0,
        progress: Progress | None = None,
        agents_per_process: int | None = None,
    ) -> StartResult:
        """Start the agents that are not running, ``agents_per_process`` per process (the
        config's value unless given), and wait until every agent is healthy."""
        hosted, missing, chunks = self.plan(agents_per_process)
        children = self.launch_all(chunks)
        try:
            self._wait_healthy(children, timeout, progress)
        finally:
            self.close()
        names = set(self.config.agent_names)
        return StartResult(started=missing, already_running=sorted(hosted & names))

    def plan(
        self, agents_per_process: int | None = None
    ) -> tuple[set[str], list[str], list[list[str]]]:
        """What a start does: the agents already hosted, the agents to start, and those
        grouped one list per process to spawn. Publishes the membership (and records the
        domains of packed agents) as a side effect, as a start must before spawning."""
        cfg = self.config
        if not cfg.agents:
            raise HiveStateError(f"hive {self.name!r} has no agents; add one with add-agent")
        read_token(self.dir)  # fail early, in the CLI, on a missing token
        self.dir.chmod(0o700)  # a hive made by an older version may be open to others
        hosted = {a for rec, _ in self.live_records() for a in rec.agents}
        # a keeper restarting its agent hosts it too: starting another would run it twice
        hosted |= {a for kept in self._hosting_keepers() for a in kept.agents}
        domains = cfg.domains(agents_per_process)
        # agents already running keep the domain they run under
        published = MembersFile(self.dir).domains()
        domains.update({a: published[a] for a in hosted if a in published})
        if any(a.domain is None and domains[a.name] != a.name for a in cfg.agents):
            # packed agents without a recorded domain: record it, so that neither a later
            # start (with another --agents-per-process) nor a removal regroups them
            cfg = self._config = pin_domains(self.home, self.name, domains)
        # running agents adopt added/removed ones; the ring keeps each domain's agents apart
        write_members(self.dir, cfg.ring_names, domains)
        # an agent being removed is not started again (its replicas hold what it held)
        missing = [a for a in cfg.ring_names if a not in hosted]
        # one process per failure domain: the agents that die together are the agents
        # the ring already keeps from holding two copies of one record
        groups: dict[str, list[str]] = {}
        for a in missing:
            groups.setdefault(domains[a], []).append(a)
        (self.dir / LOG_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
        return hosted, missing, list(groups.values())

    def open_log(self, chunk: list[str]) -> IO[bytes]:
        """The log file of the process hosting ``chunk``, opened to append; the other
        agents of the chunk get a symlink to it."""
        log = log_path(self.dir, chunk[0])
        for other in chunk[1:]:
            link = log_path(self.dir, other)
            link.unlink(missing_ok=True)
            link.symlink_to(log.name)
        # owner-only, like everything in the hive (a log quotes what agents were taught)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        return os.fdopen(fd, "ab")

    def launch_all(self, chunks: list[list[str]]) -> list[tuple[list[str], KeeperHandle]]:
        """Start the keeper of each chunk, detached: all forked from one launcher that
        imported the agent's modules once (hive/launcher.py), where that can be and the
        default ``spawn`` is used; else (or when the launcher could fork none) one new
        interpreter each (:meth:`launch`)."""
        if not chunks:
            return []
        commands = [self._keeper_command(chunk) for chunk in chunks]
        if self.spawn is not subprocess.Popen or not can_fork(commands):
            return [
                (chunk, self.launch(chunk, command))
                for chunk, command in zip(chunks, commands, strict=True)
            ]
        specs = []
        for chunk, command in zip(chunks, commands, strict=True):
            self.open_log(chunk).close()
            specs.append({"argv": command, "log": str(log_path(self.dir, chunk[0]))})
        pids, error = self._run_launcher(
            launcher_command(commands), {"backend": self.config.backend, "keepers": specs}
        )
        if not pids:
            logger.warning("forking the agent processes failed (%s); starting each anew", error)
            return [
                (chunk, self.launch(chunk, command))
                for chunk, command in zip(chunks, commands, strict=True)
            ]
        children: list[tuple[list[str], KeeperHandle]] = [
            (chunk, _Forked(pid)) for chunk, pid in zip(chunks, pids, strict=False)
        ]
        if error is not None or len(pids) != len(chunks):
            for _, keeper in children:  # the ones forked before it failed
                with contextlib.suppress(psutil.NoSuchProcess):
                    _signal_group(psutil.Process(keeper.pid), signal.SIGTERM)
            raise HiveStateError(f"cannot start the agent processes: {error}")
        return children

    def _run_launcher(
        self, command: list[str], spec: dict[str, Any]
    ) -> tuple[list[int], str | None]:
        """Run the launcher; the pids of the keepers it forked, and what went wrong if
        anything did (it writes each pid as a line as it forks, then ``ok`` or ``error:
        <why>``; the pids before a failure are the keepers to stop)."""
        output, why = b"", None
        try:
            done = subprocess.run(
                command,
                input=json.dumps(spec).encode(),
                capture_output=True,
                cwd=self.dir,
                env=_agent_env(),
                start_new_session=True,
                timeout=LAUNCH_TIMEOUT_S,
            )
            output = done.stdout
            if done.returncode != 0:
                err = done.stderr.decode(errors="replace").strip().splitlines()
                why = f"the launcher exited with code {done.returncode}" + (
                    f": {err[-1]}" if err else ""
                )
        except subprocess.TimeoutExpired as exc:
            output = exc.stdout or b""
            why = f"the launcher took more than {LAUNCH_TIMEOUT_S:g} s"
        except OSError as exc:
            why = f"cannot run the launcher: {exc}"
        pids: list[int] = []
        for line in output.decode(errors="replace").splitlines():
            if line.isdigit():
                pids.append(int(line))
            elif line.startswith("error: "):
                why = line[len("error: ") :]
            elif line != "ok":
                why = why or f"the launcher wrote {line[:80]!r}"
        if why is None and len(pids) != len(spec["keepers"]):
            why = f"the launcher forked {len(pids)} of {len(spec['keepers'])} keepers"
        return pids, why

    def _keeper_command(self, chunk: list[str]) -> list[str]:
        """The command line of ``chunk``'s keeper, a crashed keeper's state cleared."""
        keeper_path(self.dir, chunk[0]).unlink(missing_ok=True)
        options = agent_command(self.config, self.dir, chunk)[3:]  # after "python -m agent"
        return keeper_command(self.dir, chunk[0], chunk, self.config.restart, options)

    def launch(
        self, chunk: list[str], command: list[str] | None = None, *, attached: bool = False
    ) -> subprocess.Popen[bytes]:
        """Start the keeper of ``chunk`` (which starts its agent process), by ``command``
        (:meth:`_keeper_command` unless given): detached, in a session of its own and
        writing its log; or ``attached`` (the foreground mode): in our process group, so
        Ctrl-C reaches it, its output on a pipe to us."""
        command = command or self._keeper_command(chunk)
        out: IO[bytes] | int = subprocess.PIPE if attached else self.open_log(chunk)
        try:
            return self.spawn(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=not attached,
                cwd=self.dir,
                env=_agent_env(),
            )
        finally:
            if not isinstance(out, int):
                out.close()

    def _wait_healthy(
        self,
        children: list[tuple[list[str], KeeperHandle]],
        timeout: float,
        progress: Progress | None,
    ) -> None:
        want = set(self.config.ring_names)
        deadline = self.clock() + timeout
        healthy: set[str] = set()
        while True:
            for chunk, keeper in children:
                # an agent that exits while it starts fails the start (its keeper would
                # only restart it into the same failure): stop its keeper and say why
                kept = read_keeper(keeper_path(self.dir, chunk[0]))
                ended = kept.last_exit if kept is not None else None
                if keeper.poll() is None and ended is None:
                    continue
                if keeper.poll() is None:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        _signal_group(psutil.Process(keeper.pid), signal.SIGTERM)
                    keeper.wait(timeout=10)
                how = (
                    str(ended)
                    if ended
                    else "exited"
                    if keeper.returncode is None
                    else f"exited with code {keeper.returncode}"
                )
                raise HiveStateError(
                    f"agent process for {', '.join(chunk)} {how} while starting: "
                    f"{_last_line(log_path(self.dir, chunk[0]))} "
                    f"(see: amplihack-hive logs {self.name} {chunk[0]})"
                )
            healthy = self.ready_agents()
            if progress:
                progress(len(healthy & want), len(want))
            if want <= healthy:
                return
            if self.clock() >= deadline:
                late = sorted(want - healthy)
                shown = ", ".join(late[:10]) + (" ..." if len(late) > 10 else "")
                raise HiveStateError(
                    f"{len(late)} of {len(want)} agents not healthy after {timeout:g}s: {shown} "
                    f"(they keep starting; see amplihack-hive status/logs {self.name})"
                )
            self.sleep(0.2)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the probes' connection pool and event loop thread (opened on first use)."""
        if self._probe is not None:
            self._probe.close()
            self._probe = None

    @property
    def probe(self) -> AgentProbe:
        """The one HTTP client (and event loop) of this supervisor's probes."""
        if self._probe is None:
            from amplihack_hive.hive.probe import AgentProbe

            self._probe = AgentProbe(read_token(self.dir))
        return self._probe

    def ready_agents(self) -> set[str]:
        """Agents whose process answers /health and is ready (cheaper than status())."""
        live = self.live_records()
        replies = self.probe.fetch({rec.group: (rec.url + "/health", 2.0) for rec, _ in live})
        ready: set[str] = set()
        for rec, _ in live:
            reply = replies[rec.group]
            if isinstance(reply, dict) and reply.get("ready", True):
                ready.update(rec.agents)
        return ready

    # -- status --------------------------------------------------------------------------

    def status(self) -> list[AgentStatus]:
        """One row per configured agent. Whether an agent is healthy comes from ``/health``
        (answered from memory in milliseconds); its records, RSS and repair state from
        ``/stats``, which counts on the stores and may be late while they are busy: then
        those columns are empty, and the agent is still healthy."""
        live = self.live_records()
        by_agent = {a: rec for rec, _ in live for a in rec.agents}
        records = [rec for rec, _ in live]
        probed = (
            self._fetch_paths(records, {"/health": HEALTH_TIMEOUT_S, "/stats": STATS_TIMEOUT_S})
            if live
            else {}
        )
        health, stats = probed.get("/health", {}), probed.get("/stats", {})
        seen = _hive_view(stats.values())
        out = []
        # when the config does not load: the agents the run records name
        if self._config is not None:
            cfg = self._config
            names = [a for a in cfg.agent_names if a not in cfg.retiring or a in by_agent]
        else:
            names = sorted(by_agent)
        keepers = {a: kept for kept in read_keepers(self.dir) for a in kept.agents}
        for agent in names:
            rec = by_agent.get(agent)
            kept = keepers.get(agent)
            if rec is None:
                row = self._not_running(agent, kept)
                row.seen_by_hive = seen.get(agent)
                out.append(_kept(row, kept))
                continue
            h = health.get(rec.group)
            if h is None:
                row = AgentStatus(
                    agent,
                    "unhealthy",
                    rec.pid,
                    rec.url,
                    seen_by_hive=seen.get(agent),
                    reason=f"no answer to /health within {HEALTH_TIMEOUT_S:g} s",
                )
                out.append(_kept(row, kept))
                continue
            s = stats.get(rec.group, {})
            per = s.get("agents", {}).get(agent, {})
            last = per.get("last_repair") or {}
            ready = bool(h.get("ready_agents", {}).get(agent, h.get("ready", True)))
            broken = (h.get("broken") or {}).get(agent)
            reason = (
                None
                if ready
                else f"store broken: {broken}"
                if broken
                else "rebuilding from its replicas"
            )
            row = AgentStatus(
                agent,
                "healthy" if ready else "unhealthy",
                rec.pid,
                rec.url,
                per.get("facts"),
                s.get("rss_mb"),
                s.get("uptime_s", h.get("uptime_s")),
                seen_by_hive=seen.get(agent, "alive"),
                ready=ready,
                hints_pending=per.get("hints_pending"),
                last_repair=last.get("finished"),
                reason=reason,
            )
            out.append(_kept(row, kept))
        return out

    def _not_running(self, agent: str, kept: KeeperState | None) -> AgentStatus:
        """The row of an agent with no live process: what its keeper says happened."""
        if kept is None:
            return AgentStatus(agent, "stopped")
        alive = keeper_process(kept, self.dir) is not None
        if alive and kept.state == RESTARTING:
            wait = max(0.0, (kept.next_start or 0.0) - time.time())
            why = f"{kept.last_exit}; restart {kept.restarts + 1} in {wait:.1f} s"
            return AgentStatus(agent, "restarting", reason=why)
        if alive:  # its process is starting and has not published its address yet
            return AgentStatus(agent, "unhealthy", reason="starting")
        if kept.state == CRASHED:
            return AgentStatus(agent, "crashed", reason=kept.reason)
        if kept.state in (RUNNING, RESTARTING):  # the keeper itself was killed
            why = f"its keeper (pid {kept.pid}) is gone"
            if kept.last_exit is not None:
                why += f"; the agent process {kept.last_exit}"
            return AgentStatus(agent, "crashed", reason=why)
        return AgentStatus(agent, "stopped", reason=kept.reason)

    def _fetch_paths(
        self, records: list[ProcessRecord], paths: dict[str, float]
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """``GET`` each of ``paths`` (path -> timeout, s) of every process, all at once;
        per path, the replies of the processes that answered."""
        asked = {
            (rec.group, path): (rec.url + path, t) for rec in records for path, t in paths.items()
        }
        out: dict[str, dict[str, dict[str, Any]]] = {path: {} for path in paths}
        for (group, path), reply in self.probe.fetch(asked).items():
            if isinstance(reply, HiveError):
                logger.info("%s does not answer %s: %s", group, path, reply)
            else:
                out[path][group] = reply
        return out

    # -- membership ----------------------------------------------------------------------

    def retire(self, agent: str, timeout: float = 60.0) -> int:
        """Take ``agent`` out of the running hive: publish the membership without it, have
        it hand every record to its new owners, then stop its process if it hosts no other
        agent. Returns the facts it held (now handed off). The caller removes it from the
        config afterwards, so a retire that times out can simply be run again."""
        live = self.live_records()
        rec = next((r for r, _ in live if agent in r.agents), None)
        members = [a for a in self.config.ring_names if a != agent]
        # the domains the running agents use (start may have packed them by its option)
        domains = MembersFile(self.dir).domains() or self.config.domains()
        write_members(self.dir, members, domains)
        if rec is None:
            # not running (or its keeper between two runs): the others rebuild its
            # ranges from their replicas; a keeper must not start it again
            self._stop_retired(agent, members)
            return 0
        deadline = self.clock() + timeout
        wait = max(5.0, timeout / 4)

        def step(repair: bool) -> dict[str, Any]:
            if repair:
                self.probe.post(rec.url + "/v1/admin/repair", {}, wait)
            held: dict[str, Any] = self.probe.get(rec.url + "/stats", wait)["agents"].get(agent, {})
            return held

        handed = int(step(False).get("facts") or 0)
        while True:
            self.sleep(1.5)  # every agent re-reads the membership once a second
            left = step(True)
            if not left.get("facts") and not left.get("postings"):
                break
            if self.clock() >= deadline:
                raise HiveStateError(
                    f"agent {agent} still holds {left.get('facts')} facts and "
                    f"{left.get('postings')} postings after {timeout:g}s; it keeps running "
                    f"(its owners may be down); it stays in the config: run remove-agent "
                    f"again to retry"
                )
        self._stop_retired(agent, members)
        return handed

    def _stop_retired(self, agent: str, members: list[str]) -> None:
        """Stop the process (and keeper) hosting ``agent`` if it hosts no member left."""
        hosts = [r.agents for r, _ in self.live_records() if agent in r.agents]
        hosts += [k.agents for k, _ in self.live_keepers() if agent in k.agents]
        if hosts and not any(set(h) & set(members) for h in hosts):
            self.stop(timeout=10, agents=[agent])

    # -- stop ----------------------------------------------------------------------------

    def stop(self, timeout: float = 10.0, agents: Iterable[str] | None = None) -> StopResult:
        """Stop every agent process (or only those hosting ``agents``): SIGTERM, then
        SIGKILL after ``timeout``. Their run records and keeper states are removed: a
        stopped agent has no crash or restart to report."""
        wanted = None if agents is None else set(agents)

        def chosen(hosted: list[str]) -> bool:
            return wanted is None or bool(wanted & set(hosted))

        keepers = [(k, p) for k, p in self.live_keepers() if chosen(k.agents)]
        live = [(r, p) for r, p in self.live_records() if chosen(r.agents)]
        # keepers first (one signal reaches a keeper and its agent: they share a group),
        # so that none takes its agent's exit for a crash and restarts it
        procs = [p for _, p in keepers] + [p for _, p in live]
        if wanted is None:
            procs += self._orphans({p.pid for p in procs})
        for proc in procs:
            _signal_group(proc, signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=timeout)
        killed = []
        for proc in alive:
            logger.warning(
                "agent process %d ignored SIGTERM for %gs; killing it", proc.pid, timeout
            )
            _signal_group(proc, signal.SIGKILL)
            killed.append(proc.pid)
        psutil.wait_procs(alive, timeout=5)
        for rec, _ in live:
            record_path(self.dir, rec.group).unlink(missing_ok=True)
        self.close()  # nothing left to probe (a later call opens the probe again)
        stopped = {a for rec, _ in live for a in rec.agents}
        stopped |= {a for kept, _ in keepers for a in kept.agents}
        for kept in read_keepers(self.dir):
            if chosen(kept.agents):
                keeper_path(self.dir, kept.group).unlink(missing_ok=True)
        return StopResult(stopped=sorted(stopped), killed=killed)

    def restart(
        self,
        agents: Sequence[str] | None = None,
        *,
        timeout: float = 60.0,
        stop_timeout: float = 10.0,
        progress: Progress | None = None,
    ) -> StopResult:
        """Stop the processes hosting ``agents`` (every agent when None; an agent packed
        with others takes them along), then start what is not running and wait until
        every agent is healthy. Returns what was stopped."""
        cfg = self.config
        for agent in agents or ():
            if agent not in cfg.agent_names:
                raise NotFoundError(
                    f"hive {self.name!r} has no agent {agent!r}; "
                    f"its agents: {', '.join(cfg.agent_names)}"
                )
        stopped = self.stop(timeout=stop_timeout, agents=agents)
        self.start(timeout=timeout, progress=progress)
        return stopped


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _kept(row: AgentStatus, kept: KeeperState | None) -> AgentStatus:
    """``row`` with its keeper's restart count and last exit."""
    if kept is not None:
        row.restarts = kept.restarts
        row.last_exit = None if kept.last_exit is None else asdict(kept.last_exit)
    return row


def _signal_group(proc: psutil.Process, sig: signal.Signals) -> None:
    """Signal the process group ``proc`` leads (a detached keeper and its agent, which
    share it), or just ``proc`` when it leads none: an agent under its keeper, or a
    foreground hive's processes, whose group is that of the foreground command (and of
    whatever it is piped to), never to be signalled whole from another shell."""
    try:
        pgid = os.getpgid(proc.pid)
        if pgid == proc.pid and pgid != os.getpgid(0):
            os.killpg(pgid, sig)
        else:
            os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise HiveStateError(f"not allowed to signal agent process {proc.pid}: {exc}") from None


def _last_line(path: Path) -> str:
    """The last ERROR line of an agent's log (why it stopped; the keeper's line about
    restarting it comes after), else its last line."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines[-20:] if " ERROR " in ln]
    line = errors[-1] if errors else lines[-1] if lines else ""
    return line[-300:]


def _hive_view(stats: Iterable[dict[str, Any]]) -> dict[str, str]:
    """The worst state any answering agent reports for each peer."""
    rank = {"alive": 0, "suspect": 1, "down": 2}
    view: dict[str, str] = {}
    for s in stats:
        for peer, state in (s.get("peers") or {}).items():
            if rank.get(state, 0) >= rank.get(view.get(peer, "alive"), 0):
                view[peer] = state
    return view


#: Variables a container sets for its agent; a local agent takes its token from the hive's
#: token file and its peers from the run dir, never from the user's shell.
_CONTAINER_ONLY = ("AMPLIHACK_HIVE_TOKEN", "AMPLIHACK_HIVE_PEERS")


#: How long the launcher may take to import the agent's modules and fork every keeper.
LAUNCH_TIMEOUT_S = 120.0


class _Forked:
    """A keeper forked by the launcher: not our child (the launcher was its parent), so
    what it exited with is not known; ``poll``, ``wait`` and ``pid`` as a Popen's."""

    returncode: int | None = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self._proc: psutil.Process | None = psutil.Process(pid)
        except psutil.NoSuchProcess:
            self._proc = None

    def poll(self) -> int | None:
        """None while it runs, else 1: it has exited (with what, its log and its state
        file say; ``returncode`` stays None)."""
        return None if self.running() else 1

    def running(self) -> bool:
        try:
            return (
                self._proc is not None
                and self._proc.is_running()
                and self._proc.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.NoSuchProcess:
            return False

    def wait(self, timeout: float | None = None) -> int | None:
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except psutil.NoSuchProcess:
                pass
            except psutil.TimeoutExpired as exc:
                raise subprocess.TimeoutExpired(f"keeper {self.pid}", timeout or 0.0) from exc
        return None


#: A keeper being started: spawned by us, or forked by the launcher.
KeeperHandle = Union["subprocess.Popen[bytes]", _Forked]


def _agent_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CONTAINER_ONLY}
    env["PYTHONUNBUFFERED"] = "1"
    return env
