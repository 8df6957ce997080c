"""A role's background thread: the one shape of the relay, the Kafka consumers, the mail
sender and the payments settler. app.py starts and stops them; /ready reads `ready`.

A subclass writes `_run`, which loops until `_stop` is set and may sleep on `_wake`
(set by `wake()`: new work was just committed) instead of polling at once.
"""

from __future__ import annotations

import threading

# A role is reported not ready after this many failed attempts in a row: one failed
# pass is a hiccup, a streak is a role that is not working.
FAILURES_BEFORE_UNREADY = 3


class Background:
    def __init__(self, thread_name: str) -> None:
        # Failures since the last pass that did its work, and the last one's text.
        self.failing = 0
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def ready(self) -> bool:
        """Alive, and not failing pass after pass."""
        return self.alive and self.failing < FAILURES_BEFORE_UNREADY

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """New work was committed: look now rather than at the next tick."""
        self._wake.set()

    def stop(self, timeout: float = 15.0) -> None:
        """Begin nothing new; wait up to `timeout` for the work under way."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        raise NotImplementedError
