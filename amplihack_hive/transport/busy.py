"""How every sender treats an agent that says it is busy (:class:`BusyError`: HTTP 503 with
``Retry-After``, or the same error from an agent in this process): wait what it asked, at
least a pause that doubles with each refusal, with jitter so refused senders do not return
together, and send again, up to :data:`BUSY_ATTEMPTS`. The last refusal is raised:
BusyError is a TransportError, so callers treat an agent that stays saturated as one that
did not answer (a write goes to a hinted stand-in). Standard library only: the command
line's client (remote.py) uses it without asyncio or aiohttp.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from amplihack_hive.errors import BusyError

T = TypeVar("T")
#: Attempts of one request an agent refuses as busy before the sender gives up.
BUSY_ATTEMPTS = 6
#: Longest pause between two attempts, seconds.
BUSY_MAX_PAUSE_S = 2.0
#: The least pause after the first refusal, seconds (doubled after each).
FIRST_PAUSE_S = 0.05


def busy_pause(refused: BusyError, attempt: int) -> float:
    """Seconds to wait after the refusal of attempt ``attempt`` (0 for the first)."""
    least = FIRST_PAUSE_S * 2**attempt
    return min(max(refused.retry_after, least), BUSY_MAX_PAUSE_S) * random.uniform(1.0, 1.5)


async def with_backoff(send: Callable[[], Awaitable[T]]) -> T:
    """Send; when the agent says it is busy, pause (:func:`busy_pause`) and send again."""
    import asyncio

    for attempt in range(BUSY_ATTEMPTS):
        try:
            return await send()
        except BusyError as exc:
            if attempt == BUSY_ATTEMPTS - 1:
                raise
            await asyncio.sleep(busy_pause(exc, attempt))
    raise AssertionError("unreachable")
