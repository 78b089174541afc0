"""The agent's HTTP API (aiohttp).

Every request but ``GET /healthz`` and ``GET /readyz`` carries the hive token
(``Authorization: Bearer <token>``: the admin key) or an agent's credential (``agent.NAME.MAC``,
hive/token.py), else gets 401. An agent's credential reaches the client API below in that
agent's scopes only (memory/scopes.py: its own, its groups', the hive's), and gets 403 for
any other scope and for the agents' own paths (``/v1/...``).
Errors are JSON ``{"error": "..."}`` with a 4xx status; a bad request never takes the agent
down.

``GET  /healthz``              liveness only, without the token (for platform probes)
``GET  /health``               liveness, readiness and which agents this process hosts
``GET  /stats``                records per hosted agent, RSS, uptime, fan-out
``POST /learn``                ``{"items": [str | {"content", "kind"?, "scope"?, ...}], "scope"?}``
``POST /recall``               ``{"question", "limit"?, "scopes"?: [scope]}``
``POST /ask``                  ``{"question", "limit"?, "scopes"?: [scope]}``
``POST /forget``               ``{"id"}``
``POST /escalate``             ``{"id", "scope"}``: move a fact to a wider scope; ``{"id"}``
``POST /v1/memory/{agent}``    an agent-to-agent memory message (see memory/node.py)
``POST /v1/admin/repair``      run a repair round now (with handoff); returns the reports
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psutil
from aiohttp import web

from amplihack_hive import wirejson
from amplihack_hive.agent.brain import AgentBrain
from amplihack_hive.errors import (
    BusyError,
    ForbiddenError,
    HiveError,
    HiveStateError,
    IndexVersionError,
    InvalidInputError,
    NotFoundError,
    StorageError,
    TransportError,
)
from amplihack_hive.hive.token import credential_agent
from amplihack_hive.memory.protocol import decode_request, encode
from amplihack_hive.memory.scopes import Access
from amplihack_hive.transport.http import RING_HEADER

logger = logging.getLogger(__name__)


#: Largest request body accepted (a learn batch of many facts fits well below this).
MAX_BODY = 32 * 1024 * 1024
#: A connection that sends no complete request for this long is closed: idle keep-alive
#: connections, half-open ones whose peer vanished, and requests trickled in a byte at a
#: time (aiohttp arms this timer when the connection opens). Clients keep pooled
#: connections for less (aiohttp's client: 15 s).
IDLE_TIMEOUT_S = 30.0
#: Memory requests up to this size are decoded on the event loop; larger ones (write
#: batches) on the store's worker, with their reply.
INLINE_JSON_BYTES = 4096
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


#: Paths answered without the token: liveness and readiness for platform probes, which
#: cannot send secrets; each says one word and nothing about the hive.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
#: Paths for the hive token only: the agents' own protocol and administration.
ADMIN_PREFIX = "/v1/"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _decode(raw: bytes) -> dict[str, Any]:
    data = decode_json(raw)
    if not isinstance(data, dict):
        raise InvalidInputError("the body must be a JSON object")
    return data


def decode_json(raw: bytes) -> Any:
    """Parse a request body; InvalidInputError (HTTP 400) for anything that is not JSON,
    including JSON nested deeper than the parser's recursion bound."""
    try:
        return wirejson.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidInputError("the body is JSON nested too deeply") from None


def make_runner(app: web.Application, idle_timeout_s: float = IDLE_TIMEOUT_S) -> web.AppRunner:
    """The runner an agent serves ``app`` with: its signals are the agent's own, no access
    log, and idle connections closed after ``idle_timeout_s``."""
    return web.AppRunner(
        app, handle_signals=False, access_log=None, keepalive_timeout=idle_timeout_s
    )


