"""Failure detection: each agent probes a few peers per tick and keeps a view of who is up.

Probe targets are taken round-robin through a shuffled list of peers, so every peer is
probed within ceil(N/k) ticks (SWIM, Das et al. 2002, §4.3). A peer that fails one probe is
*suspect*; after ``down_after`` consecutive failures it is *down*; one answer makes it
*alive* again. Suspects are probed again on every tick. The view is advisory: coordinators
ask suspected replicas last, and ``status`` shows agents the hive suspects even when their
process still exists.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass
class PeerState:
    failures: int = 0
    last_ok: float | None = None
    last_probe: float | None = None


class FailureDetector:
    def __init__(
        self,
        me: str,
        probe: Callable[[str], Awaitable[object]],
        *,
        per_tick: int = 3,
        down_after: int = 3,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.me = me
        self.probe = probe
        self.per_tick = per_tick
        self.down_after = down_after
        self.clock = clock
        self.rng = rng or random.Random()
        self.peers: dict[str, PeerState] = {}
        self._order: list[str] = []

    def set_members(self, members: Iterable[str]) -> None:
        wanted = {m for m in members if m != self.me}
        for gone in set(self.peers) - wanted:
            del self.peers[gone]
        for new in wanted - set(self.peers):
            self.peers[new] = PeerState()
        self._order = [p for p in self._order if p in wanted]

    def state(self, peer: str) -> str:
        s = self.peers.get(peer)
        if s is None or s.failures == 0:
            return "alive"
        return "down" if s.failures >= self.down_after else "suspect"

    def suspects(self) -> set[str]:
        return {p for p, s in self.peers.items() if s.failures > 0}

    def view(self) -> dict[str, str]:
        return {p: self.state(p) for p in sorted(self.peers)}

    def _targets(self) -> list[str]:
        out: list[str] = []
        while len(out) < min(self.per_tick, len(self.peers)):
            if not self._order:
                self._order = list(self.peers)
                self.rng.shuffle(self._order)
            out.append(self._order.pop())
        return out

    async def tick(self) -> None:
        # suspects are probed again every tick, so one that was only starting clears fast
        targets = list(dict.fromkeys([*self._targets(), *sorted(self.suspects())]))
        results = await asyncio.gather(*(self.probe(p) for p in targets), return_exceptions=True)
        now = self.clock()
        for peer, result in zip(targets, results, strict=True):
            s = self.peers.get(peer)
            if s is None:
                continue
            s.last_probe = now
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                s.failures += 1
                if s.failures in (1, self.down_after):
                    logger.info("peer %s is %s: %s", peer, self.state(peer), result)
            else:
                if s.failures:
                    logger.info("peer %s is alive again", peer)
                s.failures = 0
                s.last_ok = now
