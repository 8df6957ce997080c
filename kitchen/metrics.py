"""Prometheus metrics: every metric Kitchen exports is defined here, and the places that
count call the small functions below (they never touch prometheus_client themselves).

One registry per process (`REGISTRY`). Counters add up what this process did, whichever
Kitchen in it did it (tests start several in one process: they compare before and after).
What describes the database (stock, the outbox backlog, mails waiting) is read at scrape
time by `DatabaseCollector`, registered once, here; only processes that run the relay
role report the outbox and mail gauges (the same values in each: aggregate them with max,
not sum), while `kitchen_database_up` is every process's own view.

Label values are bounded: route templates, never raw paths; a rejection's reason class,
never its text; ids, never names; no API key, email address or password is ever a label.

The per-ingredient stock gauges (`StockCollector`) read every ingredient of every
merchant, so they have a registry of their own that a scrape reads only when
`[metrics] stock_gauges` is on.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import datetime
import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import peewee as pw
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from kitchen import db
from kitchen.db import session, utcnow
from kitchen.models import Ingredient, Notification, Outbox

log = logging.getLogger(__name__)

# The `<name>_created` series of every counter and histogram double the output and no
# dashboard of ours uses them.
disable_created_metrics()

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # CPU, memory, open files of this process
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

CONTENT_TYPE = CONTENT_TYPE_LATEST

# -- orders ------------------------------------------------------------------------------

ORDERS_ACCEPTED = Counter(
    "kitchen_orders_accepted",
    "Orders saved by POST /order (an idempotent replay is not counted again).",
    registry=REGISTRY,
)
ORDERS_APPLIED = Counter(
    "kitchen_orders_applied",
    "Orders the processing role applied to the stock.",
    registry=REGISTRY,
)
ORDERS_REJECTED = Counter(
    "kitchen_orders_rejected",
    "Orders the processing role rejected, by reason class.",
    ["reason"],
    registry=REGISTRY,
)
REJECTION_REASONS = ("insufficient_stock", "unknown_product", "other")
ALERTS_RAISED = Counter(
    "kitchen_alerts_raised",
    "Low-stock alerts raised by orders (threshold crossings).",
    registry=REGISTRY,
)

# -- consumers ---------------------------------------------------------------------------

BATCH_SIZE = Histogram(
    "kitchen_batch_size",
    "Events per consumer batch or orders per intake group (one transaction each), by role.",
    ["role"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "kitchen_batch_duration_seconds",
    "Time to handle and commit one consumer batch or intake group, by role.",
    ["role"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "kitchen_consumer_lag",
    "Events not yet processed: high watermark minus committed offset, per partition this "
    "process consumes (updated after each batch, and every second when idle).",
    ["group", "topic", "partition"],
    registry=REGISTRY,
)
DEAD_LETTERED = Counter(
    "kitchen_events_dead_lettered",
    "Unusable events parked on <topic>.dlq, by the topic they were read from.",
    ["topic"],
    registry=REGISTRY,
)

# -- outbox and mail ---------------------------------------------------------------------

OUTBOX_PUBLISHED = Counter(
    "kitchen_outbox_published",
    "Outbox rows the relay published and Kafka acknowledged.",
    registry=REGISTRY,
)
EMAILS = Counter(
    "kitchen_emails",
    "Alert email attempts by outcome: sent; failed (for good: never retried); retried "
    "(this attempt failed and the mail waits for another).",
    ["outcome"],
    registry=REGISTRY,
)
EMAIL_OUTCOMES = ("sent", "failed", "retried")
PAYMENTS = Counter(
    "kitchen_payments",
    "Payments by the state they moved to (authorized, captured, voided, expired, failed, "
    "partially_refunded, refunded), and refund_failed, counted by the process that moved "
    "them (README, Payments).",
    ["outcome"],
    registry=REGISTRY,
)
PAYMENT_OUTCOMES = (
    "authorized",
    "captured",
    "voided",
    "expired",
    "failed",
    "partially_refunded",
    "refunded",
    "refund_failed",
)

# -- what an operator needs to trust the pipeline (issue 21) ------------------------------

RELAY_FAILURES = Counter(
    "kitchen_relay_failures",
    "Relay failures: delivery, an outbox row Kafka did not acknowledge (the relay sends it "
    "again); pass, a relay pass that raised (the database or the broker client failed).",
    ["kind"],
    registry=REGISTRY,
)
RELAY_FAILURE_KINDS = ("delivery", "pass")
REDRIVEN = Counter(
    "kitchen_redriven",
    "Events queued again from the database because Kafka may have lost them (the re-drive "
    "jobs, and the embedded cluster's start), by topic.",
    ["topic"],
    registry=REGISTRY,
)
SMTP_SECONDS = Histogram(
    "kitchen_smtp_send_duration_seconds",
    "One alert or digest email's SMTP exchange, connect to quit, by outcome (the outcomes "
    "of kitchen_emails_total).",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)

# -- HTTP --------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "kitchen_http_requests",
    "HTTP requests by method, route template (e.g. /order/{id}) and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "kitchen_http_request_duration_seconds",
    "HTTP request latency by method and route template, until the last byte is sent.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # the route label of a path no route matches (a 404)


def order_accepted() -> None:
    ORDERS_ACCEPTED.inc()


def orders_processed(applied: int, rejected: Mapping[str, int], alerts: int) -> None:
    """After a processing batch committed: counts it already has, no query."""
    if applied:
        ORDERS_APPLIED.inc(applied)
    for reason, n in rejected.items():
        ORDERS_REJECTED.labels(reason if reason in REJECTION_REASONS else "other").inc(n)
    if alerts:
        ALERTS_RAISED.inc(alerts)


def batch_done(role: str, size: int, seconds: float) -> None:
    BATCH_SIZE.labels(role).observe(size)
    BATCH_SECONDS.labels(role).observe(seconds)


def consumer_lag(group: str, topic: str, partition: int, lag: int) -> None:
    CONSUMER_LAG.labels(group, topic, str(partition)).set(lag)


def partitions_gone(group: str, partitions: Iterable[tuple[str, int]]) -> None:
    """This process no longer consumes these partitions: drop their lag (another process
    reports it now)."""
    for topic, partition in partitions:
        with contextlib.suppress(KeyError):
            CONSUMER_LAG.remove(group, topic, str(partition))


def dead_lettered(topic: str, n: int = 1) -> None:
    DEAD_LETTERED.labels(topic).inc(n)


def outbox_published(n: int) -> None:
    OUTBOX_PUBLISHED.inc(n)


def email(outcome: str) -> None:
    assert outcome in EMAIL_OUTCOMES, outcome
    EMAILS.labels(outcome).inc()


def relay_failure(kind: str, n: int = 1) -> None:
    assert kind in RELAY_FAILURE_KINDS, kind
    RELAY_FAILURES.labels(kind).inc(n)


def redriven(topic: str, n: int) -> None:
    """`n` events of `topic` queued again (0 still makes the series: a rule sees 0)."""
    REDRIVEN.labels(topic).inc(n)


def smtp_send(outcome: str, seconds: float) -> None:
    assert outcome in EMAIL_OUTCOMES, outcome
    SMTP_SECONDS.labels(outcome).observe(seconds)


def orders_applied_after(
    created: Iterable[datetime.datetime], committed: datetime.datetime
) -> None:
    """After a processing batch committed at `committed`: each applied order's wait since
    it was saved (its `created_at`; both naive UTC)."""
    APPLY_DELAY.observe((committed - at).total_seconds() for at in created)


def payment_outcome(outcome: str) -> None:
    assert outcome in PAYMENT_OUTCOMES, outcome
    PAYMENTS.labels(outcome).inc()


# (method, route, status) -> that request counter and latency histogram: `labels()` takes
# a lock and builds a key on every call, a cost every request paid.
_http_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in HTTP_METHODS else "other"  # bounded, as routes are
    series = _http_series.get((method, route, status))
    if series is None:
        series = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_SECONDS.labels(method, route),
        )
        _http_series[(method, route, status)] = series
    series[0].inc()
    series[1].observe(seconds)


def exposition(stock_gauges: bool = False) -> bytes:
    """The text a scrape gets, with the per-ingredient stock gauges when asked for.
    Queries the database (the collectors): call it off the event loop."""
    text = generate_latest(REGISTRY)
    return text + generate_latest(STOCK_REGISTRY) if stock_gauges else text


class DatabaseCollector(Collector):
    """Gauges read from the database at scrape time: a few indexed queries per scrape,
    nothing per order or per ingredient. An unreachable database gives
    `kitchen_database_up 0` and none of the others, rather than a failed scrape."""

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def _families(self) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "kitchen_database_up", "1 when the database answered this scrape, else 0."
            ),
            GaugeMetricFamily(
                "kitchen_outbox_backlog", "Outbox rows not yet published to Kafka (all topics)."
            ),
            GaugeMetricFamily(
                "kitchen_outbox_oldest_unsent_age_seconds",
                "Age of the oldest outbox row not yet published; 0 when none waits.",
            ),
            GaugeMetricFamily(
                "kitchen_emails_pending",
                "Alert emails recorded but neither sent nor failed for good.",
            ),
        ]

    def collect(self) -> Iterator[Metric]:
        up, backlog, oldest, pending = self._families()
        if db.database.obj is None:
            return  # nothing bound yet (a process that never opened its database)
        if not reports_database():
            # The outbox and mail gauges are the relay's to report: one reporter per
            # relay replica, not one per process. The database's answer is every one's.
            try:
                db.ping()
            except pw.DatabaseError as exc:
                log.warning("metrics: database unavailable: %s", exc)
                up.add_metric([], 0)
            else:
                up.add_metric([], 1)
            yield up
            return
        try:
            with session():
                unsent = Outbox.select().where(Outbox.sent_at.is_null())
                count = unsent.count()
                first = (
                    unsent.select(Outbox.created_at).order_by(Outbox.id).first() if count else None
                )
                waiting = (
                    Notification.select()
                    .where(Notification.sent_at.is_null(), Notification.failed_at.is_null())
                    .count()
                )
        except pw.DatabaseError as exc:
            log.warning("metrics: database unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        backlog.add_metric([], count)
        age = 0.0
        if first is not None:
            age = max(0.0, (utcnow() - first.created_at).total_seconds())
        oldest.add_metric([], age)
        pending.add_metric([], waiting)
        yield from (up, backlog, oldest, pending)


class StockCollector(Collector):
    """Each ingredient's stock and full level, labelled by ids (names are what merchants
    wrote: unbounded, and not for whoever scrapes). One query reads every ingredient of
    every merchant, so it runs only when `[metrics] stock_gauges` is on."""

    LABELS = ("merchant_id", "ingredient_id")

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def _families(self) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "kitchen_ingredient_stock_grams",
                "Stock of each ingredient, in grams.",
                labels=self.LABELS,
            ),
            GaugeMetricFamily(
                "kitchen_ingredient_full_stock_grams",
                "Par level of each ingredient (100 % for its alert threshold; the stock may "
                "stand above it), in grams.",
                labels=self.LABELS,
            ),
        ]

    def collect(self) -> Iterator[Metric]:
        stock, full = self._families()
        if db.database.obj is None:
            return
        try:
            with session():
                query: Any = (
                    Ingredient.select(
                        Ingredient.merchant, Ingredient.id, Ingredient.stock, Ingredient.full_stock
                    )
                    .order_by(Ingredient.id)
                    .tuples()
                )
                rows: list[tuple[Any, ...]] = list(query)
        except pw.DatabaseError as exc:
            log.warning("metrics: database unavailable: %s", exc)
            return  # kitchen_database_up says so
        for merchant_id, ingredient_id, grams, full_grams in rows:
            labels = [str(merchant_id), str(ingredient_id)]
            stock.add_metric(labels, grams)
            full.add_metric(labels, full_grams)
        yield from (stock, full)


class RolesCollector(Collector):
    """`kitchen_role_ready{role}`: each role this process runs, 1 when ready, read at
    scrape time from what the running Kitchens report (`report_roles`)."""

    def describe(self) -> Iterator[Metric]:
        return iter([self._family()])

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "kitchen_role_ready",
            "1 when this process's role works (its thread alive, not failing again and "
            "again), else 0; one series per role it runs (api: 1 while it serves).",
            labels=["role"],
        )

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        ready: dict[str, bool] = {}
        for reporter in list(_reporters.values()):
            # Tests run several Kitchens in one process: a role is ready if it is in each.
            for role, ok in reporter.roles().items():
                ready[role] = ready.get(role, True) and ok
        for role, ok in sorted(ready.items()):
            family.add_metric([role], 1 if ok else 0)
        yield family


@dataclasses.dataclass(frozen=True)
class _Reporter:
    roles: Callable[[], Mapping[str, bool]]
    relay: bool


# One per running Kitchen of this process (keyed by its id()): what it reports at a scrape.
_reporters: dict[int, _Reporter] = {}


def report_roles(owner: object, roles: Callable[[], Mapping[str, bool]], relay: bool) -> None:
    """From now on this process reports `roles()` as `kitchen_role_ready`, and, with
    `relay` (it drains the outbox), the outbox and mail gauges of the database."""
    _reporters[id(owner)] = _Reporter(roles, relay)


def forget_roles(owner: object) -> None:
    _reporters.pop(id(owner), None)


def reports_database() -> bool:
    return any(r.relay for r in list(_reporters.values()))


class BatchHistogram(Collector):
    """A histogram without labels that takes a batch of values under one lock: a
    processing batch observes up to 500 delays, and prometheus_client's Histogram takes
    its lock once per value (about 1.6 us each, measured: a few percent of processing)."""

    def __init__(self, name: str, documentation: str, buckets: Iterable[float]) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = [*sorted(buckets), float("inf")]
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0
        self._lock = threading.Lock()

    def observe(self, values: Iterable[float]) -> None:
        counts, total = [0] * len(self.bounds), 0.0
        for v in values:
            counts[bisect.bisect_left(self.bounds, v)] += 1  # the first bound >= v: le
            total += v
        with self._lock:
            self.counts = [a + b for a, b in zip(self.counts, counts, strict=True)]
            self.sum += total

    def describe(self) -> Iterator[Metric]:
        return iter([HistogramMetricFamily(self.name, self.documentation)])

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts, total = list(self.counts), self.sum
        cumulative = list(itertools.accumulate(counts))
        buckets = [(floatToGoString(b), c) for b, c in zip(self.bounds, cumulative, strict=True)]
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=total)


APPLY_DELAY = BatchHistogram(
    "kitchen_order_apply_delay_seconds",
    "End to end: from an order's created_at (POST /order saved it) to the commit of the "
    "processing batch that applied it. Rejected orders are not in it; a paid order's wait "
    "for its payment is.",
    (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
REGISTRY.register(APPLY_DELAY)
REGISTRY.register(DatabaseCollector())
REGISTRY.register(RolesCollector())
STOCK_REGISTRY = CollectorRegistry()
STOCK_REGISTRY.register(StockCollector())
