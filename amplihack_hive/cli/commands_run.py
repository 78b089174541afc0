"""Lifecycle commands of a local hive: ``start``, ``status``, ``stop``, ``restart``, ``logs``.

Each calls :class:`amplihack_hive.hive.supervisor.Supervisor` and prints the result;
errors are raised as :class:`~amplihack_hive.errors.HiveError` and reported by the app's
group (one line, exit 1). ``status`` exits 3 when any agent is not healthy.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from amplihack_hive.cli._options import HiveName, JsonFlag
from amplihack_hive.cli._output import out, print_json, say, state, warn
from amplihack_hive.cli.commands_azure import start_azure, status_azure, stop_azure
from amplihack_hive.errors import InvalidInputError, NotFoundError
from amplihack_hive.hive.config import load_hive
from amplihack_hive.hive.home import hive_dir
from amplihack_hive.names import validate_name

if TYPE_CHECKING:
    from rich.progress import Progress
    from rich.table import Table

    from amplihack_hive.hive.supervisor import AgentStatus, Supervisor

# The supervisor (psutil, asyncio, the HTTP transport and aiohttp), the run state and
# rich.progress are imported inside the commands that use them, so that registering these
# commands (every command line, --help included) costs none of it.

RUN_PANEL = "Run a hive"
#: Exit status of ``status`` when any agent is not healthy (or the hive is stopped).
EXIT_NOT_HEALTHY = 3
#: How often ``logs --follow`` looks for new lines, in seconds.
FOLLOW_INTERVAL_S = 0.25
_TAIL_BLOCK = 64 * 1024

# Indirection so tests can stop ``logs --follow`` without a real Ctrl-C.
_sleep: Callable[[float], None] = time.sleep


class Target(StrEnum):
    """Where a hive runs. ``azure`` is accepted by the parser but not available yet."""

    local = "local"
    azure = "azure"


TargetOption = Annotated[
    Target,
    typer.Option("--target", help="Where the hive runs: local processes, or Azure Container Apps."),
]
AZURE = "Azure target"
ResourceGroup = Annotated[
    str | None,
    typer.Option("--resource-group", "-g", help="Azure resource group.", rich_help_panel=AZURE),
]
Subscription = Annotated[
    str | None,
    typer.Option(
        "--subscription",
        help="Azure subscription id (else $AZURE_SUBSCRIPTION_ID).",
        rich_help_panel=AZURE,
    ),
]


OneAgent = Annotated[
    str | None,
    typer.Argument(metavar="[AGENT]", show_default=False, help="One agent (default: every agent)."),
]


def progress_bar(description: str, *, enabled: bool = True) -> Progress:
    """A rich progress bar on stderr, shown only when stderr is a terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console = out(stderr=True)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not (enabled and console.is_terminal),
    )


