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
JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout instead.")
]
