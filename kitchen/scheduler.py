"""Background jobs (apscheduler): this module only schedules.

The jobs themselves live beside what they serve, and `app.py` says which role runs
which: the relay role re-drives orders (`orders.redrive`) and alerts (`alerts.redrive`)
and purges the outbox (`outbox.purge`). The notification role's mail has a thread of its
own (`notifications.Sender`), which a recorded NOTIFY wakes at once.
"""

from __future__ import annotations

from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler


def start(jobs: list[tuple[Callable[[], object], float]]) -> BackgroundScheduler:
    """Run each (job, every seconds); a job never runs twice at once."""
    scheduler = BackgroundScheduler(daemon=True)
    for job, seconds in jobs:
        scheduler.add_job(job, "interval", seconds=seconds, max_instances=1, coalesce=True)
    scheduler.start()
    return scheduler