@contextlib.contextmanager
def healthy_bar(label: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """A progress bar of agents healthy (on a terminal); yields its ``progress`` callback."""
    with progress_bar(label) as bar:
        task = bar.add_task(label, total=total)

        def show(healthy: int, of: int) -> None:
            bar.update(task, completed=healthy, total=of)

        yield show


def _plural(count: int, word: str) -> str:
    """One agent, two agents, two processes: ``count`` ``word``s."""
    if count == 1:
        return f"{count} {word}"
    return f"{count} {word}{'es' if word.endswith(('s', 'x', 'sh', 'ch')) else 's'}"


def open_supervisor(ctx: typer.Context, name: str) -> Supervisor:
    """The supervisor of hive ``name``, closed (its probes' loop and pool) with the command."""
    from amplihack_hive.hive.supervisor import Supervisor

    supervisor = Supervisor(state(ctx).home, name)
    ctx.call_on_close(supervisor.close)
    return supervisor


# --- start / stop ----------------------------------------------------------------------------


def start(
    ctx: typer.Context,
    name: HiveName,
    target: TargetOption = Target.local,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=0.0,
            metavar="SECONDS",
            help="How long to wait for every agent to be healthy.",
        ),
    ] = 60.0,
    agents_per_process: Annotated[
        int | None,
        typer.Option(
            "--agents-per-process",
            min=1,
            metavar="M",
            help="Agents per local process for this start (default: the hive's config).",
        ),
    ] = None,
    foreground: Annotated[
        bool,
        typer.Option(
            "--foreground",
            "-f",
            help="Run attached: every agent's log on stdout, prefixed with its name; "
            "Ctrl-C stops every agent gracefully. Exit 0 when all stopped cleanly, 1 when "
            "an agent crashed or had to be killed.",
        ),
    ] = False,
    stop_timeout: Annotated[
        float,
        typer.Option(
            "--stop-timeout",
            min=0.0,
            metavar="SECONDS",
            help="With --foreground: grace period after Ctrl-C before SIGKILL.",
        ),
    ] = 10.0,
    resource_group: ResourceGroup = None,
    location: Annotated[
        str | None, typer.Option("--location", help="Azure region.", rich_help_panel=AZURE)
    ] = None,
    image: Annotated[
        str | None,
        typer.Option("--image", help="Agent image reference.", rich_help_panel=AZURE),
    ] = None,
    subscription: Subscription = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print the az command (secrets masked).", rich_help_panel=AZURE
        ),
    ] = False,
) -> None:
    """Start the hive's agents as background processes; return once all are healthy.

    Agents already running are left alone; agents that are down are started again. Each
    agent process runs under a keeper that restarts it when it dies, by the hive's restart
    policy (create --restart; the restart section of config.yaml). With --foreground: run
    attached, logs on stdout, until Ctrl-C stops every agent.
    With --target azure: render the Bicep and deploy it with `az deployment group create`.
    """
    if target is Target.azure:
        start_azure(
            state(ctx).home,
            name,
            resource_group=resource_group,
            location=location,
            image=image,
            subscription=subscription,
            dry_run=dry_run,
        )
        return
    supervisor = open_supervisor(ctx, name)
    if foreground:
        _run_foreground(supervisor, timeout, stop_timeout, agents_per_process)
        return
    with healthy_bar(f"starting {name}", len(supervisor.config.ring_names)) as show:
        result = supervisor.start(
            timeout=timeout, progress=show, agents_per_process=agents_per_process
        )
    say(
        Text(
            f"started {_plural(len(result.started), 'agent')} "
            f"({len(result.already_running)} already running)"
        )
    )


def _run_foreground(
    supervisor: Supervisor, timeout: float, stop_timeout: float, agents_per_process: int | None
) -> None:
    from amplihack_hive.hive.foreground import Foreground

    names = supervisor.config.ring_names
    width = max(len(n) for n in [*names, "hive"])
    lock = threading.Lock()

    def emit(label: str, line: str) -> None:
        with lock:  # one pump thread per process: whole lines, never interleaved
            sys.stdout.write(f"{label:<{width}} | {line}\n")
            sys.stdout.flush()

    code = Foreground(supervisor, emit, stop_timeout=stop_timeout).run(timeout, agents_per_process)
    if code:
        raise typer.Exit(code)


def stop(
    ctx: typer.Context,
    name: HiveName,
    target: TargetOption = Target.local,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=0.0,
            metavar="SECONDS",
            help="Grace period after SIGTERM before SIGKILL.",
        ),
    ] = 10.0,
    resource_group: ResourceGroup = None,
    subscription: Subscription = None,
    delete: Annotated[
        bool,
        typer.Option("--delete", help="Delete the container apps instead.", rich_help_panel=AZURE),
    ] = False,
) -> None:
    """Stop every agent (SIGTERM, then SIGKILL after the timeout). A stopped hive is fine.

    With --target azure: stop (or --delete) the hive's container apps."""
    if target is Target.azure:
        stop_azure(
            state(ctx).home,
            name,
            subscription=subscription,
            resource_group=resource_group,
            delete=delete,
        )
        return
    supervisor = open_supervisor(ctx, name)
    if supervisor.config_error is not None:
        warn(f"{supervisor.config_error}; stopping the agents its run records name")
    result = supervisor.stop(timeout=timeout)
    if not result.stopped and not result.killed:
        say(Text(f"hive {name} is not running"))
        return
    line = f"stopped {_plural(len(result.stopped), 'agent')} of hive {name}"
    if result.killed:
        line += f" ({_plural(len(result.killed), 'process')} killed after {timeout:g}s)"
    say(Text(line))


