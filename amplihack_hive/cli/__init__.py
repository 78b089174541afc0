"""The ``amplihack-hive`` console script (``amplihack_hive.cli:main``).

Importing this package is cheap: the typer app lives in :mod:`amplihack_hive.cli.app`
(with typer and rich) and is imported by :func:`main`, after a lone ``--version`` has been
answered without it (scripts call that in loops).
"""

from __future__ import annotations

import os
import sys

PROG_NAME = "amplihack-hive"


def main() -> None:
    """Run the command line; the exit status is that of the command."""
    if sys.argv[1:] == ["--version"]:
        from amplihack_hive._version import __version__

        sys.stdout.write(f"{PROG_NAME} {__version__}\n")
        return
    from amplihack_hive.cli.app import app

    # what the CLI writes (configs, tokens, run records, agents' data) is its owner's alone
    os.umask(0o077)
    app(prog_name=PROG_NAME)


__all__ = ["main"]
