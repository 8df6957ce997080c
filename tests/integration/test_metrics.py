"""GET /metrics: the numbers move with what Kitchen does, and nothing secret is in them.

Counters are per process and tests share one process, so each test compares a scrape
before with scrapes after.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import merchants, metrics
from kitchen.db import session
from kitchen.events import Received
from kitchen.kafka import ConsumerWorker, ensure_topics, producer_config
from kitchen.models import Ingredient
from kitchen.payments import Cycle
from tests.helpers import REAL_KAFKA, Seeded, SmtpServer, eventually
from tests.paid_orders import paid_order, seed_kitchen

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when the series does not exist yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of every series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@pytest.fixture
def kitchen(make_kitchen: Callable[..., Kitchen]) -> Kitchen:
    """An all-roles development Kitchen with the per-ingredient stock gauges on."""
    return make_kitchen(metrics={"stock_gauges": True})


def test_orders_stock_outbox_and_mail_move_the_numbers(
    kitchen: Kitchen, api: TestClient, seeded: Seeded, smtp: SmtpServer
) -> None:
    before = scrape(api)  # development, no token set: open
    placed = [
        api.post("/order", json=seeded.order(q)).json()["id"]
        # 2 + 24 burgers take onion from 1000 g to 480 g (below 50 %: one alert email);
        # 1000 burgers need more beef than there is: rejected.
        for q in (2, 24, 1000)
    ]

    def statuses() -> list[str]:
        return [api.get(f"/order/{o}").json()["status"] for o in placed]

    eventually(lambda: "pending" not in statuses())
    assert statuses() == ["applied", "applied", "rejected"]
    eventually(lambda: len(smtp.messages) == 1)

    def settled() -> Samples | None:
        """A scrape once the mail is counted and the outbox is empty again."""
        s = scrape(api)
        sent = total(s, "kitchen_emails_total", outcome="sent")
        done = sent > total(before, "kitchen_emails_total", outcome="sent")
        return s if done and value(s, "kitchen_outbox_backlog") == 0 else None

    after: Samples = eventually(settled)

    def grew(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert grew("kitchen_orders_accepted_total") == 3
    assert grew("kitchen_orders_applied_total") == 2
    assert grew("kitchen_orders_rejected_total", reason="insufficient_stock") == 1
    assert grew("kitchen_orders_rejected_total") == 1
    assert grew("kitchen_alerts_raised_total") == 1
    assert grew("kitchen_emails_total", outcome="sent") == 1
    assert grew("kitchen_emails_total", outcome="failed") == 0
    assert grew("kitchen_outbox_published_total") >= 4  # 3 ORDER_CREATED, 1 NOTIFY
    assert grew("kitchen_batch_size_sum", role="processing") >= 3
    assert grew("kitchen_batch_duration_seconds_count", role="processing") >= 1

    with session():
        onion = Ingredient.get(
            Ingredient.merchant == kitchen.merchant_id, Ingredient.name == "onion"
        )
    labels = {"merchant_id": str(kitchen.merchant_id), "ingredient_id": str(onion.id)}
    assert value(after, "kitchen_ingredient_stock_grams", **labels) == onion.stock == 480
    assert value(after, "kitchen_ingredient_full_stock_grams", **labels) == 1000
    assert value(after, "kitchen_outbox_oldest_unsent_age_seconds") == 0
    assert value(after, "kitchen_emails_pending") == 0
    assert value(after, "kitchen_database_up") == 1

    # Requests by route template, never by raw path; a path nothing matches is bounded.
    assert api.get("/no/such/path").status_code == 404
    samples = scrape(api)
    assert total(samples, "kitchen_http_requests_total", route="/order", status="201") >= 3
    assert total(samples, "kitchen_http_requests_total", route="/order/{id}", status="200") >= 3
    assert total(samples, "kitchen_http_requests_total", route="unmatched", status="404") >= 1
    assert total(samples, "kitchen_http_request_duration_seconds_count", route="/order") >= 3
    routes = {dict(ls).get("route") for n, ls in samples if n == "kitchen_http_requests_total"}
    assert not {r for r in routes if r and r[-1].isdigit()}, routes

    # Consumer lag per partition of this test's groups: everything is processed.
    k = kitchen.settings.kafka

    def lags() -> dict[str, float]:
        s = scrape(api)
        return {
            group: total(s, "kitchen_consumer_lag", group=group)
            for group in (k.processing_group, k.notification_group)
            if any(n == "kitchen_consumer_lag" and ("group", group) in ls for n, ls in s)
        }

    eventually(lambda: lags() == {k.processing_group: 0, k.notification_group: 0})
    series = [
        dict(ls)
        for n, ls in scrape(api)
        if n == "kitchen_consumer_lag" and ("group", k.processing_group) in ls
    ]
    assert all(s["topic"] == k.order_created_topic and s["partition"].isdigit() for s in series)


def test_payments_are_counted_by_the_state_they_moved_to(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    """kitchen_payments_total{outcome}: one count per move of a payment, whoever moved it;
    a repeated event that moves nothing is not counted again."""
    # Only the API: no payments role to capture on its own, the test moves the payments.
    kitchen = make_kitchen("api")
    cycle = Cycle.of(kitchen.settings)
    merchant = kitchen.merchant_id
    seeded = seed_kitchen(kitchen)
    with TestClient(kitchen.web_app()) as api:
        before = scrape(api)
        paid = paid_order(kitchen, seeded, 2)  # its hold authorized
        assert not cycle.authorized(merchant, paid.payment_id)  # the webhook delivered twice
        assert cycle.captured(merchant, paid.payment_id, paid.amount)
        assert not cycle.captured(merchant, paid.payment_id, paid.amount)
        for amount in (1000, paid.amount - 1000):
            refund = cycle.request_refund(merchant, paid.order_id, amount, False, None)
            assert cycle.refunded(merchant, refund.id, f"re_{amount}")
        declined = paid_order(kitchen, seeded, 1, authorize=False)
        assert cycle.declined(merchant, declined.payment_id, "Your card was declined.")
        after = scrape(api)

    grown = {
        outcome: total(after, "kitchen_payments_total", outcome=outcome)
        - total(before, "kitchen_payments_total", outcome=outcome)
        for outcome in metrics.PAYMENT_OUTCOMES
    }
    assert grown == {
        "authorized": 1,
        "captured": 1,
        "voided": 0,
        "expired": 0,
        "failed": 1,
        "partially_refunded": 1,
        "refunded": 1,
        "refund_failed": 0,
    }
    assert paid.payment().status == "refunded"
    assert declined.payment().status == "failed"


def test_lag_counts_the_events_a_failing_consumer_has_not_done(bootstrap: str) -> None:
    """A consumer that keeps failing its batch commits nothing: the lag says how many
    events wait, and drops to 0 once they are done. A consumer that stops drops its
    partitions' lag (another consumer reports them)."""
    topic = f"events-{uuid.uuid4().hex[:8]}"
    group = f"g-{topic}"
    if REAL_KAFKA:
        ensure_topics(bootstrap, [topic], 6)
    outage = threading.Event()
    outage.set()

    def handler(batch: list[Received[bytes]]) -> list[tuple[Received[bytes], str]]:
        if outage.is_set():
            raise ConnectionError("database down")
        return []

    producer = Producer(producer_config(bootstrap))
    for n in range(5):
        producer.produce(topic, b"x%d" % n, key=b"one partition")
    assert producer.flush(10) == 0
    worker = ConsumerWorker("test", bootstrap, group, [topic], lambda v: v or b"", handler)
    worker.start()
    try:
        eventually(lambda: lag_of(group) == 5)
        outage.clear()
        eventually(lambda: worker.processed == 5)
        eventually(lambda: lag_of(group) == 0)
        assert series_of(group), "the lag of each partition owned, 0 when nothing waits"
    finally:
        worker.stop()
    assert not series_of(group)