def restart(
    ctx: typer.Context,
    name: HiveName,
    agent: OneAgent = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=0.0,
            metavar="SECONDS",
            help="How long to wait for every agent to be healthy again.",
        ),
    ] = 60.0,
    stop_timeout: Annotated[
        float,
        typer.Option(
            "--stop-timeout",
            min=0.0,
            metavar="SECONDS",
            help="Grace period after SIGTERM before SIGKILL.",
        ),
    ] = 10.0,
) -> None:
    """Stop and start the hive's agents (or one agent), waiting until all are healthy.

    An agent sharing its process with others (--agents-per-process) restarts with them.
    A crashed agent is started again; its restart count starts over.
    """
    if agent is not None:
        validate_name(agent, "agent name")
    supervisor = open_supervisor(ctx, name)
    with healthy_bar(f"restarting {name}", len(supervisor.config.ring_names)) as show:
        result = supervisor.restart(
            None if agent is None else [agent],
            timeout=timeout,
            stop_timeout=stop_timeout,
            progress=show,
        )
    if agent is None:
        line = f"restarted {_plural(len(result.stopped), 'agent')} of hive {name}"
    else:
        line = f"restarted {agent} of hive {name}"
        along = [a for a in result.stopped if a != agent]
        if along:
            line += f" (with {', '.join(along)}: they share its process)"
    if result.killed:
        line += f" ({_plural(len(result.killed), 'process')} killed after {stop_timeout:g}s)"
    say(Text(line))


# --- status ------------------------------------------------------------------------------------

