"""The benchmark's report, from stage results made here (no benchmark runs)."""

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import report


def stage(name: str, rows: list[tuple[str, list[float]]], **more: Any) -> dict[str, Any]:
    return {
        "stage": name,
        "backend": "sqlite",
        "kafka": "embedded",
        "unit": "orders/s",
        "method": f"{name} method",
        "rows": [
            {"name": n, "median": sorted(runs)[len(runs) // 2], "runs": runs, "extra": {}}
            for n, runs in rows
        ],
        "targets": [{"what": f"{name} ratio", "value": 0.5, "target": ">= 0.80", "met": False}],
        **more,
    }


def test_report_reads_objects_lists_and_lines_and_writes_tables_and_plots(
    tmp_path: Path,
) -> None:
    e2e = stage("e2e", [("offered", [100.0]), ("applied", [98.0])], latencies_ms=[5.0, 300.0])
    intake = stage("intake", [("bare", [100.0, 200.0, 300.0]), ("Kitchen", [50.0, 60.0, 70.0])])
    processing = stage("processing", [("naive", [10.0]), ("Kitchen", [900.0])])
    scale_out = stage("scale-out", [("one", [10.0]), ("two", [16.0])])
    results = tmp_path / "results"
    results.mkdir()
    (results / "e2e.json").write_text(json.dumps(e2e))
    (results / "intake.json").write_text(json.dumps([intake]))
    (results / "processing.json").write_text(f"{json.dumps(processing)}\n{json.dumps(scale_out)}")

    stages = report.load([str(results)])
    report.write(stages, tmp_path, "python bench/run.py --smoke", "")

    assert [s["stage"] for s in stages] == ["intake", "processing", "scale-out", "e2e"]
    text = (tmp_path / "RESULTS.md").read_text()
    assert "`python bench/run.py --smoke`" in text
    # Each row beside the stage's first row (its ceiling or baseline), with every run.
    assert "| Kitchen | 60 | 0.30 | 50, 60, 70 |  |" in text
    assert "| intake (sqlite) | intake ratio | 0.5 | >= 0.80 | **no** |" in text
    for picture in ("throughput.png", "latency.png"):
        assert (tmp_path / picture).read_bytes().startswith(b"\x89PNG")


def e2e_targets(*met: bool) -> list[dict[str, Any]]:
    """A speed target, then correctness checks met or not as given."""
    speed = {"what": "p99 (ms)", "value": 900.0, "target": "<= 250", "met": False}
    checks = [
        {"what": f"check {n}", "value": n, "target": "== 0", "met": m, "correctness": True}
        for n, m in enumerate(met)
    ]
    return [speed, *checks]


def test_a_missed_speed_target_alone_fails_nothing() -> None:
    stages = [stage("intake", [("bare", [1.0])]), stage("e2e", [("offered", [1.0])])]
    stages[1]["targets"] = e2e_targets(True, True)
    assert report.failed_checks(stages) == []


def test_a_failed_correctness_check_fails_the_report_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    e2e = stage("e2e", [("offered", [100.0])], latencies_ms=[5.0])
    e2e["targets"] = e2e_targets(True, False)  # e.g. a duplicate email
    assert report.failed_checks([e2e]) == ["e2e (sqlite): check 1: 1 (target == 0)"]
    (tmp_path / "e2e.json").write_text(json.dumps(e2e))
    argv = ["report.py", str(tmp_path / "e2e.json"), "--out", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        report.main()
    # What `bench/run.py --smoke` (and so CI) sees: a non-zero exit, the reason on one line.
    assert exited.value.code == "correctness checks failed: e2e (sqlite): check 1: 1 (target == 0)"
    assert (tmp_path / "out" / "RESULTS.md").exists()  # the report is written all the same