def lag_of(group: str) -> float:
    return sum(v for labels, v in series_of(group).items())


def series_of(group: str) -> dict[tuple[str, str], float]:
    samples = text_string_to_metric_families(metrics.exposition().decode())
    return {
        (s.labels["topic"], s.labels["partition"]): s.value
        for family in samples
        for s in family.samples
        if s.name == "kitchen_consumer_lag" and s.labels["group"] == group
    }


TOKEN = "scrape-token-0123456789abcdef"


def test_production_metrics_need_the_scrape_token(
    make_kitchen: Callable[..., Kitchen], caplog: pytest.LogCaptureFixture
) -> None:
    """Without a token set, production answers 401 to every scrape (a merchant's key is
    not the token) and says so once at start; with one, only that token gets in, and
    what it gets holds no name, key or address."""
    with caplog.at_level(logging.WARNING, logger="kitchen"):
        closed = make_kitchen("api", app={"env": "production"})
    warnings = [r.getMessage() for r in caplog.records if "metrics.token" in r.getMessage()]
    assert warnings == [
        "metrics.token is not set: GET /metrics answers 401 to every scrape; set "
        "KITCHEN_METRICS_TOKEN and give Prometheus the same token"
    ]
    merchant, key = merchants.create("Chez Ada", "ada@example.com")
    with TestClient(closed.web_app()) as client:
        bearer = {"Authorization": f"Bearer {key}"}
        created = client.post("/ingredients", json={"name": "onion", "stock": 1000}, headers=bearer)
        assert created.status_code == 201
        for headers in ({}, bearer, {"Authorization": f"Bearer {TOKEN}"}):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert "KITCHEN_METRICS_TOKEN" in refused.json()["detail"]

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kitchen"):
        guarded = make_kitchen("api", app={"env": "production"}, metrics={"token": TOKEN})
    assert not [r for r in caplog.records if "metrics.token" in r.getMessage()]
    with TestClient(guarded.web_app()) as client:
        wrong: list[list[tuple[bytes, bytes]]] = [
            [],
            [(b"authorization", TOKEN.encode())],  # no scheme
            [(b"authorization", f"Basic {TOKEN}".encode())],
            [(b"authorization", f"Bearer {TOKEN[:-1]}".encode())],
            [(b"authorization", f"Bearer {key}".encode())],
            # Not ASCII: compared as bytes, so a 401, not a 500.
            [(b"authorization", "Bearer caf\u00e9-\u00ff".encode("latin-1"))],
        ]
        for sent in wrong:
            assert client.get("/metrics", headers=sent).status_code == 401, sent
        response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200
        text: Any = response.text
    assert key not in text and "Bearer" not in text and TOKEN not in text
    assert "@" not in text  # no email address (alert addresses, the sender)
    assert "Chez Ada" not in text and "onion" not in text and "default" not in text
    assert "kitchen_ingredient_stock_grams" not in text  # off unless stock_gauges
    assert 'kitchen_http_requests_total{method="GET",route="/metrics",status="401"}' in text
    assert 'kitchen_http_requests_total{method="GET",route="/ingredients",status="201"}' not in (
        text
    )
    assert merchant.id


