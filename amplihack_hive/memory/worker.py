"""A store's own worker thread, with admission control.

An agent answers HTTP on one event loop. Store calls (Kuzu queries, posting segment writes,
fsyncs) can take from microseconds to seconds, so they run here, on one thread per store,
never on the loop: ``/healthz``, ``/health`` and peer probes keep answering in milliseconds
whatever the store is doing. Kuzu and the posting index release the GIL in their I/O, so the
loop really does run meanwhile (measured: loop lag under a 3 s Kuzu scan stayed below 1 ms).

Admission control: calls queue in FIFO order, but a call that would wait longer than
``max_wait_s`` (queued calls times the recent mean call time) or find ``max_pending`` calls
ahead of it is refused at once with :class:`~amplihack_hive.errors.BusyError`, which the agent
turns into HTTP 503 with ``Retry-After`` and the transport honours with backoff. Refusing
early keeps queues short, so a request that is admitted finishes well inside its sender's
timeout instead of timing out while it is still queued (a write that times out at the sender
is counted failed even though it lands later). Internal calls (repair, stats) pass
``bounded=False``: they are few and already serialised by their callers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from amplihack_hive.errors import BusyError

T = TypeVar("T")

#: Calls allowed to wait for one store.
MAX_PENDING = 32
#: Longest expected wait admitted (seconds); past it a call is refused with BusyError.
MAX_WAIT_S = 2.0
#: Weight of the newest call in the running mean of call times.
_EWMA = 0.2


class StoreWorker:
    """Runs calls for one store on a thread of its own, one at a time, in arrival order."""

    def __init__(
        self, name: str, *, max_pending: int = MAX_PENDING, max_wait_s: float = MAX_WAIT_S
    ) -> None:
        self.name = name
        self.max_pending = max_pending
        self.max_wait_s = max_wait_s
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"store-{name}")
        #: Calls admitted and not finished (read and written on the event loop only).
        self.pending = 0
        #: Running mean of call times, seconds.
        self.mean_s = 0.0
        self.refused = 0
        self._closed = False

    def expected_wait(self) -> float:
        return self.pending * self.mean_s

    async def run(self, fn: Callable[..., T], *args: object, bounded: bool = True) -> T:
        """Run ``fn(*args)`` on the store's thread and return its result."""
        if self._closed:
            raise BusyError(f"agent {self.name} is shutting down", retry_after=1.0)
        if (
            bounded
            and self.pending
            and (self.pending >= self.max_pending or self.expected_wait() > self.max_wait_s)
        ):
            self.refused += 1
            wait = min(max(self.expected_wait(), 0.05), 5.0)
            raise BusyError(
                f"agent {self.name} is busy ({self.pending} store calls queued, about "
                f"{wait:.1f} s of work)",
                retry_after=wait,
            )
        self.pending += 1

        def timed() -> tuple[T, float]:
            started = time.perf_counter()
            result = fn(*args)
            return result, time.perf_counter() - started

        try:
            call = self._pool.submit(timed)
            try:
                result, took = await asyncio.wrap_future(call)
            except asyncio.CancelledError:
                # dropped by drain(), never run; not a cancellation of the caller's own
                # task (which cancels the call too, and must go on as a cancellation)
                task = asyncio.current_task()
                if call.cancelled() and self._closed and not (task and task.cancelling()):
                    raise BusyError(
                        f"agent {self.name} is shutting down", retry_after=1.0
                    ) from None
                raise
        finally:
            self.pending -= 1
        self.mean_s = took if self.mean_s == 0.0 else (1 - _EWMA) * self.mean_s + _EWMA * took
        return result

    def drain(self) -> None:
        """Refuse new calls and drop the queued ones (they fail with BusyError: nothing of
        theirs ran, so nothing was acknowledged); the running call goes on. What a stopping
        agent does first, so that its grace period is spent on that call alone."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Refuse new calls, drop queued ones, and wait for the running one to finish (a
        store is never closed under a call in progress)."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
