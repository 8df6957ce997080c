"""The Grafana dashboard deploy/grafana/kitchen.json as Grafana would run it: its panels'
queries with Grafana's variables replaced, and the metric names they use. A plain
module that tests import."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "kitchen.json"

# What Grafana puts in place of its built-in variables on a one-hour view with a 15 s
# scrape interval.
BUILT_IN = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
# A metric name in PromQL: a name not followed by `(` (a function) nor inside quotes or
# braces (a label value or matcher), and not a keyword.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
KEYWORDS |= {"and", "or", "unless", "inf", "nan"}
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data (rows are only headings), nested in rows or not."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def variables(dashboard: dict[str, Any]) -> dict[str, str]:
    """Each template variable's value as Grafana sends it when "All" (or its current
    value) is chosen: the variable's allValue, else the regex `.*`."""
    values = dict(BUILT_IN)
    for var in dashboard["templating"]["list"]:
        if var["type"] == "datasource":
            continue
        if var.get("includeAll"):
            values[var["name"]] = var.get("allValue") or ".*"
        else:
            values[var["name"]] = str(var["current"]["value"])
    return values


def substitute(expr: str, values: dict[str, str]) -> str:
    """`expr` with every $name and ${name} replaced; an unknown variable fails."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"{expr}: unknown variable ${name}"
        return values[name]

    return VARIABLE.sub(value, expr)


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable (its
    label_values(<expr>, label) as <expr>), variables replaced."""
    values = variables(dashboard)
    found = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            where = f"panel {panel['title']!r} target {target['refId']}"
            found.append((where, substitute(target["expr"], values)))
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            definition = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", definition.strip())
            assert match, f"variable {var['name']}: {definition}"
            found.append((f"variable {var['name']}", substitute(match.group(1), values)))
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects (not functions, labels or label values)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # no label values
    bare = re.sub(r"\{[^}]*\}", "", bare)  # no matchers
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # no ranges
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    names = set()
    for match in NAME.finditer(bare):
        after = bare[match.end() :].lstrip()
        name = match.group()
        if after.startswith("(") or name.lower() in KEYWORDS:
            continue
        # A number such as 0.95 or 1e3 is no name: NAME cannot start with a digit, but its
        # tail (`e3`) could follow one.
        if match.start() > 0 and (
            bare[match.start() - 1].isdigit() or bare[match.start() - 1] == "."
        ):
            continue
        names.add(name)
    return names


def exported_names(exposition: str) -> set[str]:
    """Every series name a /metrics text can hold, from its # TYPE lines (present even
    for a labelled metric with no series yet): a histogram's _bucket, _sum and _count."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            elif kind == "summary":
                names |= {name, f"{name}_sum", f"{name}_count"}
            else:
                names.add(name)
    return names
