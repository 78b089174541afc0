"""The HTTP transport: the memory messages of :mod:`amplihack_hive.memory.node` over aiohttp.

One pooled ``ClientSession`` per transport (created on first use, in the loop that uses
it), a timeout on every request, a bound on requests in flight, and the hive token on every
request. aiohttp and socket errors are mapped to :class:`TransportError` here, so they never
leak past this module.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import aiohttp

from amplihack_hive import wirejson
from amplihack_hive.errors import BusyError, HiveError, IndexVersionError, TransportError
from amplihack_hive.memory.node import MemoryNode
from amplihack_hive.memory.protocol import Ping, Reply, Request, decode_reply, encode
from amplihack_hive.transport.busy import with_backoff

logger = logging.getLogger(__name__)

Message = dict[str, Any]
T = TypeVar("T")
MEMORY_PATH = "/v1/memory/{agent}"
TOKEN_HEADER = "Authorization"
#: An agent that did not answer is suspected (coordinators ask it last and write around
#: it) until a ping answers; pings go at most this often, seconds...
SUSPECT_PROBE_S = 1.0
#: ... and wait this long for an answer (a request waits the full timeout).
PROBE_TIMEOUT_S = 1.0
#: Reply header naming the ring the answering agent routes by (:attr:`HashRing.epoch`).
RING_HEADER = "X-Hive-Ring"


def auth_header(token: str | None) -> dict[str, str]:
    return {TOKEN_HEADER: f"Bearer {token}"} if token else {}


class HttpTransport:
    """Reaches agents at base URLs; agents hosted in this process are called directly."""

    def __init__(
        self,
        peers: Mapping[str, str] | Callable[[str], str | None],
        *,
        token: str | None,
        timeout_s: float = 5.0,
        max_in_flight: int = 64,
        local: Mapping[str, MemoryNode] | None = None,
        on_unreachable: Callable[[str], None] | None = None,
    ) -> None:
        if callable(peers):
            self._resolve = peers
        else:
            table = dict(peers)
            self._resolve = table.get
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.local = dict(local or {})
        self.on_unreachable = on_unreachable
        self._max_in_flight = max_in_flight
        self._session: aiohttp.ClientSession | None = None
        self._sem: asyncio.Semaphore | None = None
        self.requests = 0
        #: agent -> when it may be pinged again; present while the agent is suspected
        self._suspected: dict[str, float] = {}
        self._probing: set[str] = set()
        self._probes: set[asyncio.Task[None]] = set()  # held until done (not collected)

    def _client(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_in_flight, limit_per_host=16)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self.timeout,
                headers=auth_header(self.token),
                json_serialize=lambda o: wirejson.dumps(o).decode(),
            )
            self._sem = asyncio.Semaphore(self._max_in_flight)
        assert self._sem is not None
        return self._session, self._sem

    def suspects(self) -> set[str]:
        """Agents that did not answer their last request and have not answered a ping
        since. Each call sends a ping (in the background, at most every
        :data:`SUSPECT_PROBE_S`) to the suspects due for one, so a resumed agent is trusted
        again within about a second, without a request paying a timeout to find out."""
        now = time.monotonic()
        for agent, due in list(self._suspected.items()):
            if due <= now and agent not in self._probing:
                try:
                    task = asyncio.get_running_loop().create_task(self._probe(agent))
                except RuntimeError:  # no loop here: the next call from one pings
                    break
                self._probing.add(agent)
                self._probes.add(task)
                task.add_done_callback(self._probes.discard)
        return set(self._suspected)

    async def _probe(self, agent: str) -> None:
        try:
            base = self._resolve(agent)
            if not base:
                raise TransportError("no address")
            session, _ = self._client()
            url = base + MEMORY_PATH.format(agent=agent)
            timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
            async with session.post(url, json=encode(Ping()), timeout=timeout) as resp:
                if resp.status == 200:
                    self._suspected.pop(agent, None)
                    return
        except (aiohttp.ClientError, TimeoutError, OSError, TransportError):
            pass  # still suspected: pinged again in SUSPECT_PROBE_S
        finally:
            self._probing.discard(agent)
        if agent in self._suspected:
            self._suspected[agent] = time.monotonic() + SUSPECT_PROBE_S

    async def request(self, agent: str, message: Request) -> Reply:
        """Send one typed request; agents hosted in this process answer it directly (no
        JSON), the others over HTTP in its wire form."""
        self.requests += 1
        node = self.local.get(agent)
        if node is not None:
            return await with_backoff(lambda: self._local(node, agent, message))
        base = self._resolve(agent)
        if not base:
            raise TransportError(f"agent {agent} has no known address (is it running?)")
        url = base + MEMORY_PATH.format(agent=agent)
        wire = encode(message)
        data, epoch = await with_backoff(lambda: self._send(url, wire, agent))
        try:
            reply = decode_reply(message, data)
        except ValueError as exc:
            raise TransportError(f"agent {agent} answered {message.op!r} wrongly: {exc}") from None
        reply.epoch = epoch
        return reply

    @staticmethod
    async def _local(node: MemoryNode, agent: str, message: Request) -> Reply:
        try:
            return await node.serve(message)
        except (BusyError, IndexVersionError):
            raise
        except HiveError as exc:
            raise TransportError(f"agent {agent} refused {message.op!r}: {exc}") from exc

    async def post(self, url: str, body: Any, *, agent: str = "") -> Message:
        """POST ``body`` as JSON; the JSON object of a 200, else the error it stands for."""
        data, _ = await self._send(url, body, agent)
        return data

    async def _send(self, url: str, body: Any, agent: str) -> tuple[Message, str | None]:
        """As :meth:`post`, with the ring epoch the answering agent routes by (its
        :data:`RING_HEADER`), or None."""
        session, sem = self._client()
        try:
            async with sem, session.post(url, json=body) as resp:
                epoch = resp.headers.get(RING_HEADER)
                if agent:
                    self._suspected.pop(agent, None)  # it answered
                if resp.status == 200:
                    data = await resp.json(loads=wirejson.loads)
                    if not isinstance(data, dict):
                        raise TransportError(f"{agent or url} answered with a non-object")
                    return data, epoch or None
                if resp.status == 409:
                    # terms of another tokenizer (errors.py): not an agent that failed
                    raise IndexVersionError(await _describe_error(resp, agent or url))
                if resp.status == 503 and "Retry-After" in resp.headers:
                    raise BusyError(
                        await _describe_error(resp, agent or url),
                        retry_after=_seconds(resp.headers["Retry-After"]),
                    )
                raise TransportError(await _describe_error(resp, agent or url))
        except (TransportError, IndexVersionError):
            raise
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            if agent:
                self._suspected.setdefault(agent, time.monotonic() + SUSPECT_PROBE_S)
                if self.on_unreachable:
                    self.on_unreachable(agent)
            raise TransportError(f"agent {agent or url} is unreachable: {_why(exc)}") from exc

    async def get(self, url: str) -> Message:
        session, sem = self._client()
        try:
            async with sem, session.get(url) as resp:
                if resp.status == 200:
                    data = await resp.json(loads=wirejson.loads)
                    return data if isinstance(data, dict) else {"value": data}
                raise TransportError(await _describe_error(resp, url))
        except TransportError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise TransportError(f"{url} is unreachable: {_why(exc)}") from exc

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _seconds(value: str) -> float:
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0


async def _describe_error(resp: aiohttp.ClientResponse, who: str) -> str:
    try:
        data = await resp.json(content_type=None, loads=wirejson.loads)
        detail = data.get("error") if isinstance(data, dict) else None
    except (ValueError, aiohttp.ClientError):
        detail = None
    if resp.status == 401:
        return f"{who} refused the hive token (401)"
    return f"{who} answered {resp.status}: {detail or resp.reason}"


def _why(exc: BaseException) -> str:
    """Why a request got no answer, in a few words (not the client library's repr)."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "no answer in time"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error.strerror or str(exc.os_error) or "cannot connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the connection closed before an answer"
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
