"""``amplihack-hive mcp NAME``: a running local hive served to an MCP client over stdio.

Built on the official MCP Python SDK (:class:`mcp.server.mcpserver.MCPServer`): five tools
(``remember``, ``recall``, ``ask``, ``forget``, ``status``) whose JSON schemas the SDK
derives from the typed signatures below, each with a description written for the model
that will call it. The tools call the same :class:`amplihack_hive.Hive` client as the CLI
(one long-lived client: it follows the ring as agents join, leave or restart). Whatever
the hive refuses or cannot do comes back as an MCP tool error (``is_error``) with our
one-line message; the server never crashes on a tool call. stdout is the protocol: logs
go to stderr.

The SDK is an extra (``pip install 'amplihack-hive[mcp]'``) imported only by this command.
"""

# No ``from __future__ import annotations`` here: the SDK reads the tools' annotations
# (pydantic Fields inside build_server) to make their JSON schemas.
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from amplihack_hive.errors import HiveError

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from amplihack_hive.api import Hive
    from amplihack_hive.remote import RemoteHive

logger = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Shared long-term memory of a hive of agents. Use `recall` before answering questions "
    "about people, projects, decisions or past events; `remember` each durable fact you "
    "learn (one fact per call, in a full sentence that stands on its own); `forget` a fact "
    "that is wrong or withdrawn (by the id recall gave); `ask` for a short answer with its "
    "sources. Results that say complete=false may miss facts held by agents that did not "
    "answer."
)
#: Said when the server has the status tool (served as the admin).
STATUS_INSTRUCTIONS = " Use `status` to see whether every agent of the hive is healthy."


def _tool_error(exc: HiveError) -> Exception:
    from mcp.server.mcpserver.exceptions import ToolError

    return ToolError(str(exc))


SCOPE_HELP = (
    "Who may see it: 'hive' (every agent), 'agent:NAME' (that agent alone) or "
    "'group:NAME' (a group of agents). Default: hive."
)