def make_app(brain: AgentBrain, token: str) -> web.Application:
    started = time.time()
    process = psutil.Process(os.getpid())

    def principal(request: web.Request) -> str | None:
        """Who sent ``request``: "" for the hive token (the admin), an agent's name for its
        credential, None for neither."""
        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return ""
        if not given.startswith("Bearer "):
            return None
        return credential_agent(token, given.removeprefix("Bearer "))

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        open_path = request.path in OPEN_PATHS and request.method == "GET"
        if not open_path:
            who = principal(request)
            if who is None:
                return _error(401, "missing or wrong hive token")
            if who and who not in brain.coordinator.ring:
                # a removed agent's credential opens nothing (the ring is the membership)
                return _error(401, f"agent {who} is not a member of this hive")
            if who and request.path.startswith(ADMIN_PREFIX):
                return _error(403, "this path takes the hive token, not an agent's credential")
        try:
            response = await handler(request)
            # the ring this agent routes by: a client holding another refreshes its own
            response.headers[RING_HEADER] = brain.coordinator.ring.epoch
            return response
        except web.HTTPException as exc:
            if exc.status >= 400:
                return _error(exc.status, exc.reason)
            raise
        except BusyError as exc:
            # nothing was done: the sender backs off and sends the same request again
            response = _error(503, str(exc))
            response.headers["Retry-After"] = f"{exc.retry_after:.2f}"
            return response
        except NotFoundError as exc:
            return _error(404, str(exc))
        except ForbiddenError as exc:
            return _error(403, str(exc))
        except IndexVersionError as exc:
            # terms of another tokenizer: answering would mix versions (errors.py)
            return _error(409, str(exc))
        except InvalidInputError as exc:
            return _error(400, str(exc))
        except (TransportError, HiveStateError) as exc:
            logger.warning("%s %s: %s", request.method, request.path, exc)
            return _error(503, str(exc))
        except StorageError as exc:
            # the message names files; the caller learns only that this store failed
            logger.error("%s %s: %s", request.method, request.path, exc)
            return _error(503, "this agent's store failed; see the agent's log")
        except HiveError as exc:
            logger.warning("%s %s: %s", request.method, request.path, exc)
            return _error(500, str(exc))
        except Exception:
            # a bug: the log has the traceback, the caller a JSON error without internals
            logger.exception("%s %s failed", request.method, request.path)
            return _error(500, "internal error; see the agent's log")

    async def body(request: web.Request) -> dict[str, Any]:
        return _decode(await request.read())

    def field(data: dict[str, Any], key: str, kind: type, default: Any = ...) -> Any:
        if key not in data:
            if default is ...:
                raise InvalidInputError(f"missing field {key!r}")
            return default
        value = data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise InvalidInputError(f"field {key!r} must be {kind.__name__}")
        return value

    async def healthz(request: web.Request) -> web.Response:
        # unauthenticated liveness for platform probes: says nothing about the hive
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        # unauthenticated readiness for the platform: 200 once every agent of this process
        # is in step with its replicas (a rolling update waits for it), 503 before
        ready = brain.ready and all(node.broken is None for node in brain.nodes.values())
        status = "ready" if ready else "rebuilding"
        return web.json_response({"status": status}, status=200 if ready else 503)

    async def health(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "ready": brain.ready,
                "agents": brain.hosted,
                # answered from memory: a store busy with a bulk write never delays it
                "ready_agents": {
                    name: node.ready and node.broken is None for name, node in brain.nodes.items()
                },
                # why an agent answers nothing more (its store failed), per agent
                "broken": {n: node.broken for n, node in brain.nodes.items() if node.broken},
                "pid": os.getpid(),
                "uptime_s": round(time.time() - started, 3),
            }
        )

    async def stats(request: web.Request) -> web.Response:
        # records per agent count every scope's: the admin's, not a credential holder's
        admin_only(request)
        return web.json_response(
            {
                "agents": await brain.local_stats(),
                "pid": os.getpid(),
                "rss_mb": round(process.memory_info().rss / 2**20, 1),
                "uptime_s": round(time.time() - started, 3),
                "fanout": brain.coordinator.fanout.as_dict(),
                "ready": brain.ready,
                "members": list(brain.coordinator.ring.nodes),
                "peers": brain.peer_view(),
            }
        )

    def admin_only(request: web.Request) -> None:
        # the guard refuses these paths to agents' credentials already; this holds
        # whatever the path looks like (a route added under another prefix)
        if principal(request) != "":
            raise ForbiddenError("this path takes the hive token, not an agent's credential")

    async def repair(request: web.Request) -> web.Response:
        admin_only(request)
        return web.json_response({"agents": await brain.repair_now()})

    def access(request: web.Request) -> Access:
        return brain.access(principal(request) or None)

    def scopes(data: dict[str, Any]) -> list[str] | None:
        value = data.get("scopes")
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise InvalidInputError("field 'scopes' must be a list of scopes")
        return value

    async def learn(request: web.Request) -> web.Response:
        data = await body(request)
        items = field(data, "items", list)
        scope = field(data, "scope", str, None)
        return web.json_response(await brain.learn(items, access(request), scope))

    async def recall(request: web.Request) -> web.Response:
        data = await body(request)
        question = field(data, "question", str)
        limit = field(data, "limit", int, 10)
        hits = await brain.coordinator.recall(question, limit, scopes(data), access(request))
        return web.json_response(
            {
                "hits": [h.to_dict() for h in hits],
                "complete": hits.complete,
                "unreachable": list(hits.unreachable),
            }
        )

    async def ask(request: web.Request) -> web.Response:
        data = await body(request)
        answer = await brain.ask(
            field(data, "question", str),
            field(data, "limit", int, 10),
            scopes(data),
            access(request),
        )
        return web.json_response(answer.to_dict())

    async def forget(request: web.Request) -> web.Response:
        fact_id = field(await body(request), "id", str)
        forgotten = await brain.coordinator.forget(fact_id, access(request))
        return web.json_response({"forgotten": forgotten})

    async def escalate(request: web.Request) -> web.Response:
        data = await body(request)
        fact_id = field(data, "id", str)
        new_id = await brain.coordinator.escalate(
            fact_id, field(data, "scope", str), access(request)
        )
        return web.json_response({"id": new_id})

    async def memory(request: web.Request) -> web.Response:
        admin_only(request)
        agent = request.match_info["agent"]
        node = brain.nodes.get(agent)
        if node is None:
            raise NotFoundError(f"agent {agent!r} is not hosted here")
        raw = await request.read()
        if len(raw) <= INLINE_JSON_BYTES:  # pings and small reads: parsed here, at once
            reply = await node.serve(decode_request(_decode(raw)))
            return web.Response(body=wirejson.dumps(encode(reply)), content_type="application/json")
        return web.Response(body=await node.serve_encoded(raw), content_type="application/json")

    app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/health", health),
            web.get("/stats", stats),
            web.post("/learn", learn),
            web.post("/recall", recall),
            web.post("/ask", ask),
            web.post("/forget", forget),
            web.post("/escalate", escalate),
            web.post("/v1/memory/{agent}", memory),
            web.post("/v1/admin/repair", repair),
        ]
    )
    return app
