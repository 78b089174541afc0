"""``render``, and what ``start``/``status``/``stop --target azure`` call.

``render`` is registered here. The lifecycle commands live in ``commands_run``; for
``--target azure`` they call :func:`start_azure`, :func:`status_azure` and
:func:`stop_azure`, which run the library function and print its result (a table or line,
or one JSON document with ``--json``). Errors are raised, never printed here: the app's
group turns them into one line and exit 1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from amplihack_hive.cli._output import out, print_json, say, state
from amplihack_hive.errors import InvalidInputError
from amplihack_hive.hive.home import HomeArg

if TYPE_CHECKING:
    from amplihack_hive.azure.mgmt import AppStatus

# The amplihack_hive.azure modules are imported inside the functions: the Azure SDK and
# Jinja take a fifth of a second to import, which no local command should pay.

AZURE_PANEL = "Azure Container Apps"
#: Exit code of ``status`` when not every agent is healthy (the CONTRACT's 3).
EXIT_NOT_ALL_HEALTHY = 3


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


def render(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", show_default=False, help="Hive name.")],
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            show_default=False,
            help="Where to write (default: <home>/<NAME>/azure).",
        ),
    ] = None,
    location: Annotated[
        str | None,
        typer.Option("--location", metavar="REGION", help="Azure region (default: the config's)."),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option("--image", metavar="REF", help="Agent image (default: the config's)."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout instead.")
    ] = False,
) -> None:
    """Write the hive's Azure deployment: main.bicep, modules and main.parameters.json."""
    from amplihack_hive.azure.render import default_out_dir, render_hive

    home = state(ctx).home
    target = Path(os.path.abspath(os.path.expanduser(out_dir))) if out_dir else None
    files = render_hive(home, name, target, location=location, image=image)
    base = target or default_out_dir(home, name)
    if json_output:
        print_json({"hive": name, "out": str(base), "files": [str(path) for path in files]})
        return
    listed = ", ".join(_relative(path, base) for path in files)
    say(Text(f"rendered hive {name} into {base}: {listed}"))


def _need_azure(target: str) -> None:
    if target != "azure":
        raise InvalidInputError(
            "up and down deploy to and tear down from Azure: pass --target azure "
            "(a local hive: start / stop)"
        )


TargetAzure = Annotated[
    str,
    typer.Option(
        "--target", metavar="azure", help="Where to deploy: azure (the only target of up/down)."
    ),
]
GroupOption = Annotated[
    str | None,
    typer.Option("--resource-group", "-g", help="Azure resource group (else the config's)."),
]
SubscriptionOption = Annotated[
    str | None,
    typer.Option("--subscription", help="Azure subscription id (else $AZURE_SUBSCRIPTION_ID)."),
]


def up(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", show_default=False, help="Hive name.")],
    target: TargetAzure = "local",
    resource_group: GroupOption = None,
    image: Annotated[
        str | None,
        typer.Option("--image", metavar="REF", help="A built agent image (skips the build)."),
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            metavar="ACR",
            help="Build the image in this Azure Container Registry (az acr build) and use it.",
        ),
    ] = None,
    context: Annotated[
        Path | None,
        typer.Option("--context", metavar="DIR", help="Folder with the Dockerfile (default: .)."),
    ] = None,
    tag: Annotated[
        str | None, typer.Option("--tag", help="Image tag (default: the package version).")
    ] = None,
    location: Annotated[str | None, typer.Option("--location", help="Azure region.")] = None,
    subscription: SubscriptionOption = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=0.0, metavar="SECONDS", help="How long to wait for up."),
    ] = 900.0,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Deploy or update the hive on Azure and wait until it answers (re-runnable, like azd up).

    Builds the agent image in your registry (--registry, from the Dockerfile) unless --image
    names one, deploys with az deployment group create (the apps roll one at a time, each
    once the one before is rebuilt from its replicas), then waits until the entry app is
    ready and sees every agent alive. Then learn, recall and ask take --target azure.
    """
    from amplihack_hive.azure.up import azure_up

    _need_azure(target)

    def step(line: str) -> None:
        out(stderr=True).print(Text(line, style="dim"))

    result = azure_up(
        state(ctx).home,
        name,
        resource_group,
        image=image,
        registry=registry,
        context=context,
        tag=tag,
        location=location,
        subscription=subscription,
        timeout_s=timeout,
        progress=step,
    )
    if json_output:
        print_json(result.to_dict())
        return
    where = f" at {result.url}" if result.url else ""
    say(
        Text(
            f"hive {name} is up{where}: {result.agents_alive} of {result.agents} agents "
            f"alive ({result.image}; {result.waited_s:.0f}s)"
        )
    )


def down(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", show_default=False, help="Hive name.")],
    target: TargetAzure = "local",
    resource_group: GroupOption = None,
    subscription: SubscriptionOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Tear the hive down on Azure: delete its container apps, with their data (re-runnable).

    The environment, the Log Analytics workspace and the pull identity stay (little or
    nothing to pay idle; the next up reuses them): az group delete removes everything.
    """
    _need_azure(target)
    down_azure(
        state(ctx).home,
        name,
        subscription=subscription,
        resource_group=resource_group,
        json_output=json_output,
    )


