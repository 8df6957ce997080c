"""Scenario figures for the closing note: one JSON line per scenario, appended to the file
named by KITCHEN_TEST_REPORT (CI prints it), and printed (see with pytest -s)."""

from __future__ import annotations

import json
import os
from typing import Any


def report(scenario: str, **figures: Any) -> None:
    line = json.dumps({"scenario": scenario, **figures})
    print(line)
    path = os.environ.get("KITCHEN_TEST_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")
