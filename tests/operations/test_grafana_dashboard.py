"""deploy/grafana/kitchen.json, the Grafana dashboard: Grafana does not run here, so the
test does what it would: every panel's query, variables replaced, goes to a real
Prometheus (Debian's), which must accept it; and every metric it names is one Kitchen
exports. No broker needed: this runs in both CI suites (test_prometheus.py runs the
same queries against a Prometheus scraping a split deployment)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from starlette.testclient import TestClient

from app import Kitchen
from tests.operations import grafana
from tests.operations.prometheus import Prometheus, config_for, running


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Prometheus with the example's rules and no target: it parses every query all the
    same (a query on a metric with no series answers an empty success)."""
    workdir = tmp_path_factory.mktemp("prometheus")
    token = workdir / "token"
    token.write_text("unused-token-unused-token")
    with running(workdir, config_for({}, token)) as server:
        yield server


def test_every_panel_has_a_title_a_datasource_and_a_query() -> None:
    dashboard = grafana.load()
    assert dashboard["schemaVersion"] >= 39
    [datasource] = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert datasource["query"] == "prometheus"
    found = list(grafana.panels(dashboard))
    titles = [p.get("title", "") for p in found]
    assert len(found) >= 12 and all(titles), titles
    assert len(set(titles)) == len(titles), "two panels with one title"
    for panel in found:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]
            assert target.get("datasource", panel["datasource"]) == panel["datasource"]
    # What the issue asks of it, by the metrics behind the panels.
    exprs = " ".join(t["expr"] for p in found for t in p["targets"])
    for metric in (
        "kitchen_orders_accepted_total",
        "kitchen_orders_applied_total",
        "kitchen_orders_rejected_total",
        "kitchen_order_apply_delay_seconds_bucket",
        "kitchen_http_request_duration_seconds_bucket",
        "kitchen_consumer_lag",
        "kitchen_outbox_backlog",
        "kitchen_outbox_oldest_unsent_age_seconds",
        "kitchen_emails_total",
        "kitchen_emails_pending",
        "kitchen_payments_total",
        "kitchen_ingredient_stock_grams",
        "kitchen_role_ready",
    ):
        assert metric in exprs, metric
    # Rates follow the scrape interval Grafana knows, as Grafana users write them.
    assert "[$__rate_interval]" in exprs and "[5m]" not in exprs


def test_the_stock_panels_say_they_need_stock_gauges() -> None:
    for panel in grafana.panels(grafana.load()):
        if "kitchen_ingredient_stock_grams" in str(panel["targets"]):
            assert "stock_gauges = true" in panel["description"], panel["title"]


def test_variables_are_replaced_as_grafana_does() -> None:
    values = grafana.variables(grafana.load())
    expr = 'rate(x{job=~"$job", instance=~"${instance}"}[$__rate_interval]) < $threshold'
    assert grafana.substitute(expr, values) == (
        'rate(x{job=~"kitchen-.*", instance=~".*"}[1m]) < 0.5'
    )
    with pytest.raises(AssertionError, match="unknown variable"):
        grafana.substitute("rate(x[$nope])", values)


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(kitchen_a_bucket{job=~"x"}[1m])))'
        ' / max(kitchen_b) < 0.5 or vector(0) and on (instance) up{job="kitchen-api"} * 1e3'
    )
    assert grafana.metric_names(expr) == {"kitchen_a_bucket", "kitchen_b", "up"}


def test_prometheus_accepts_every_panel_query(prometheus: Prometheus) -> None:
    queries = grafana.queries(grafana.load())
    assert len(queries) >= 20
    end = time.time()
    for _, expr in queries:
        # Prometheus.api fails the test, naming the query, unless Prometheus says success.
        prometheus.api("query", query=expr)
        prometheus.api("query_range", query=expr, start=end - 3600, end=end, step="15s")


def test_a_query_prometheus_refuses_fails(prometheus: Prometheus) -> None:
    """The check above can fail: a query Grafana would show as an error is one here."""
    with pytest.raises(AssertionError, match="bad_data"):
        prometheus.api("query", query="sum(rate(kitchen_orders_accepted_total[$__rate_interval]))")


def test_every_metric_the_dashboard_uses_is_exported(
    make_kitchen: Callable[..., Kitchen],
) -> None:
    """Against the /metrics of a Kitchen running every role with the stock gauges on:
    a metric renamed in kitchen/metrics.py and not in the dashboard fails here."""
    kitchen = make_kitchen(metrics={"stock_gauges": True})
    with TestClient(kitchen.web_app()) as api:
        r = api.get("/metrics")
    assert r.status_code == 200, r.text
    exported = grafana.exported_names(r.text) | {"up"}  # `up` is Prometheus's own
    used = set().union(*(grafana.metric_names(q) for _, q in grafana.queries(grafana.load())))
    assert used - exported == set()
    assert {"kitchen_ingredient_stock_grams", "kitchen_consumer_lag"} <= used
