"""The HTTP transport: the memory messages of :mod:`amplihack_hive.memory.node` over aiohttp.

One pooled ``ClientSession`` per transport (created on first use, in the loop that uses
it), a timeout on every request, a bound on requests in flight, and the hive token on every
request. aiohttp and socket errors are mapped to :class:`TransportError` here, so they never
leak past this module.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from amplihack_hive.errors import HiveError, TransportError
from amplihack_hive.memory.node import MemoryNode

logger = logging.getLogger(__name__)

Message = dict[str, Any]
MEMORY_PATH = "/v1/memory/{agent}"
TOKEN_HEADER = "Authorization"


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

    def _client(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_in_flight, limit_per_host=16)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self.timeout,
                headers=auth_header(self.token),
                json_serialize=lambda o: json.dumps(o, separators=(",", ":")),
            )
            self._sem = asyncio.Semaphore(self._max_in_flight)
        assert self._sem is not None
        return self._session, self._sem

    async def request(self, agent: str, message: Message) -> Message:
        self.requests += 1
        node = self.local.get(agent)
        if node is not None:
            try:
                return node.handle(message)
            except HiveError as exc:
                raise TransportError(f"agent {agent} refused {message.get('op')!r}: {exc}") from exc
        base = self._resolve(agent)
        if not base:
            raise TransportError(f"agent {agent} has no known address (is it running?)")
        return await self.post(base + MEMORY_PATH.format(agent=agent), message, agent=agent)

    async def post(self, url: str, body: Any, *, agent: str = "") -> Message:
        session, sem = self._client()
        try:
            async with sem, session.post(url, json=body) as resp:
                if resp.status == 200:
                    data = await resp.json()
                    if not isinstance(data, dict):
                        raise TransportError(f"{agent or url} answered with a non-object")
                    return data
                raise TransportError(await _describe_error(resp, agent or url))
        except TransportError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            if agent and self.on_unreachable:
                self.on_unreachable(agent)
            raise TransportError(f"agent {agent or url} is unreachable: {exc!r}") from exc

    async def get(self, url: str) -> Message:
        session, sem = self._client()
        try:
            async with sem, session.get(url) as resp:
                if resp.status == 200:
                    data = await resp.json()
                    return data if isinstance(data, dict) else {"value": data}
                raise TransportError(await _describe_error(resp, url))
        except TransportError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise TransportError(f"{url} is unreachable: {exc!r}") from exc

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


async def _describe_error(resp: aiohttp.ClientResponse, who: str) -> str:
    try:
        data = await resp.json(content_type=None)
        detail = data.get("error") if isinstance(data, dict) else None
    except (ValueError, aiohttp.ClientError):
        detail = None
    if resp.status == 401:
        return f"{who} refused the hive token (401)"
    return f"{who} answered {resp.status}: {detail or resp.reason}"
