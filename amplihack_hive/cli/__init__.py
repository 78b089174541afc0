"""The ``amplihack-hive`` console script (``amplihack_hive.cli:main``) and its typer app."""

from __future__ import annotations

from amplihack_hive.cli.app import app


def main() -> None:
    """Run the command line; the exit status is that of the command."""
    app(prog_name="amplihack-hive")


__all__ = ["app", "main"]
