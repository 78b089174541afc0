"""What every command shares: the per-invocation state and how output is written.

- stdout carries results only: a short human line or table (:func:`say`, :func:`out`),
  or, with ``--json``, exactly one JSON document (:func:`print_json`).
- stderr carries errors (``error: ...`` on one line, :func:`report_error`) and log lines.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amplihack_hive.errors import HiveError

if TYPE_CHECKING:
    import typer
    from rich.console import Console, RenderableType

# rich is imported by the functions that print with it.

#: What a command may raise for the user to fix: reported on one line, exit 1.
REPORTED_ERRORS = (HiveError, OSError)

_LOG_HANDLER_FLAG = "_amplihack_hive_cli_handler"


@dataclass(frozen=True)
class CliState:
    """Set by the app callback from the global options; read by commands via :func:`state`."""

    home: Path
    verbose: bool = False


def state(ctx: typer.Context) -> CliState:
    """The global options of this invocation (``--home`` resolved, ``--verbose``)."""
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):
        raise RuntimeError("the amplihack-hive app callback did not run")
    return obj


def out(*, stderr: bool = False) -> Console:
    """A rich console on the current stdout (or stderr), for tables and progress bars.

    Made per call (it is cheap): a console decides at creation whether its stream is a
    terminal, and CliRunner swaps the streams, so a console kept from import time could
    write colour codes into captured output. Lines are never folded (``soft_wrap``).
    """
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def say(message: RenderableType) -> None:
    """One human result line on stdout. Pass ``Text`` (not a markup string) for user data."""
    out().print(message)


def print_json(document: Any) -> None:
    """The one JSON document of a ``--json`` command, on stdout, and nothing else there."""
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
    sys.stdout.flush()


def warn(message: str) -> None:
    """``warning: <message>`` on stderr."""
    from rich.text import Text

    out(stderr=True).print(Text.assemble(("warning: ", "yellow"), message))


def warn_incomplete(unreachable: tuple[str, ...]) -> None:
    """The warning of a recall or ask that some agents did not answer."""
    who = f" ({', '.join(unreachable)})" if unreachable else ""
    warn(f"some agents were unreachable{who}; the results may be incomplete")


def report_error(exc: BaseException, *, verbose: bool) -> None:
    """``error: <message>`` on one line of stderr; the traceback first when ``verbose``."""
    from rich.text import Text

    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    lines = (line.strip() for line in (str(exc) or type(exc).__name__).splitlines())
    message = " ".join(line for line in lines if line)
    out(stderr=True).print(Text.assemble(("error: ", "bold red"), message))


class _LevelPrefixFormatter(logging.Formatter):
    """``warning: message``, like the ``error:`` lines; with ``-v`` also time and logger."""

    def __init__(self, verbose: bool) -> None:
        fmt = "%(asctime)s %(name)s " if verbose else ""
        super().__init__(fmt + "%(levelname)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        original = record.levelname  # the record is shared with other handlers
        record.levelname = original.lower()
        try:
            return super().format(record)
        finally:
            record.levelname = original


def configure_logging(verbose: bool) -> None:
    """Send the package's log records to stderr: warnings and up, everything with ``-v``.

    Called from the app callback, never at import. Safe to call again (tests invoke the app
    many times in one process): the handler it added last time is replaced.
    """
    package = logging.getLogger("amplihack_hive")
    for handler in list(package.handlers):
        if getattr(handler, _LOG_HANDLER_FLAG, False):
            package.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelPrefixFormatter(verbose))
    setattr(handler, _LOG_HANDLER_FLAG, True)
    package.addHandler(handler)
    package.setLevel(logging.DEBUG if verbose else logging.WARNING)
