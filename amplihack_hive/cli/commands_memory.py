"""Memory commands of a local hive: ``learn``, ``recall``, ``ask``, ``mcp``, ``reindex``.

They talk to the agents through :meth:`amplihack_hive.Hive.connect`. ``learn`` reads its
input with :mod:`amplihack_hive.hive.learn_input`, checks every item by the library's rules
first, then stores one batch at a time: a batch that fails is split in halves and retried
(storing is idempotent: the same content is the same fact), so the items that could not be
stored are counted and reported by line, and nothing is lost silently.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.text import Text

from amplihack_hive.cli._options import AgentName, AsAgentOption, HiveName, JsonFlag
from amplihack_hive.cli._output import out, print_json, say, state, warn, warn_incomplete
from amplihack_hive.cli.commands_run import AZURE, Target, TargetOption, progress_bar
from amplihack_hive.errors import (
    HiveError,
    InvalidInputError,
    NotFoundError,
    WriteQuorumError,
)
from amplihack_hive.memory.text import TOKENIZER
from amplihack_hive.names import validate_name

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from amplihack_hive.api import Hive
    from amplihack_hive.hive.learn_input import InputItem, InputProblem
    from amplihack_hive.remote import RemoteHive

# The library (amplihack_hive.api: the memory core, the HTTP transport and aiohttp) and
# learn_input are imported inside the commands that use them: registering these commands
# (every command line, --help included) costs none of it.

MEMORY_PANEL = "Teach and ask a running hive"
#: Guards the retry budget shared by the batches in flight.
_BUDGET_LOCK = threading.Lock()
#: Exit status of ``recall`` when its result may be incomplete (``status`` uses 3 too).
EXIT_INCOMPLETE = 3
#: Problems listed on stderr before the rest are only counted.
MAX_PROBLEMS_SHOWN = 10
#: Extra store calls ``learn`` may spend splitting failed batches to find the bad items.
RETRY_BUDGET = 64


class InputFormat(StrEnum):
    """Choices of ``learn --format``."""

    text = "text"
    jsonl = "jsonl"
    chat = "chat"


Question = Annotated[
    str, typer.Argument(metavar="QUESTION", show_default=False, help="What to ask.")
]
FactId = Annotated[
    str, typer.Argument(metavar="FACT_ID", show_default=False, help="A fact's id (recall --json).")
]
ScopesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--scope",
        metavar="SCOPE",
        show_default=False,
        help="Recall among this scope's facts (repeat for several): hive, agent:NAME or "
        "group:NAME. Default: what the asker sees (as an agent: its own, its groups', the "
        "hive's; as the admin: the hive's).",
    ),
]


QuietOption = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="No progress (a bar on a terminal, else a line every 5 s)."),
]


UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        help="With --target azure: the hive's entry URL (default: $AMPLIHACK_HIVE_URL, else "
        "what up / start --target azure recorded); the token is $AMPLIHACK_HIVE_TOKEN or the "
        "hive's token file.",
        rich_help_panel=AZURE,
    ),
]


def held_credential(as_agent: str | None) -> tuple[str | None, str | None]:
    """The agent a command acts as and its credential when $AMPLIHACK_HIVE_CREDENTIAL holds
    one (None: derive it from the token file, or act as the admin when ``as_agent`` is None).
    A malformed credential, or one of another agent than ``--as``, is refused by name."""
    from amplihack_hive.hive.token import CREDENTIAL_ENV, credential_holder

    if as_agent is not None:
        validate_name(as_agent, "agent name")
    credential = os.environ.get(CREDENTIAL_ENV) or None
    if credential is None:
        return as_agent, None
    holder = credential_holder(credential)
    if as_agent not in (None, holder):
        raise InvalidInputError(f"--as {as_agent}, but ${CREDENTIAL_ENV} is {holder}'s")
    return holder, credential


def open_client(
    ctx: typer.Context,
    name: str,
    target: Target,
    url: str | None,
    *,
    through_agent: bool = False,
    as_agent: str | None = None,
) -> Hive | RemoteHive:
    """The client of hive ``name``: its local agents (the client coordinates; with
    ``through_agent``, one agent does, which spares this process the coordinator's imports:
    what ``recall`` in a shell loop pays for), or on Azure its entry app (the agent there
    coordinates). ``as_agent``: through the agents, with that agent's credential (from
    $AMPLIHACK_HIVE_CREDENTIAL when set: then the token file is not read)."""
    home = state(ctx).home
    as_agent, credential = held_credential(as_agent)
    if target is Target.azure:
        from amplihack_hive.azure.deployment import entry_token, entry_url
        from amplihack_hive.hive.token import agent_credential
        from amplihack_hive.remote import RemoteHive

        if credential is None:
            token = entry_token(home, name)
            credential = token if as_agent is None else agent_credential(token, as_agent)
        return RemoteHive(entry_url(home, name, url), credential)
    if url is not None:
        raise InvalidInputError("--url goes with --target azure")
    if through_agent or as_agent is not None:
        from amplihack_hive.remote import through_agents

        return through_agents(name, home, as_agent=as_agent, credential=credential)
    from amplihack_hive.api import Hive

    return Hive.connect(name, home)


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
    client: Hive | RemoteHive, chunk: list[InputItem], failed: list[InputProblem], budget: list[int]
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


#: How often ``learn`` prints a progress line when stderr is not a terminal.
PROGRESS_EVERY_S = 5.0
#: The exit status of a command interrupted by Ctrl-C (128 + SIGINT), as shells use.
EXIT_INTERRUPTED = 130


class LearnProgress:
    """``learn``'s progress on stderr: a bar on a terminal; otherwise (CI, nohup, a pipe)
    a line every ``every`` seconds; nothing when ``quiet``."""

    def __init__(
        self,
        total: int,
        *,
        quiet: bool,
        every: float = PROGRESS_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        stream: TextIO | None = None,
        label: str = "learning",
        unit: str = "items sent",
    ) -> None:
        self.total, self.done, self.every, self.clock = total, 0, every, clock
        self.label, self.unit = label, unit
        self.stream = stream
        self.started = self.last = clock()
        self.quiet = quiet
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> LearnProgress:
        console = out(stderr=True)
        if not self.quiet and self.stream is None and console.is_terminal:
            self._bar = progress_bar(self.label)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def set_total(self, total: int) -> None:
        self.total = total
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, total=total)

    def advance(self, count: int) -> None:
        self.done += count
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, count)
            return
        now = self.clock()
        if self.quiet or now - self.last < self.every:
            return
        self.last = now
        rate = self.done / max(now - self.started, 1e-9)
        share = 100 * self.done / max(self.total, 1)
        stream = self.stream or sys.stderr
        stream.write(
            f"{self.label}: {self.done} of {self.total} {self.unit} ({share:.0f}%), "
            f"{rate:.0f} {self.unit.split()[0]}/s\n"
        )
        stream.flush()


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
            help="text: each non-empty paragraph is one item (its section's heading, "
            "and a paragraph before ending with a colon, are its context). jsonl: one "
            "object per line "
            'with "content" and optional "kind", "metadata", "subject", "supersedes", '
            '"created", "confidence", "context" (see above). chat: a conversation, one '
            'turn per item: JSON Lines of "speaker", "text", "session", "time", or a '
            'transcript of "Speaker: text" lines ("# name" starts a session, indented '
            "lines continue a turn); the turns around each are its context.",
        ),
    ] = InputFormat.text,
    json_output: JsonFlag = False,
    batch: Annotated[
        int,
        typer.Option(
            "--batch",
            min=1,
            max=5000,
            metavar="N",
            help="Items sent per request (at most 5,000, what an agent takes at once).",
        ),
    ] = 1000,
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
    context: Annotated[
        bool,
        typer.Option(
            "--context/--no-context",
            help="Index each item with its context (its heading, the turns "
            "around): finds more, stores about twice the postings.",
        ),
    ] = True,
    scope: Annotated[
        str | None,
        typer.Option(
            "--scope",
            metavar="SCOPE",
            show_default=False,
            help="Who may see the facts: hive (default), agent:NAME (that agent alone) "
            'or group:NAME (a group of the config); a jsonl item\'s own "scope" wins.',
        ),
    ] = None,
    as_agent: AsAgentOption = None,
    quiet: QuietOption = False,
    target: TargetOption = Target.local,
    url: UrlOption = None,
) -> None:
    """Teach the running hive: store every item of the input as a fact.

    Exit 1 if any item was not stored (each is reported with its line). Empty
    input stores nothing and exits 0, with a warning. Ctrl-C stops sending,
    waits for the batches in flight, says how many items were stored and exits
    130; learning the same input again stores each item once.

    A jsonl item may say what it is about and when, so that recall puts the
    newest first: "subject" (facts of one subject come newest first, e.g.
    "heron/budget"), "supersedes" (the id of the fact it replaces; it takes that
    fact's subject), "created" (Unix seconds; default: when it arrives), "kind"
    (semantic, episodic, procedural, working, strategic, social), "metadata" (an
    object kept with the fact), "confidence" (0 to 1), "context" (text around
    the fact that helps find it, at a lower weight; recall returns the fact).
    """
    from amplihack_hive.hive.learn_input import check_items, read_items
    from amplihack_hive.memory.scopes import check_scope

    interrupted = False
    failed: list[InputProblem] = []  # items the hive did not store
    if scope is not None:
        check_scope(scope)
    with open_client(ctx, name, target, url, as_agent=as_agent) as client:
        items, problems = read_items(_read_input(path), fmt.value, context=context)
        if scope is not None:
            for item in items:
                item.extra.setdefault("scope", scope)
        items, refused = check_items(items)
        problems += refused  # items refused before sending
        if not items and not problems:
            warn("the input holds no items; nothing to learn")
        stored = 0
        budget = [RETRY_BUDGET]
        chunks = [items[start : start + batch] for start in range(0, len(items), batch)]
        with (
            LearnProgress(len(items), quiet=quiet) as progress,
            ThreadPoolExecutor(in_flight, thread_name_prefix="learn") as pool,
        ):
            # a bounded window: the next batch is sent as the oldest one is answered, so
            # the client prepares one while the agents store another
            window: deque[tuple[int, Future[int]]] = deque()
            try:
                for chunk in chunks:
                    window.append((len(chunk), pool.submit(_store, client, chunk, failed, budget)))
                    while len(window) >= in_flight or (window and chunk is chunks[-1]):
                        size, done = window[0]
                        stored += done.result()
                        window.popleft()
                        progress.advance(size)
            except KeyboardInterrupt:
                interrupted = True
                stored += _settle(pool, window)
        trained = None if interrupted else _train_if_due(client, quiet or json_output)
    if interrupted:
        # what failed after the interrupt is the interrupt's doing, not the agents'
        _report(problems)
        warn(
            f"interrupted: {stored} of {len(items)} items stored; learning the same input "
            f"again stores the rest (each item once)"
        )
        if json_output:
            print_json({"stored": stored, "failed": len(problems), "interrupted": True})
        raise typer.Exit(EXIT_INTERRUPTED)
    problems += failed
    _report(problems)
    count = len(problems)
    if json_output:
        print_json({"stored": stored, "failed": count, **({"trained": trained} if trained else {})})
    else:
        say(Text(f"stored {stored} item{'s' if stored != 1 else ''} ({count} failed)"))
    if count:
        raise typer.Exit(1)


def _train_if_due(client: Hive | RemoteHive, quiet: bool) -> str | None:
    """After learning, through a client that embeds (a local hive made with --embedder):
    train the centroids when the hive has outgrown them (memory/semantic.py); their
    version, or None."""
    train = getattr(client, "train_vectors_if_due", None)
    if train is None or getattr(client, "semantic", None) is None:
        return None
    version: str | None = train()
    if version is not None and not quiet:
        say(Text(f"trained the centroids of semantic recall for the facts held: {version}"))
    return version


def _settle(pool: ThreadPoolExecutor, window: deque[tuple[int, Future[int]]]) -> int:
    """After Ctrl-C: send nothing more, let the batches already sent finish (they are
    bounded by the client's timeouts), and count what they stored. A second Ctrl-C stops
    waiting."""
    pool.shutdown(wait=False, cancel_futures=True)
    stored = 0
    try:
        for _, done in window:
            if not done.cancelled():
                stored += done.result()
    except KeyboardInterrupt:
        pass  # the user will not wait: the batches still running are not counted
    return stored


# --- recall / ask ------------------------------------------------------------------------------


def recall(
    ctx: typer.Context,
    name: HiveName,
    question: Question,
    limit: Annotated[
        int,
        typer.Option("--limit", "-k", min=1, max=10_000, metavar="K", help="At most K facts."),
    ] = 10,
    scopes: ScopesOption = None,
    as_agent: AsAgentOption = None,
    parent: Annotated[
        bool,
        typer.Option(
            "--parent",
            help="Ask the parent hive too (its hive scope; one hop more): its hits are "
            "merged by score and marked with its name.",
        ),
    ] = False,
    json_output: JsonFlag = False,
    target: TargetOption = Target.local,
    url: UrlOption = None,
) -> None:
    """The facts the hive recalls for QUESTION, best first.

    A newer fact that restates an older one with another value ("the Heron
    budget was raised to 1.5 M") comes first; the older stays, marked
    "superseded by" the newer (superseded_by in --json). Facts given one
    subject are ordered by it.

    Exit 3, with a warning naming them, when some agents did not answer: the
    result may then be incomplete (the --json list is printed all the same).
    """
    from rich.table import Table

    with open_client(ctx, name, target, url, through_agent=True, as_agent=as_agent) as client:
        if parent:
            from amplihack_hive.hive.federation import open_parent, parent_name, recall_with_parent

            home = state(ctx).home
            with open_parent(home, name) as above:
                label = parent_name(home, name)
                hits = recall_with_parent(client, above, label, question, limit, scopes or None)
        else:
            hits = client.recall(question, limit, scopes or None)
    if not hits.complete:
        warn_incomplete(hits.unreachable)
    if json_output:
        print_json([hit.to_dict() for hit in hits])
    elif not hits:
        say(Text("nothing the hive remembers matches the question"))
    else:
        table = Table("rank", "score", "content", box=None)
        for rank, hit in enumerate(hits, start=1):
            content = Text(hit.content)
            if hit.superseded_by:
                content.append(f" (superseded by {hit.superseded_by[:8]})", style="dim")
            if hit.scope != "hive":
                content.append(f" [{hit.scope}]", style="dim")
            if hit.hive:
                content.append(f" (from hive {hit.hive})", style="dim")
            table.add_row(str(rank), f"{hit.score:.3f}", content)
        out().print(table)
    if not hits.complete:  # as status says "not every agent is healthy"
        raise typer.Exit(EXIT_INCOMPLETE)


def ask(
    ctx: typer.Context,
    name: HiveName,
    question: Question,
    scopes: ScopesOption = None,
    as_agent: AsAgentOption = None,
    json_output: JsonFlag = False,
    target: TargetOption = Target.local,
    url: UrlOption = None,
) -> None:
    """An answer to QUESTION: one sentence of the fact that best covers it,
    cited as \\[fact id, date] (a second fact only as a sentence of its own), or
    "I don't know" with the closest facts when none covers at least half of the
    question's terms.

    No language model is needed; on Azure the agents' model answers when the
    deployment has an API key.
    """
    from amplihack_hive.agent.answer import cite

    with open_client(ctx, name, target, url, as_agent=as_agent) as client:
        answer = client.ask(question, None, scopes or None)
    if not answer.complete:
        warn_incomplete(answer.unreachable)
    if json_output:
        print_json(answer.to_dict())
        return
    say(Text(answer.answer))
    if answer.sources:
        say(Text("sources:", style="dim"))
        for source in answer.sources:
            say(Text(f"  {cite(source)} {source.content}", style="dim"))


def reindex(
    ctx: typer.Context,
    name: HiveName,
    tokenizer: Annotated[
        int,
        typer.Option(
            "--tokenizer",
            metavar="N",
            help="Tokenizer version to rebuild with: 2 (the default) stems with Snowball; "
            "1 folds plurals only (hives made before versions).",
        ),
    ] = TOKENIZER,
    quiet: QuietOption = False,
) -> None:
    """Rebuild a stopped local hive's postings with a tokenizer version.

    Every posting is rebuilt from the facts the agents' stores hold; facts are not
    touched. Agents refuse to serve postings of another version than the hive's config
    names (no recall mixes terms of two versions), so a hive made before versions
    (tokenizer 1) keeps version 1 until this moves it. Stop the hive first, then
    reindex, then start it. If a rebuild stops part way, the agents refuse to start
    until reindex is run again.
    """
    from amplihack_hive.hive.reindex import reindex_hive

    with LearnProgress(0, quiet=quiet, label="re-indexing", unit="facts") as bar:

        def step(done: int, total: int) -> None:
            if total != bar.total:
                bar.set_total(total)
            bar.advance(done - bar.done)

        report = reindex_hive(state(ctx).home, name, tokenizer, progress=step)
    say(
        Text(
            f"re-indexed {report.facts:,} facts of hive {name} with tokenizer "
            f"{report.version} ({report.postings:,} postings in {report.stores} stores); "
            f"start it with: amplihack-hive start {name}"
        )
    )


def train(
    ctx: typer.Context,
    name: HiveName,
    lists: Annotated[
        int | None,
        typer.Option(
            "--lists",
            min=1,
            metavar="K",
            show_default=False,
            help="Centroids to train (default: about the square root of the vectors held).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the k-means start.")] = 0,
    json_output: JsonFlag = False,
) -> None:
    """Train the centroids semantic recall files vectors by, on the vectors the hive holds.

    A hive made with --embedder keeps every vector in one list until it is trained
    (exact, but one list's owners answer every question). learn trains it when due (at
    2,000 facts, then at four times the facts of the last training); this trains now.
    Writes and recalls go on meanwhile: vectors are re-filed under the new centroids
    while the old ones are still served.
    """
    from amplihack_hive.api import Hive

    with Hive.connect(name, state(ctx).home) as client:
        version = client.train_vectors(lists, seed=seed)
    if json_output:
        print_json({"hive": name, "version": version})
    else:
        say(Text(f"trained the centroids of hive {name}: version {version}"))


def forget(
    ctx: typer.Context,
    name: HiveName,
    fact_id: FactId,
    as_agent: AsAgentOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Forget fact FACT_ID everywhere: it is never recalled again.

    Exit 1 when the hive holds no such fact (or none the asker may see).
    """
    with open_client(ctx, name, Target.local, None, as_agent=as_agent) as client:
        forgotten = client.forget(fact_id)
    if json_output:
        print_json({"id": fact_id, "forgotten": forgotten})
    else:
        say(Text(f"forgot {fact_id}" if forgotten else f"no fact {fact_id} to forget"))
    if not forgotten:
        raise typer.Exit(1)


def escalate(
    ctx: typer.Context,
    name: HiveName,
    fact_id: FactId,
    scope: Annotated[
        str,
        typer.Argument(
            metavar="SCOPE",
            show_default=False,
            help="The wider scope: group:NAME, hive, or parent (the parent hive).",
        ),
    ],
    as_agent: AsAgentOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Move fact FACT_ID to a wider SCOPE: an agent's into one of its groups or
    the hive, a group's into the hive.

    The fact keeps its content, time and history; its id changes (a scope is
    part of a fact's id): the new one is printed. Nothing moves inward.
    SCOPE parent sends a fact of the hive scope up to the parent hive
    (create --parent), with the hive token.
    """
    from amplihack_hive.hive.federation import PARENT

    if scope == PARENT:
        from amplihack_hive.api import Hive
        from amplihack_hive.hive.federation import escalate_to_parent, open_parent

        if as_agent is not None:
            raise InvalidInputError(
                "escalate to the parent hive takes the hive token, not --as: escalate the "
                "fact to hive as the agent first"
            )
        home = state(ctx).home
        with Hive.connect(name, home) as local, open_parent(home, name) as above:
            new_id = escalate_to_parent(local, above, fact_id)
    else:
        with open_client(ctx, name, Target.local, None, as_agent=as_agent) as client:
            new_id = client.escalate(fact_id, scope)
    if json_output:
        print_json({"id": new_id, "from": fact_id, "scope": scope})
    else:
        say(Text(f"{fact_id} is now {new_id} in scope {scope}"))


def credential(ctx: typer.Context, name: HiveName, agent: AgentName) -> None:
    """Print AGENT's credential for hive NAME: a client holding it (an MCP
    client, a program on the HTTP API, --as) reads and writes that agent's
    scopes only: its own, its groups', the hive's.

    It is derived from the hive token: create --force (a new token) revokes it.
    Keep it as secret as the token.
    """
    from amplihack_hive.hive.config import load_hive
    from amplihack_hive.hive.home import hive_dir
    from amplihack_hive.hive.token import agent_credential, read_token

    home = state(ctx).home
    load_hive(home, name).agent(agent)  # NotFoundError for an agent the hive has not
    print(agent_credential(read_token(hive_dir(home, name)), agent))


def mcp(ctx: typer.Context, name: HiveName, as_agent: AsAgentOption = None) -> None:
    """Serve the running hive to an MCP client over stdio.

    Tools: remember, recall, ask, forget, escalate, status. With --as AGENT, or with
    an agent's credential in $AMPLIHACK_HIVE_CREDENTIAL (then no token file is read),
    the client sees that agent's scopes only and gets no status tool (its record counts
    cover every scope). Register it with your MCP client, e.g.
    Claude Code: claude mcp add hive -- amplihack-hive mcp NAME. The client starts this
    command; it runs until the client closes the connection. Needs the MCP SDK:
    pip install 'amplihack-hive[mcp]'.
    """
    from amplihack_hive.mcp_server import serve

    as_agent, credential = held_credential(as_agent)
    serve(name, state(ctx).home, as_agent, credential)


def register(app: typer.Typer) -> None:
    """Add learn, recall, ask, forget, escalate, credential, mcp, reindex and train to
    ``app``."""
    app.command("learn", rich_help_panel=MEMORY_PANEL)(learn)
    app.command("recall", rich_help_panel=MEMORY_PANEL)(recall)
    app.command("ask", rich_help_panel=MEMORY_PANEL)(ask)
    app.command("forget", rich_help_panel=MEMORY_PANEL)(forget)
    app.command("escalate", rich_help_panel=MEMORY_PANEL)(escalate)
    app.command("credential", rich_help_panel=MEMORY_PANEL)(credential)
    app.command("mcp", rich_help_panel=MEMORY_PANEL)(mcp)
    app.command("reindex", rich_help_panel=MEMORY_PANEL)(reindex)
    app.command("train", rich_help_panel=MEMORY_PANEL)(train)