def build_server(
    hive: "Hive | RemoteHive", name: str, home: Path | None = None, *, admin: bool = True
) -> "MCPServer":
    """The MCP server of the hive ``name`` reached through ``hive`` (as the admin, or with
    an agent's credential, ``admin`` False: then the agents let it see that agent's scopes
    only, and there is no ``status`` tool, whose record counts cover every scope)."""
    from mcp.server.mcpserver import MCPServer
    from pydantic import Field

    from amplihack_hive._version import __version__

    server: MCPServer = MCPServer(
        name="amplihack-hive",
        title=f"amplihack-hive: {name}",
        instructions=INSTRUCTIONS + (STATUS_INSTRUCTIONS if admin else ""),
        version=__version__,
    )

    @server.tool(
        description="Store one fact in the hive's shared memory and return its id. The same "
        "content always gets the same id, so remembering twice stores it once. Give a "
        "subject (who or what the fact is about) when a newer fact should replace an older "
        "one about the same subject."
    )
    def remember(
        content: Annotated[
            str, Field(description="The fact, as a sentence that stands on its own.")
        ],
        kind: Annotated[
            str,
            Field(description="semantic (a fact), episodic (an event) or procedural (how to)."),
        ] = "semantic",
        subject: Annotated[
            str | None,
            Field(description="Who or what the fact is about, e.g. 'Project Heron budget'."),
        ] = None,
        metadata: Annotated[
            dict[str, str | int | float | bool] | None,
            Field(description="Small key/value labels kept with the fact."),
        ] = None,
        scope: Annotated[str | None, Field(description=SCOPE_HELP)] = None,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {} if subject is None else {"subject": subject}
        if scope is not None:
            fields["scope"] = scope
        try:
            fact_id = hive.remember(content, kind=kind, metadata=metadata, **fields)
        except HiveError as exc:
            raise _tool_error(exc) from exc
        return {"id": fact_id}

    @server.tool(
        description="Recall the facts that best match a question, best first, each with its "
        "id, content and score. complete=false means some agents did not answer and facts "
        "they hold may be missing (they are named in unreachable)."
    )
    def recall(
        question: Annotated[str, Field(description="What you want to know, in words.")],
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many facts.")] = 10,
        scopes: Annotated[
            list[str] | None,
            Field(
                description="Recall among these scopes' facts only (default: every scope "
                "this client may see)."
            ),
        ] = None,
    ) -> dict[str, Any]:
        try:
            hits = hive.recall(question, limit, scopes)
        except HiveError as exc:
            raise _tool_error(exc) from exc
        return {
            "hits": [hit.to_dict() for hit in hits],
            "complete": hits.complete,
            "unreachable": list(hits.unreachable),
        }

    @server.tool(
        description="Answer a question from the facts the hive recalls: a short answer and "
        "the facts it came from (sources)."
    )
    def ask(
        question: Annotated[str, Field(description="The question.")],
    ) -> dict[str, Any]:
        try:
            return hive.ask(question).to_dict()
        except HiveError as exc:
            raise _tool_error(exc) from exc

    @server.tool(
        description="Forget a fact everywhere in the hive, by the id remember or recall gave; "
        "it is never recalled again (remembering the same content later stores it anew). "
        "forgotten=false: no such fact was stored."
    )
    def forget(
        fact_id: Annotated[str, Field(description="The fact's id.")],
    ) -> dict[str, Any]:
        try:
            existed = hive.forget(fact_id)
        except HiveError as exc:
            raise _tool_error(exc) from exc
        return {"id": fact_id, "forgotten": existed}

    @server.tool(
        description="Move a fact to a wider scope, by its id: an agent's private fact into "
        "one of its groups or the hive, a group's into the hive. Returns its id there (a "
        "scope is part of a fact's id); the old id is forgotten."
    )
    def escalate(
        fact_id: Annotated[str, Field(description="The fact's id.")],
        scope: Annotated[str, Field(description="The wider scope: 'group:NAME' or 'hive'.")],
    ) -> dict[str, Any]:
        try:
            new_id = hive.escalate(fact_id, scope)
        except HiveError as exc:
            raise _tool_error(exc) from exc
        return {"id": new_id, "from": fact_id, "scope": scope}

    def status() -> dict[str, Any]:
        from amplihack_hive.hive.supervisor import Supervisor

        try:
            with Supervisor(home, name) as supervisor:
                rows = supervisor.status()
        except HiveError as exc:
            raise _tool_error(exc) from exc
        keys = ("name", "state", "facts", "restarts", "reason", "uptime_s")
        agents = [{k: getattr(row, k) for k in keys} for row in rows]
        return {
            "hive": name,
            "healthy": sum(a["state"] == "healthy" for a in agents),
            "agents": agents,
        }

    if admin:  # it reads the token file and every scope's record counts
        server.tool(
            description="The hive's agents: each one's state (healthy, unhealthy, restarting, "
            "crashed, stopped), the facts it holds, and why it is not healthy when it is not."
        )(status)
    return server


def serve(
    name: str, home: Path | None, as_agent: str | None = None, credential: str | None = None
) -> None:
    """Serve the running hive ``name`` over stdio until the client closes the stream;
    ``as_agent``: with that agent's credential (its scopes only, enforced by the agents),
    ``credential`` when given, else derived from the hive's token file."""
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise HiveError(
            "the MCP server needs the MCP SDK: pip install 'amplihack-hive[mcp]'"
        ) from None
    import anyio

    from amplihack_hive.api import Hive
    from amplihack_hive.remote import through_agents

    client: Hive | RemoteHive = (
        Hive.connect(name, home)
        if as_agent is None
        else through_agents(name, home, as_agent=as_agent, credential=credential)
    )
    with client as hive:
        server = build_server(hive, name, home, admin=as_agent is None)
        logger.info("serving hive %s over MCP (stdio)", name)
        anyio.run(server.run_stdio_async)
