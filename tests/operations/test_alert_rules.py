"""The alert rules (deploy/prometheus/kitchen-rules.yml) against promtool, Prometheus's own
checker: the rules load, and their unit tests (kitchen-rules.test.yml) pass. Each alert has
tests that see it fire and stay quiet, and a README entry its `runbook` annotation points
at. Debian's `prometheus` package brings promtool; .ci/run installs it, so a missing
promtool fails here rather than skipping."""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "kitchen-rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "kitchen-rules.test.yml"
README = ROOT / "README.md"
SEVERITIES = {"page", "ticket"}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: install Debian's prometheus package "
            "(apt-get install prometheus), as .ci/run does"
        )
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, check=False
    )


def shown(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def readme_alerts_section() -> str:
    """README's "### Alerts", up to the next `##` or `###` heading."""
    text = README.read_text()
    match = re.search(r"^### Alerts\n(.*?)(?=^#{2,3} )", text, re.M | re.S)
    assert match, 'README has no "### Alerts" section followed by another section'
    return match.group(1)


def test_promtool_accepts_the_rules(promtool: str) -> None:
    result = run(promtool, "check", "rules", RULES)
    assert result.returncode == 0, shown(result)
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout, shown(result)


def test_the_rules_pass_their_unit_tests(promtool: str) -> None:
    result = run(promtool, "test", "rules", RULE_TESTS)
    assert result.returncode == 0, shown(result)
    assert "SUCCESS" in result.stdout, shown(result)


def test_a_wrong_expectation_fails_the_unit_tests(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: the same tests expecting one alert's severity wrong."""
    shutil.copy(RULES, tmp_path / RULES.name)
    text = RULE_TESTS.read_text()
    wrong = 'exp_labels: {severity: ticket, job: kitchen-processing, instance: "p1:9100"}'
    right = wrong.replace("ticket", "page")
    assert right in text
    (tmp_path / RULE_TESTS.name).write_text(text.replace(right, wrong))
    result = run(promtool, "test", "rules", tmp_path / RULE_TESTS.name)
    assert result.returncode != 0, shown(result)
    assert "alertname: KitchenDatabaseDown, time: 7m" in result.stdout + result.stderr, shown(
        result
    )


def test_every_alert_says_how_long_how_bad_what_and_where_to_read() -> None:
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names)), names
    for rule in alerts():
        name = rule["alert"]
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), f"{name}: no `for:`"
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        notes = rule.get("annotations", {})
        assert notes.get("summary") and notes.get("description"), name
        assert notes.get("runbook") == f"README.md#{name.lower()}", name


def test_every_alert_has_unit_tests_that_see_it_fire_and_stay_quiet() -> None:
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for rule in alerts():
        name = rule["alert"]
        mine = [case for case in cases if case["alertname"] == name]
        firing = [alert for case in mine for alert in case.get("exp_alerts") or []]
        assert firing, f"{name}: no unit test sees it fire"
        assert any(not case.get("exp_alerts") for case in mine), f"{name}: never seen quiet"
        for alert in firing:
            # promtool compares the whole of both: these make it check the text too.
            assert alert["exp_labels"]["severity"] == rule["labels"]["severity"], name
            assert set(alert.get("exp_annotations", {})) == set(rule["annotations"]), name


def test_every_alert_has_a_readme_entry() -> None:
    section = readme_alerts_section()
    headings = re.findall(r"^#### (\S+)$", section, re.M)
    assert headings == [rule["alert"] for rule in alerts()], "README entries, in the rules' order"
    assert "rule_files" in section, "README says how to load the rules"


def test_every_metric_the_rules_read_is_one_kitchen_exports() -> None:
    """A rule that names a metric nobody exports never fires: the names and the outcomes
    the rules read are the ones kitchen/metrics.py defines."""
    from kitchen import metrics

    families = [*metrics.REGISTRY.collect(), *metrics.DatabaseCollector().describe()]
    exported = {f.name + ("_total" if f.type == "counter" else "") for f in families}
    exprs = [rule["expr"] for rule in alerts()]
    read = {name for expr in exprs for name in re.findall(r"\bkitchen_[a-z_]+", expr)}
    assert read - exported == set()
    outcomes = {
        "kitchen_emails_total": set(metrics.EMAIL_OUTCOMES),
        "kitchen_payments_total": set(metrics.PAYMENT_OUTCOMES),
    }
    for name, known in outcomes.items():
        matchers = [m for expr in exprs for m in re.findall(name + r'\{outcome=~?"([^"]+)"', expr)]
        assert matchers, name
        assert {o for m in matchers for o in m.split("|")} <= known, name
