"""The in-process transport: agents in this process, reached by the same messages as HTTP.

Each typed request and its reply are encoded to their JSON wire form and decoded again
(``encode=True``, the default), so what crosses this seam is exactly what would cross the
network, and a message that cannot travel fails here first; ``encode=False`` hands the
objects over as they are. Requests are counted per agent. ``down`` holds agents that behave
as unreachable, so tests and benchmarks can fail agents without processes. An agent that
says it is busy is asked again after a pause, as over HTTP (:mod:`.busy`).
"""

from __future__ import annotations

from collections import Counter

from amplihack_hive import wirejson
from amplihack_hive.errors import BusyError, HiveError, IndexVersionError, TransportError
from amplihack_hive.memory.node import MemoryNode
from amplihack_hive.memory.protocol import Reply, Request, decode_reply, decode_request, encode
from amplihack_hive.transport.busy import with_backoff


class InProcessTransport:
    def __init__(self, nodes: dict[str, MemoryNode], *, encode: bool = True) -> None:
        self.nodes = nodes
        self.encode = encode
        self.requests: Counter[str] = Counter()
        self.bytes_sent = 0
        self.down: set[str] = set()

    async def request(self, agent: str, message: Request) -> Reply:
        return await with_backoff(lambda: self._once(agent, message))

    async def _once(self, agent: str, message: Request) -> Reply:
        self.requests[agent] += 1
        node = self.nodes.get(agent)
        if node is None or agent in self.down:
            raise TransportError(f"agent {agent} is unreachable")
        try:
            if not self.encode:
                return node.answer(message)
            raw = wirejson.dumps(encode(message))
            self.bytes_sent += len(raw)
            reply = node.answer(decode_request(wirejson.loads(raw)))
        except (BusyError, IndexVersionError):
            raise
        except HiveError as exc:
            raise TransportError(f"agent {agent} refused {message.op!r}: {exc}") from exc
        raw = wirejson.dumps(encode(reply))
        self.bytes_sent += len(raw)
        try:
            return decode_reply(message, wirejson.loads(raw))
        except ValueError as exc:
            raise TransportError(f"agent {agent} answered {message.op!r} wrongly: {exc}") from None

    async def close(self) -> None:
        pass
