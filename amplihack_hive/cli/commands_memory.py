"""Memory commands of a running local hive: ``learn``, ``recall``, ``ask``.

They talk to the agents through :meth:`amplihack_hive.Hive.connect`. ``learn`` reads its
input with :mod:`amplihack_hive.hive.learn_input`, checks every item by the library's rules
first, then stores one batch at a time: a batch that fails is split in halves and retried
(storing is idempotent: the same content is the same fact), so the items that could not be
stored are counted and reported by line, and nothing is lost silently.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from amplihack_hive.cli._options import HiveName, JsonFlag
from amplihack_hive.cli._output import out, print_json, say, state, warn, warn_incomplete
from amplihack_hive.cli.commands_run import progress_bar
from amplihack_hive.errors import (
    HiveError,
    InvalidInputError,
    NotFoundError,
    WriteQuorumError,
)

if TYPE_CHECKING:
    from amplihack_hive.api import Hive
    from amplihack_hive.hive.learn_input import InputItem, InputProblem

# The library (amplihack_hive.api: the memory core, the HTTP transport and aiohttp) and
# learn_input are imported inside the commands that use them: registering these commands
# (every command line, --help included) costs none of it.

MEMORY_PANEL = "Teach and ask a running hive"
#: Guards the retry budget shared by the batches in flight.
_BUDGET_LOCK = threading.Lock()
#: Problems listed on stderr before the rest are only counted.
MAX_PROBLEMS_SHOWN = 10
#: Extra store calls ``learn`` may spend splitting failed batches to find the bad items.
RETRY_BUDGET = 64


class InputFormat(StrEnum):
    """Choices of ``learn --format``."""

    text = "text"
    jsonl = "jsonl"


Question = Annotated[
    str, typer.Argument(metavar="QUESTION", show_default=False, help="What to ask.")
]


# --- learn ---------------------------------------------------------------------------------------


def _read_input(path: str | None) -> bytes:
    if path is None or path == "-":
        if sys.stdin.isatty():
            warn("reading items from stdin; end with Ctrl-D")
        stream = getattr(sys.stdin, "buffer", None)
        if stream is not None:
            return bytes(stream.read())
        return sys.stdin.read().encode("utf-8", errors="surrogateescape")
    file = Path(path)
    if not file.exists():
        raise NotFoundError(f"input file not found: {path}")
    if file.is_dir():
        raise InvalidInputError(f"input {path} is a directory, not a file")
    return file.read_bytes()


def _cause(exc: HiveError) -> str:
    """The reason an item was not stored, the same for every item lost to one cause."""
    if isinstance(exc, WriteQuorumError):
        who = ", ".join(exc.unreachable) or "some replicas"
        return f"not stored on a write quorum of replicas (unreachable: {who})"
    return f"not stored: {exc}"


def _store(
    client: Hive, chunk: list[InputItem], failed: list[InputProblem], budget: list[int]
) -> int:
    """Store ``chunk``; return how many items were stored, appending the others to
    ``failed``. A write that reached a quorum for only some facts says which
    (:class:`WriteQuorumError`); any other failure splits the chunk and retries the halves
    while the budget lasts."""
    from amplihack_hive.hive.learn_input import InputProblem

    try:
        client.remember_many([item.as_item() for item in chunk], batch=len(chunk))
    except WriteQuorumError as exc:
        lost = set(exc.failed)
        bad = [item for item in chunk if item.fact_id in lost]
        failed += [InputProblem(item.line, _cause(exc)) for item in bad]
        return len(chunk) - len(bad)
    except HiveError as exc:
        with _BUDGET_LOCK:
            split = len(chunk) > 1 and budget[0] >= 2
            if split:
                budget[0] -= 2
        if not split:
            failed += [InputProblem(item.line, _cause(exc)) for item in chunk]
            return 0
        middle = len(chunk) // 2
        return _store(client, chunk[:middle], failed, budget) + _store(
            client, chunk[middle:], failed, budget
        )
    return len(chunk)


def _report(problems: list[InputProblem]) -> None:
    """Problems on stderr, consecutive ones with the same message as one line range."""
    groups: list[tuple[int, int, int, str]] = []  # first line, last line, count, message
    for problem in sorted(problems, key=lambda p: p.line):
        if groups and groups[-1][3] == problem.message:
            first, _, count, message = groups[-1]
            groups[-1] = (first, problem.line, count + 1, message)
        else:
            groups.append((problem.line, problem.line, 1, problem.message))
    console = out(stderr=True)
    for first, last, count, message in groups[:MAX_PROBLEMS_SHOWN]:
        where = f"line {first}" if count == 1 else f"lines {first}-{last} ({count} items)"
        console.print(Text.assemble(("error: ", "bold red"), f"{where}: {message}"))
    hidden = groups[MAX_PROBLEMS_SHOWN:]
    if hidden:
        more = sum(count for _, _, count, _ in hidden)
        console.print(Text(f"... and {more} more failed item{'s' if more != 1 else ''}"))


def learn(
    ctx: typer.Context,
    name: HiveName,
    path: Annotated[
        str | None,
        typer.Argument(
            metavar="[PATH|-]",
            show_default=False,
            help="File to learn from; '-' or nothing reads stdin.",
        ),
    ] = None,
    fmt: Annotated[
        InputFormat,
        typer.Option(
            "--format",
            help="text: each non-empty paragraph is one item. jsonl: one object per line "
            'with "content" and optional "kind", "metadata".',
        ),
    ] = InputFormat.text,
    json_output: JsonFlag = False,
    batch: Annotated[
        int, typer.Option("--batch", min=1, metavar="N", help="Items sent per request.")
    ] = 200,
    in_flight: Annotated[
        int,
        typer.Option(
            "--in-flight",
            min=1,
            max=16,
            metavar="N",
            help="Batches sent before the first is answered (agents that fall behind answer "
            "'busy' and are retried with backoff).",
        ),
    ] = 2,
) -> None:
    """Teach the running hive: store every item of the input as a fact.

    Exit 1 if any item was not stored (each is reported with its line). Empty input
    stores nothing and exits 0, with a warning.
    """
    from amplihack_hive.api import Hive
    from amplihack_hive.hive.learn_input import check_items, read_items

    home = state(ctx).home
    with Hive.connect(name, home) as client:
        items, problems = read_items(_read_input(path), fmt.value)
        items, refused = check_items(items)
        problems += refused
        if not items and not problems:
            warn("the input holds no items; nothing to learn")
        stored = 0
        budget = [RETRY_BUDGET]
        chunks = [items[start : start + batch] for start in range(0, len(items), batch)]
        with (
            progress_bar("learning", enabled=not json_output) as bar,
            ThreadPoolExecutor(in_flight, thread_name_prefix="learn") as pool,
        ):
            task = bar.add_task("learning", total=len(items))
            # a bounded window: the next batch is sent as the oldest one is answered, so
            # the client prepares one while the agents store another
            window: deque[tuple[int, Future[int]]] = deque()
            for chunk in chunks:
                window.append((len(chunk), pool.submit(_store, client, chunk, problems, budget)))
                if len(window) >= in_flight:
                    size, done = window.popleft()
                    stored += done.result()
                    bar.advance(task, size)
            for size, done in window:
                stored += done.result()
                bar.advance(task, size)
    _report(problems)
    failed = len(problems)
    if json_output:
        print_json({"stored": stored, "failed": failed})
    else:
        say(Text(f"stored {stored} item{'s' if stored != 1 else ''} ({failed} failed)"))
    if failed:
        raise typer.Exit(1)


# --- recall / ask ------------------------------------------------------------------------------


def recall(
    ctx: typer.Context,
    name: HiveName,
    question: Question,
    limit: Annotated[
        int, typer.Option("--limit", "-k", min=1, metavar="K", help="At most K facts.")
    ] = 10,
    json_output: JsonFlag = False,
) -> None:
    """The facts the hive recalls for QUESTION, best first."""
    from rich.table import Table

    from amplihack_hive.api import Hive

    with Hive.connect(name, state(ctx).home) as client:
        hits = client.recall(question, limit)
    if not hits.complete:
        warn_incomplete(hits.unreachable)
    if json_output:
        print_json([hit.to_dict() for hit in hits])
        return
    if not hits:
        say(Text("nothing the hive remembers matches the question"))
        return
    table = Table("rank", "score", "content", box=None)
    for rank, hit in enumerate(hits, start=1):
        table.add_row(str(rank), f"{hit.score:.3f}", Text(hit.content))
    out().print(table)


def ask(
    ctx: typer.Context, name: HiveName, question: Question, json_output: JsonFlag = False
) -> None:
    """An answer to QUESTION built from the facts the hive recalls (no LLM needed)."""
    from amplihack_hive.api import Hive

    with Hive.connect(name, state(ctx).home) as client:
        answer = client.ask(question)
    if not answer.complete:
        warn_incomplete(answer.unreachable)
    if json_output:
        print_json(answer.to_dict())
        return
    say(Text(answer.answer))
    if answer.sources:
        say(Text("sources:", style="dim"))
        for number, source in enumerate(answer.sources, start=1):
            say(Text(f"  [{number}] {source.content}", style="dim"))


def register(app: typer.Typer) -> None:
    """Add learn, recall and ask to ``app``."""
    app.command("learn", rich_help_panel=MEMORY_PANEL)(learn)
    app.command("recall", rich_help_panel=MEMORY_PANEL)(recall)
    app.command("ask", rich_help_panel=MEMORY_PANEL)(ask)
