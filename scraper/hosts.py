"""Politeness per host: how many requests at once, and how far apart they start."""

from __future__ import annotations

import asyncio
import random
import time

THROTTLED_DELAY = 1.0
THROTTLE_PERIOD = 60.0
"""After a 429/503, requests to that host start at least 1 s apart for a minute."""


class HostSlots:
    """At most ``limit`` requests in flight to one host, started ``delay`` (+ jitter) apart.

    ``pause()`` (after a 429 or 503) holds back every new request to the host for
    a while, then keeps them at least ``THROTTLED_DELAY`` apart for a minute.
    """

    def __init__(self, limit: int, delay: float, jitter: float) -> None:
        self.delay = delay
        self.jitter = jitter
        self._semaphore = asyncio.Semaphore(limit)
        self._next_start = 0.0
        self._throttled_until = 0.0

    def pause(self, seconds: float) -> None:
        now = time.monotonic()
        # The retry that asked for the pause goes first when it ends; the next one waits.
        self._next_start = max(self._next_start, now + seconds) + THROTTLED_DELAY
        self._throttled_until = now + seconds + THROTTLE_PERIOD

    async def __aenter__(self) -> None:
        await self._semaphore.acquire()
        now = time.monotonic()
        delay = self.delay
        if now < self._throttled_until:
            delay = max(delay, THROTTLED_DELAY)
        if self.jitter:
            delay += random.uniform(0, self.jitter)
        start = max(now, self._next_start)
        self._next_start = start + delay
        if start > now:
            await asyncio.sleep(start - now)

    async def __aexit__(self, *exc: object) -> None:
        self._semaphore.release()