def down_azure(
    home: HomeArg,
    name: str,
    *,
    subscription: str | None = None,
    resource_group: str | None = None,
    json_output: bool = False,
    **azure_options: Any,
) -> None:
    """Delete the hive's apps, forget its entry URL, and say what was done.

    ``azure_options`` (``credential``, ``client_options``) go to :func:`azure_stop`."""
    from amplihack_hive.azure.mgmt import azure_stop
    from amplihack_hive.azure.up import forget_entry

    outcomes = azure_stop(home, name, subscription, resource_group, delete=True, **azure_options)
    forget_entry(home, name)
    if json_output:
        print_json({"hive": name, "target": "azure", "apps": [o.to_dict() for o in outcomes]})
        return
    if not outcomes:
        say(Text(f"hive {name} has no container apps on Azure: nothing to tear down"))
        return
    say(Text(f"deleted {len(outcomes)} container apps of hive {name}"))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("render", rich_help_panel=AZURE_PANEL)(render)
    app.command("up", rich_help_panel=AZURE_PANEL)(up)
    app.command("down", rich_help_panel=AZURE_PANEL)(down)


# --- called by start/status/stop --target azure ------------------------------------------


def start_azure(
    home: HomeArg,
    name: str,
    *,
    resource_group: str | None = None,
    location: str | None = None,
    image: str | None = None,
    subscription: str | None = None,
    dry_run: bool = False,
    json_output: bool = False,
) -> None:
    """Render and deploy (or, with ``dry_run``, print the ``az`` command, secrets masked)."""
    from amplihack_hive.azure.deployment import deploy

    result = deploy(home, name, resource_group, location, image, dry_run, subscription=subscription)
    plan = result.plan
    if json_output:
        print_json({**result.to_dict(), "target": "azure"})
        return
    if not result.ran:
        say(Text(plan.command_line()))
        return
    apps = result.outputs.get("appNames") or []
    say(
        Text(
            f"deployed hive {name} to resource group {plan.resource_group}: "
            f"{len(apps)} container apps ({plan.deployment_name})"
        )
    )


def status_rows(name: str, apps: list[AppStatus]) -> dict[str, Any]:
    """The ``status --json`` document: one row per agent (CONTRACT keys plus the app's)."""
    agents = []
    for app in apps:
        url = f"https://{app.fqdn}" if app.fqdn else None
        for agent in app.agents:
            agents.append(
                {
                    "name": agent,
                    "state": app.state,
                    "pid": None,
                    "url": url,
                    "facts": None,
                    "rss_mb": None,
                    "app": app.name,
                    "provisioning_state": app.provisioning_state,
                    "running_status": app.running_status,
                    "replicas": app.replicas,
                }
            )
    return {
        "hive": name,
        "target": "azure",
        "agents": agents,
        "apps": [app.to_dict() for app in apps],
    }


def status_azure(
    home: HomeArg,
    name: str,
    *,
    subscription: str | None = None,
    resource_group: str | None = None,
    json_output: bool = False,
    **azure_options: Any,
) -> int:
    """Print the state of the hive's apps; the exit code: 0 if all run, else 3.

    ``azure_options`` (``credential``, ``client_options``) go to :func:`azure_status`."""
    from amplihack_hive.azure.mgmt import azure_status

    apps = azure_status(home, name, subscription, resource_group, **azure_options)
    if json_output:
        print_json(status_rows(name, apps))
    else:
        from rich.table import Table  # not at import: most commands print no table

        table = Table("app", "agents", "provisioning", "running", "replicas", "state", box=None)
        for app in apps:
            style = "green" if app.state == "healthy" else "red"
            table.add_row(
                app.name,
                ",".join(app.agents) or "-",
                app.provisioning_state or ("-" if app.found else "not found"),
                app.running_status or "-",
                "-" if app.replicas is None else str(app.replicas),
                Text(app.state, style=style),
            )
        out().print(table)
    healthy = bool(apps) and all(app.state == "healthy" for app in apps)
    return 0 if healthy else EXIT_NOT_ALL_HEALTHY


def stop_azure(
    home: HomeArg,
    name: str,
    *,
    subscription: str | None = None,
    resource_group: str | None = None,
    delete: bool = False,
    json_output: bool = False,
    **azure_options: Any,
) -> None:
    """Stop (or delete) the hive's apps and say which.

    ``azure_options`` (``credential``, ``client_options``) go to :func:`azure_stop`."""
    from amplihack_hive.azure.mgmt import azure_stop

    outcomes = azure_stop(home, name, subscription, resource_group, delete=delete, **azure_options)
    if json_output:
        print_json({"hive": name, "target": "azure", "apps": [item.to_dict() for item in outcomes]})
        return
    if not outcomes:
        say(Text(f"hive {name} has no container apps to {'delete' if delete else 'stop'}"))
        return
    verb = "deleted" if delete else "stopped"
    say(Text(f"{verb} {len(outcomes)} container apps of hive {name}"))
