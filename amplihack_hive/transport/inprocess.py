"""The in-process transport: agents in this process, reached by the same messages as HTTP.

Each request and response is encoded to JSON and decoded again, so what crosses this seam is
exactly what would cross the network, and a message that cannot travel fails here first.
Requests are counted per agent. ``down`` holds agents that behave as unreachable, so tests
and benchmarks can fail agents without processes.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from amplihack_hive.errors import HiveError, TransportError
from amplihack_hive.memory.node import MemoryNode

Message = dict[str, Any]


class InProcessTransport:
    def __init__(self, nodes: dict[str, MemoryNode], *, encode: bool = True) -> None:
        self.nodes = nodes
        self.encode = encode
        self.requests: Counter[str] = Counter()
        self.bytes_sent = 0
        self.down: set[str] = set()

    async def request(self, agent: str, message: Message) -> Message:
        self.requests[agent] += 1
        node = self.nodes.get(agent)
        if node is None or agent in self.down:
            raise TransportError(f"agent {agent} is unreachable")
        if self.encode:
            raw = json.dumps(message, separators=(",", ":"))
            self.bytes_sent += len(raw)
            message = json.loads(raw)
        try:
            reply = node.handle(message)
        except HiveError as exc:
            raise TransportError(f"agent {agent} refused {message.get('op')!r}: {exc}") from exc
        if self.encode:
            raw = json.dumps(reply, separators=(",", ":"))
            self.bytes_sent += len(raw)
            reply = json.loads(raw)
        return reply

    async def close(self) -> None:
        pass