_STATE_STYLE = {
    "healthy": "green",
    "unhealthy": "yellow",
    "restarting": "yellow",
    "crashed": "bold red",
    "stopped": "red",
}


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _cell(value: object, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


def status_table(rows: list[AgentStatus]) -> Table:
    """One row per agent, in 80 columns: names, states and addresses whole (``--json``
    has every field; why an agent is not healthy follows the table, one line each)."""
    from rich.table import Table  # not at import: most commands print no table

    table = Table(
        "agent",
        "state",
        "pid",
        "address",
        "facts",
        "RSS MB",
        "uptime",
        "restarts",
        box=None,
        pad_edge=False,
    )
    for column in (0, 1, 2, 3):
        table.columns[column].no_wrap = True
    for row in rows:
        table.add_row(
            Text(row.name),
            Text(row.state, style=_STATE_STYLE.get(row.state, "")),
            _cell(row.pid),
            Text(_cell(row.url).removeprefix("http://")),
            _cell(row.facts),
            _cell(row.rss_mb, "{:.1f}"),
            _uptime(row.uptime_s),
            _cell(row.restarts),
        )
    return table


def status_notes(rows: list[AgentStatus]) -> list[str]:
    """Why each agent is not healthy, and which the other agents do not see alive."""
    notes = []
    for row in rows:
        if row.state != "healthy" and row.reason:
            notes.append(f"{row.name}: {row.state}: {row.reason}")
        elif row.state == "healthy" and row.seen_by_hive not in (None, "alive"):
            notes.append(f"{row.name}: healthy, but the other agents see it {row.seen_by_hive}")
    return notes


def status(
    ctx: typer.Context,
    name: HiveName,
    target: TargetOption = Target.local,
    json_output: JsonFlag = False,
    resource_group: ResourceGroup = None,
    subscription: Subscription = None,
) -> None:
    """One row per agent: state, pid, address, facts, RSS, uptime and restarts.

    Under the table, why an agent is not healthy (crashed, restarting, a broken store) or
    not seen alive by the others.

    Exit 0 when every agent is healthy, 3 when any is not (or the hive is stopped).
    With --target azure: one row per container app.
    """
    if target is Target.azure:
        code = status_azure(
            state(ctx).home,
            name,
            subscription=subscription,
            resource_group=resource_group,
            json_output=json_output,
        )
        if code:
            raise typer.Exit(code)
        return
    supervisor = open_supervisor(ctx, name)
    if supervisor.config_error is not None:
        warn(f"{supervisor.config_error}; showing the agents its run records name")
    rows = supervisor.status()
    healthy = sum(row.state == "healthy" for row in rows)
    if json_output:
        print_json(
            {"hive": name, "target": target.value, "agents": [row.to_dict() for row in rows]}
        )
    else:
        out().print(status_table(rows))
        for note in status_notes(rows):
            say(Text(note))
        say(Text(f"{healthy} of {_plural(len(rows), 'agent')} healthy"))
    if healthy != len(rows) or not rows:
        raise typer.Exit(EXIT_NOT_HEALTHY)


# --- logs ----------------------------------------------------------------------------------------


@dataclass
class _LogFile:
    """One log file to show: the agents writing it, and how far it has been read."""

    label: str
    path: Path
    offset: int = 0
    inode: int | None = None
    partial: bytes = b""


def tail_lines(path: Path, count: int) -> tuple[list[str], int]:
    """The last ``count`` lines of ``path`` and its size, reading backwards in blocks."""
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if count <= 0:
            return [], size
        data = b""
        position = size
        while position > 0 and data.count(b"\n") <= count:
            step = min(_TAIL_BLOCK, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-count:], size


_DURATION = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The time at the start of every agent log line (logging's asctime, local time).
_STAMP_LEN = len("2026-12-01 09:30:00")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: a duration ago (``90s``, ``10m``, ``2h``, ``1d``) or a local time
    (``2026-12-01T09:30[:00]``, ``2026-12-01 09:30``, or ``09:30`` today)."""
    now = now or datetime.now()
    value = text.strip()
    unit = value[-1:].lower()
    if unit in _DURATION and value[:-1].replace(".", "", 1).isdigit():
        return now - timedelta(seconds=float(value[:-1]) * _DURATION[unit])
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        pass
    try:
        clock = datetime.strptime(value, "%H:%M:%S" if value.count(":") == 2 else "%H:%M")
    except ValueError:
        raise InvalidInputError(
            f"--since {text!r}: expected a duration (30s, 10m, 2h, 1d) or a local time "
            f"(2026-12-01T09:30, 09:30)"
        ) from None
    return datetime.combine(now.date(), clock.time())


def _stamp(line: str) -> datetime | None:
    try:
        return datetime.strptime(line[:_STAMP_LEN], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


def lines_since(path: Path, after: datetime) -> tuple[list[str], int]:
    """The lines of ``path`` logged at or after ``after`` (a line without a time, such as
    a traceback's, goes with the line before it), and the file's size."""
    shown: list[str] = []
    keep = False
    with path.open("rb") as handle:
        for raw in handle:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            stamp = _stamp(line)
            if stamp is not None:
                keep = stamp >= after.replace(microsecond=0)
            if keep:
                shown.append(line)
        size = handle.tell()
    return shown, size


def _log_files(directory: Path, agents: list[str]) -> list[_LogFile]:
    """The log files of ``agents`` (plus stray logs of agents no longer in the config when
    all are shown), each real file once: agents packed in one process share a file through
    symlinks, and it is labelled with all their names."""
    from amplihack_hive.agent.runstate import LOG_DIR, log_path

    if not (directory / LOG_DIR).is_dir():
        return []
    by_file: dict[Path, _LogFile] = {}
    for agent in agents:
        path = log_path(directory, agent)
        if not path.exists():  # also a dangling symlink
            continue
        real = path.resolve()
        if real in by_file:
            by_file[real].label += f",{agent}"
        else:
            by_file[real] = _LogFile(agent, real)
    return list(by_file.values())


def _emit(label: str | None, line: str) -> None:
    sys.stdout.write(f"{label} | {line}\n" if label else f"{line}\n")


def logs(
    ctx: typer.Context,
    name: HiveName,
    agent: OneAgent = None,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C."),
    ] = False,
    lines: Annotated[
        int | None,
        typer.Option(
            "--lines",
            "-n",
            min=0,
            metavar="N",
            help="Lines to show per log (default 50; with --since, all since then).",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="WHEN",
            help="Only lines logged since WHEN: a duration ago (30s, 10m, 2h, 1d) or a "
            "local time (2026-12-01T09:30, 09:30).",
        ),
    ] = None,
) -> None:
    """Show the agents' logs: the last N lines of each, then new lines with --follow.

    Without AGENT every agent's log is shown, each line prefixed with the agent's name
    (agents sharing a process share one log, shown once). No logs yet: a message, exit 0.
    """
    from amplihack_hive.agent.runstate import LOG_DIR, log_path

    after = None if since is None else parse_since(since)
    if lines is None:
        lines = None if after is not None else 50
    home = state(ctx).home
    directory = hive_dir(home, name)
    cfg = load_hive(home, name)
    if agent is not None:
        known = set(cfg.agent_names)
        if (
            agent not in known
            and not log_path(directory, validate_name(agent, "agent name")).exists()
        ):
            raise NotFoundError(
                f"hive {name!r} has no agent {agent!r}; its agents: {', '.join(cfg.agent_names)}"
            )
        agents = [agent]
    else:
        extra = sorted(
            p.stem
            for p in (directory / LOG_DIR).glob("*.log")
            if p.stem not in set(cfg.agent_names)
        )
        agents = [*cfg.agent_names, *extra]
    files = _log_files(directory, agents)
    labelled = agent is None
    if not files:
        who = f"agent {agent} of hive {name}" if agent else f"hive {name}"
        hint = "; waiting for them (Ctrl-C to stop)" if follow else ""
        out(stderr=True).print(
            Text(f"no logs yet for {who} (start it with: amplihack-hive start {name}){hint}")
        )
    try:
        for log in files:
            log.inode = _inode(log.path)
            if after is not None:
                shown, log.offset = lines_since(log.path, after)
                if lines is not None:  # the last N of them
                    shown = shown[-lines:] if lines else []
            else:
                shown, log.offset = tail_lines(log.path, lines or 0)
            for line in shown:
                _emit(log.label if labelled else None, line)
        sys.stdout.flush()
        if follow:
            _follow(directory, agents, files, labelled)
    except KeyboardInterrupt:  # Ctrl-C is how --follow ends: a success
        sys.stdout.flush()
        if not follow:
            raise


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def _follow(directory: Path, agents: list[str], files: list[_LogFile], labelled: bool) -> None:
    """Print lines appended to the logs until interrupted; pick up logs that appear later,
    and start over on a file that was truncated or replaced."""
    known = {log.path: log for log in files}
    while True:
        _sleep(FOLLOW_INTERVAL_S)
        for log in _log_files(directory, agents):
            if log.path not in known:  # a log that appeared since: show it from its start
                known[log.path] = log
        for log in known.values():
            inode = _inode(log.path)
            if inode is None:
                continue
            try:
                with log.path.open("rb") as handle:
                    size = handle.seek(0, os.SEEK_END)
                    if inode != log.inode or size < log.offset:
                        log.offset, log.partial = 0, b""
                    log.inode = inode
                    if size == log.offset:
                        continue
                    handle.seek(log.offset)
                    data = handle.read(size - log.offset)
            except OSError:
                continue
            log.offset += len(data)
            *complete, log.partial = (log.partial + data).split(b"\n")
            for raw in complete:
                _emit(log.label if labelled else None, raw.decode("utf-8", errors="replace"))
        sys.stdout.flush()


def register(app: typer.Typer) -> None:
    """Add start, status, stop and logs to ``app``."""
    app.command("start", rich_help_panel=RUN_PANEL)(start)
    app.command("status", rich_help_panel=RUN_PANEL)(status)
    app.command("stop", rich_help_panel=RUN_PANEL)(stop)
    app.command("restart", rich_help_panel=RUN_PANEL)(restart)
    app.command("logs", rich_help_panel=RUN_PANEL)(logs)
