"""The supervisor's HTTP client of its agents (honcho's split: process management in
:mod:`~amplihack_hive.hive.supervisor` and :mod:`~amplihack_hive.hive.keeper`, talking to
the agents here, printing in the CLI).

One event loop thread and one connection pool serve every probe a command makes (health
while starting, status, retiring), each request with its own timeout; asyncio, aiohttp and
the loop are only started on the first request, so commands that never talk to an agent
never pay for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from amplihack_hive.errors import HiveError, TransportError

if TYPE_CHECKING:
    from amplihack_hive._loop import LoopThread
    from amplihack_hive.transport.http import HttpTransport

K = TypeVar("K", bound=Hashable)
#: The pool's own bound on one request; each request's timeout is below it.
_CEILING_S = 120.0


class AgentProbe:
    """GET and POST to agents with the hive's token."""

    def __init__(self, token: str) -> None:
        self._token = token
        self._loop: LoopThread | None = None
        self._transport: HttpTransport | None = None

    def _started(self) -> tuple[LoopThread, HttpTransport]:
        if self._loop is None or self._transport is None:
            from amplihack_hive._loop import LoopThread
            from amplihack_hive.transport.http import HttpTransport

            self._loop = LoopThread("amplihack-hive-probe")
            self._transport = HttpTransport({}, token=self._token, timeout_s=_CEILING_S)
        return self._loop, self._transport

    def fetch(self, requests: Mapping[K, tuple[str, float]]) -> dict[K, dict[str, Any] | HiveError]:
        """GET every ``url`` of ``requests`` (key -> (url, timeout s)) at once; per key,
        the JSON reply or the HiveError that says why there is none."""
        if not requests:
            return {}
        loop, transport = self._started()

        async def one(url: str, timeout_s: float) -> dict[str, Any]:
            try:
                return await asyncio.wait_for(transport.get(url), timeout_s)
            except TimeoutError:
                raise TransportError(f"{url}: no answer within {timeout_s:g} s") from None

        async def every() -> list[Any]:
            return await asyncio.gather(
                *(one(url, t) for url, t in requests.values()), return_exceptions=True
            )

        out: dict[K, dict[str, Any] | HiveError] = {}
        for key, reply in zip(requests, loop.run(every()), strict=True):
            if isinstance(reply, BaseException) and not isinstance(reply, HiveError):
                raise reply  # a bug, not an agent that did not answer
            out[key] = reply
        return out

    def get(self, url: str, timeout_s: float) -> dict[str, Any]:
        reply = self.fetch({0: (url, timeout_s)})[0]
        if isinstance(reply, HiveError):
            raise reply
        return reply

    def post(self, url: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        loop, transport = self._started()

        async def send() -> dict[str, Any]:
            try:
                return await asyncio.wait_for(transport.post(url, body), timeout_s)
            except TimeoutError:
                raise TransportError(f"{url}: no answer within {timeout_s:g} s") from None

        return loop.run(send())

    def close(self) -> None:
        if self._loop is not None:
            if self._transport is not None:
                self._loop.run(self._transport.close())
            self._loop.close()
        self._loop = self._transport = None
