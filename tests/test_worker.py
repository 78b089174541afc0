"""Store work runs off the event loop, and a saturated store says "busy, retry" (503 +
Retry-After), which the HTTP transport honours: the real worker, node, aiohttp app and
transport on loopback."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from aiohttp import web

from amplihack_hive.agent.brain import AgentBrain
from amplihack_hive.agent.server import make_app
from amplihack_hive.errors import BusyError
from amplihack_hive.memory.coordinator import Coordinator
from amplihack_hive.memory.kuzu_store import KuzuStore
from amplihack_hive.memory.node import MemoryNode
from amplihack_hive.memory.protocol import Stats, StatsReply
from amplihack_hive.memory.ring import HashRing
from amplihack_hive.memory.store import InMemoryStore
from amplihack_hive.memory.worker import StoreWorker
from amplihack_hive.transport.http import HttpTransport

TOKEN = "t0ken-for-tests"


def test_calls_run_on_the_worker_thread_while_the_loop_keeps_ticking() -> None:
    worker = StoreWorker("a")

    async def main() -> tuple[int, int, int]:
        ticks = 0
        done = asyncio.Event()

        async def tick() -> None:
            nonlocal ticks
            while not done.is_set():
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())

        def slow() -> int:
            time.sleep(0.4)
            return threading.get_ident()

        ident = await worker.run(slow)
        done.set()
        await ticker
        return ident, threading.get_ident(), ticks

    try:
        worker_thread, loop_thread, ticks = asyncio.run(main())
    finally:
        worker.close()
    assert worker_thread != loop_thread
    assert ticks >= 10  # 0.4 s of blocking store work did not hold the loop


def test_a_saturated_worker_refuses_with_a_retry_hint_and_recovers() -> None:
    worker = StoreWorker("a", max_pending=2)
    gate = threading.Event()

    async def main() -> None:
        first = asyncio.create_task(worker.run(gate.wait))
        second = asyncio.create_task(worker.run(gate.wait))
        await asyncio.sleep(0.05)
        with pytest.raises(BusyError) as refused:
            await worker.run(lambda: 1)
        assert refused.value.retry_after > 0
        assert worker.refused == 1
        # internal calls are not refused: they wait their turn
        internal = asyncio.create_task(worker.run(lambda: "internal", bounded=False))
        gate.set()
        await asyncio.gather(first, second)
        assert await internal == "internal"
        assert await worker.run(lambda: 2) == 2

    try:
        asyncio.run(main())
    finally:
        worker.close()


def test_expected_wait_beyond_the_budget_is_refused() -> None:
    worker = StoreWorker("a", max_pending=100, max_wait_s=0.15)
    gate = threading.Event()

    async def main() -> None:
        await worker.run(time.sleep, 0.1)  # the worker learns that a call takes ~0.1 s
        blockers = [asyncio.create_task(worker.run(gate.wait)) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(BusyError):
            await worker.run(lambda: None)  # 2 queued x 0.1 s > 0.15 s
        gate.set()
        await asyncio.gather(*blockers)

    try:
        asyncio.run(main())
    finally:
        worker.close()


def test_close_waits_for_the_running_call_then_refuses() -> None:
    worker = StoreWorker("a")
    finished = []

    async def main() -> None:
        running = asyncio.create_task(worker.run(lambda: (time.sleep(0.2), finished.append(1))))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(worker.close)
        assert finished == [1]  # the store is never closed under a call in progress
        await running
        with pytest.raises(BusyError):
            await worker.run(lambda: None)

    asyncio.run(main())


def test_drain_drops_the_queued_calls_at_once_and_lets_the_running_one_finish() -> None:
    """A stopping agent drains first: what is queued fails now with "shutting down" (none
    of it ran, so none of it was acknowledged), and only the call in progress is waited
    for; a call after the drain is refused."""
    worker = StoreWorker("a", max_pending=100, max_wait_s=100.0)
    ran: list[int] = []

    def slow(i: int) -> int:
        time.sleep(0.3)
        ran.append(i)
        return i

    async def main() -> None:
        calls = [asyncio.create_task(worker.run(slow, i)) for i in range(5)]
        await asyncio.sleep(0.1)  # the first is running, four are queued
        began = time.perf_counter()
        worker.drain()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert time.perf_counter() - began < 0.5  # not five calls' time
        assert results[0] == 0 and ran == [0]
        assert all(isinstance(r, BusyError) and "shutting down" in str(r) for r in results[1:])
        with pytest.raises(BusyError):
            await worker.run(slow, 9)
        await asyncio.to_thread(worker.close)
        assert ran == [0]

    asyncio.run(main())


def test_a_caller_cancelled_after_the_drain_is_cancelled_not_refused() -> None:
    """The stopping agent drains its workers, then cancels its upkeep task, which may be
    waiting on a queued call: that task must end as cancelled (it once took the call's
    cancellation for a refusal and went on retrying, past stop's grace)."""
    worker = StoreWorker("a", max_pending=100, max_wait_s=100.0)

    async def main() -> None:
        first = asyncio.create_task(worker.run(time.sleep, 0.3))
        await asyncio.sleep(0.05)
        queued = asyncio.create_task(worker.run(time.sleep, 0.3))
        await asyncio.sleep(0.05)
        queued.cancel()  # the caller's own task is cancelled while the call is queued
        worker.drain()
        with pytest.raises(asyncio.CancelledError):
            await queued
        await first
        await asyncio.to_thread(worker.close)

    asyncio.run(main())


def one_agent_brain(node: MemoryNode) -> AgentBrain:
    ring = HashRing(["agent-0"])
    return AgentBrain({"agent-0": node}, Coordinator(ring, HttpTransport({}, token=TOKEN)))


async def serve(brain: AgentBrain) -> tuple[web.AppRunner, str]:
    """The agent's real app on a loopback port; its runner (to clean up) and base URL."""
    runner = web.AppRunner(make_app(brain, TOKEN))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def test_http_503_with_retry_after_is_retried_by_the_transport(tmp_path: Path) -> None:
    store = KuzuStore(tmp_path / "db", buffer_pool_mb=16, max_db_size_mb=64)
    node = MemoryNode("agent-0", store, worker=StoreWorker("agent-0", max_pending=1))
    brain = one_agent_brain(node)

    async def main() -> None:
        runner, url = await serve(brain)
        transport = HttpTransport({"agent-0": url}, token=TOKEN, timeout_s=5)
        gate = threading.Event()
        try:
            # the store's one admitted call is busy: a bounded request is refused with 503
            busy = asyncio.create_task(node.run(gate.wait))
            await asyncio.sleep(0.05)
            with pytest.raises(BusyError):
                await transport.post(url + "/v1/memory/agent-0", {"op": "stats"}, agent="agent-0")
            # /healthz and /health answer at once meanwhile
            started = time.perf_counter()
            health = await transport.get(url + "/health")
            assert health["status"] == "ok"
            assert time.perf_counter() - started < 1.0
            # the transport backs off and retries; once the store is free it gets through
            asyncio.get_running_loop().call_later(0.3, gate.set)
            reply = await transport.request("agent-0", Stats())
            assert isinstance(reply, StatsReply) and reply.agent == "agent-0"
            await busy
        finally:
            gate.set()
            await transport.close()
            await runner.cleanup()

    try:
        asyncio.run(main())
    finally:
        node.close()


def test_readyz_says_ready_only_once_every_agent_is_in_step_and_needs_no_token(
    tmp_path: Path,
) -> None:
    import aiohttp

    node = MemoryNode("agent-0", InMemoryStore())
    node.ready = False  # as an agent is until its first repair round
    brain = one_agent_brain(node)

    async def main() -> None:
        runner, url = await serve(brain)
        try:
            async with aiohttp.ClientSession() as session:  # no token: a platform probe
                async with session.get(url + "/readyz") as resp:
                    assert (resp.status, await resp.json()) == (503, {"status": "rebuilding"})
                node.ready = True
                async with session.get(url + "/readyz") as resp:
                    assert (resp.status, await resp.json()) == (200, {"status": "ready"})
                node.mark_broken("its files are gone")
                async with session.get(url + "/readyz") as resp:
                    assert resp.status == 503
                async with session.get(url + "/health") as resp:
                    assert resp.status == 401  # everything else needs the token
                async with session.post(url + "/readyz") as resp:
                    assert resp.status in (401, 405)
        finally:
            await runner.cleanup()

    asyncio.run(main())
