"""Concurrent requests that need the same lookup share one.

The api role caches who an API key is and whether a merchant requires payments for two
seconds (merchants.KnownKeys, paid_orders.PaymentModes). When an entry expires under
load, every request in flight misses at once: without this each one would hop to the
thread pool and query the database (up to one per open connection for the same key),
and those threads would hold the event loop back behind the GIL. With it, one lookup
runs and the others await its answer. Nothing is kept once it answers: caching stays
the caches' job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[T]] = {}

    async def do(self, key: Hashable, lookup: Callable[[], Awaitable[T]]) -> T:
        """`lookup()`'s answer, or the answer of the one already running for `key`. Its
        error reaches every caller that waited for it; the next call looks up anew."""
        running = self._running.get(key)
        # A lookup of another event loop (a test client's, gone) is not awaitable here.
        if running is None or running.get_loop() is not asyncio.get_running_loop():
            running = asyncio.ensure_future(lookup())
            self._running[key] = running
            running.add_done_callback(lambda done: self._forget(key, done))
        # A caller that gives up (its client went away) must not cancel the others' lookup.
        return await asyncio.shield(running)

    def _forget(self, key: Hashable, done: asyncio.Future[T]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # retrieved: every waiter that was there has it already
