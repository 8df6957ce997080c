"""Background jobs (apscheduler): this module only schedules.

The jobs themselves live beside what they serve, and `app.py` says which role runs
which: the relay role re-drives orders (`orders.redrive`) and alerts (`alerts.redrive`)
and purges the outbox (`outbox.purge`). The notification role's mail has a thread of its
own (`notifications.Sender`), which a recorded NOTIFY wakes at once.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Collection

from apscheduler.schedulers.background import BackgroundScheduler


def start(
    jobs: list[tuple[Callable[[], object], float]],
    at_once: Collection[Callable[[], object]] = (),
) -> BackgroundScheduler:
    """Run each (job, every seconds); a job never runs twice at once. Those `at_once`
    run first at the start (a digest missed while everything was down goes out as soon
    as a process is back), the others first after their interval."""
    scheduler = BackgroundScheduler(daemon=True)
    for job, seconds in jobs:
        first = {"next_run_time": datetime.datetime.now()} if job in at_once else {}
        scheduler.add_job(job, "interval", seconds=seconds, max_instances=1, coalesce=True, **first)
    scheduler.start()
    return scheduler
