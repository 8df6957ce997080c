"""Group commit for POST /order: concurrent requests share one transaction.

One transaction per request capped intake at a tenth of what HTTP itself can do: on
SQLite every request queued for the one write lock, on PostgreSQL for its own commit
(py-spy at 583 requests/s on SQLite: 870 of the worker threads' 1,437 samples waited in
BEGIN IMMEDIATE for the lock, while the event loop sat idle). Group commit took intake
from 0.09 to 0.61 of the HTTP ceiling on SQLite and from 0.06 to 0.22 on PostgreSQL
(README, "Benchmarks"; bench/intake.py measures it). Here each request hands its order
to one writer thread and waits; the writer saves whatever has queued up meanwhile with
`orders.place_orders`, in one transaction, and only after that commit does any of them
get its answer. So a 201 still means the order and its event are committed, and nothing
waits on purpose: a group is simply every request that arrived while the previous group
was being written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import peewee as pw

from kitchen import metrics, orders
from kitchen.db import is_data_error

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Waiting:
    request: orders.NewOrder
    answer: asyncio.Future[orders.Placed]


class Intake:
    """The writer thread, started by the first order and stopped by `stop`."""

    def __init__(
        self,
        topic: str,
        max_group: int = 500,
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self.topic = topic
        self.max_group = max_group
        self.on_commit = on_commit  # wakes the relay: the group's events are in the outbox
        self._queue: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # One writer: two to four were measured and gained nothing (the process's one GIL,
        # not the database, limits intake; see the README's benchmarks).
        self._thread: threading.Thread | None = None
        self._stopped = False

    async def place(self, request: orders.NewOrder) -> orders.Placed:
        """Save the order once committed; raises InvalidOrder, or the database's error.

        A request cancelled before its group is written (the client went away) is not
        saved; once its group is being written, it is saved either way.
        """
        answer = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._stopped:
                raise RuntimeError("intake stopped")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="intake", daemon=True)
                self._thread.start()
            self._queue.put(_Waiting(request, answer))
        return await answer

    def stop(self, timeout: float = 15.0) -> None:
        """Save what is queued, then end the writer."""
        with self._lock:
            self._stopped = True
            thread = self._thread
            self._queue.put(None)  # the stop mark, behind every order already queued
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            group = [self._queue.get()]
            while len(group) < self.max_group:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            # A request whose client went away is dropped (read without the loop's lock: one
            # cancelled a moment later is saved all the same, and `_settle` skips it).
            waiting = [w for w in group if w is not None and not w.answer.cancelled()]
            if waiting:
                started = time.perf_counter()
                results = self._save(waiting)
                # Group sizes show whether commits are shared (role "intake").
                metrics.batch_done("intake", len(waiting), time.perf_counter() - started)
                self._answer(waiting, results)
            if None in group:
                return

    def _save(self, group: list[_Waiting]) -> list[orders.Placed | Exception]:
        """Each request's saved order, or the exception its request raises."""
        try:
            results: list[orders.Placed | Exception] = list(
                orders.place_orders([w.request for w in group], self.topic)
            )
        except (pw.OperationalError, pw.InterfaceError) as exc:
            return [exc] * len(group)  # the database is unavailable: a 503 for each
        except Exception as exc:
            if len(group) > 1:
                # Maybe one request's data that the database refused: each alone, so
                # that one bad order fails only its own request.
                log.warning("a group of %d orders failed (%s); saving each alone", len(group), exc)
                return [r for w in group for r in self._save([w])]
            if not is_data_error(exc):
                log.exception("saving an order failed")
            return [exc]
        self.on_commit()
        return results

    @staticmethod
    def _answer(group: list[_Waiting], results: list[orders.Placed | Exception]) -> None:
        """Hand every request its result on its event loop: one wake-up per loop and group
        (not one per request), which matters at thousands of orders a second."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Waiting, orders.Placed | Exception]]]
        by_loop = {}
        for w, result in zip(group, results, strict=True):
            by_loop.setdefault(w.answer.get_loop(), []).append((w, result))
        for loop, answers in by_loop.items():
            # A closed loop raises RuntimeError: nobody waits for those answers any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, answers)


def _settle(answers: list[tuple[_Waiting, orders.Placed | Exception]]) -> None:
    for w, result in answers:
        if w.answer.done():
            continue  # cancelled meanwhile; the order is saved all the same
        if isinstance(result, Exception):
            w.answer.set_exception(result)
        else:
            w.answer.set_result(result)
