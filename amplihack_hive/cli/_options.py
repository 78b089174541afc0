"""Argument and option types shared by the CLI's command modules."""

from __future__ import annotations

from typing import Annotated

import typer

HiveName = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        show_default=False,
        help="Hive name: lowercase letters, digits and '-', starting with a letter.",
    ),
]
AgentName = Annotated[
    str, typer.Argument(metavar="AGENT", show_default=False, help="Agent name (same rule).")
]
AsAgentOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        metavar="AGENT",
        show_default=False,
        help="Act as AGENT: with its credential, which the agents check, in its scopes "
        "only (its own, its groups', the hive's). Default: the hive token (the admin), "
        "or the agent whose credential is in $AMPLIHACK_HIVE_CREDENTIAL (a client "
        "without the token file: 'credential HIVE AGENT' prints one).",
    ),
]
JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout instead.")
]