def test_a_token_set_in_development_is_required_too(make_kitchen: Callable[..., Kitchen]) -> None:
    kitchen = make_kitchen("api", metrics={"token": TOKEN})
    with TestClient(kitchen.web_app()) as client:
        assert client.get("/metrics").status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/metrics", headers=auth).status_code == 200


def test_a_scrape_reads_no_ingredient_unless_stock_gauges_are_on(
    make_kitchen: Callable[..., Kitchen], caplog: pytest.LogCaptureFixture
) -> None:
    """Stock gauges read every ingredient of every merchant: only when asked for, and
    then labelled by ids, never by the names merchants wrote."""
    plain = make_kitchen("api")
    gauged = make_kitchen("api", metrics={"stock_gauges": True})
    ada, _ = merchants.create("Chez Ada", "ada@example.com")
    with session():
        onion = Ingredient.create(merchant=ada.id, name="onion", stock=480, full_stock=1000)
    table = Ingredient._meta.table_name

    def scrape_sql(k: Kitchen) -> tuple[str, list[str]]:
        caplog.clear()
        with TestClient(k.web_app()) as client, caplog.at_level(logging.DEBUG, logger="peewee"):
            response = client.get("/metrics")
        assert response.status_code == 200
        return response.text, [str(r.msg) for r in caplog.records if r.name == "peewee"]

    text, queries = scrape_sql(plain)
    assert queries, "the database gauges are read at scrape time"
    assert not [q for q in queries if f'"{table}"' in q], queries
    assert "kitchen_ingredient" not in text

    text, queries = scrape_sql(gauged)
    assert [q for q in queries if f'"{table}"' in q]
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    labels = {"merchant_id": str(ada.id), "ingredient_id": str(onion.id)}
    assert value(samples, "kitchen_ingredient_stock_grams", **labels) == 480
    assert value(samples, "kitchen_ingredient_full_stock_grams", **labels) == 1000
    stock_labels = {frozenset(dict(ls)) for n, ls in samples if n.startswith("kitchen_ingredient_")}
    assert stock_labels == {frozenset({"merchant_id", "ingredient_id"})}
    assert "onion" not in text and "Chez Ada" not in text
