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


def e2e_result(backend: str, rate: int, p99_ms: float, **targets: Any) -> dict[str, Any]:
    """An e2e result as bench/e2e.py writes it: its rate, its own p99 target."""
    e2e = stage("e2e", [("offered", [float(rate)]), ("applied", [rate * 0.99])])
    target = 100.0 if rate == 1000 else 250.0
    e2e |= {"backend": backend, "rate": rate, "target_p99_ms": target}
    e2e["latencies_ms"] = [p99_ms / 2] * 99 + [p99_ms]
    speed = [
        {
            "what": "p99 201 -> applied (ms)",
            "value": p99_ms,
            "target": f"<= {target:g}",
            "met": p99_ms <= target,
        },
    ]
    if rate == 2000:
        got = targets.get("achieved", 0.99)
        speed.append(
            {
                "what": "achieved: applied orders/s / offered",
                "value": got,
                "target": ">= 0.95",
                "met": got >= 0.95,
            }
        )
    check = {
        "what": "accepted orders settled (applied or rejected)",
        "value": 10,
        "target": ">= 10 (the 201s), none pending",
        "met": targets.get("settled", True),
        "correctness": True,
    }
    e2e["targets"] = [*speed, check]
    return e2e


def both_backends() -> list[dict[str, Any]]:
    """What a default `bench/run.py` writes: SQLite and PostgreSQL, e2e at two rates."""
    results = [
        stage("intake", [("bare", [100.0]), ("api", [70.0]), ("all", [55.0])]),
        stage("intake", [("bare", [100.0]), ("api", [30.0]), ("all", [20.0])]),
        stage("processing", [("naive", [10.0]), ("Kitchen", [2000.0])]),
        stage("scale-out", [("one", [10.0]), ("two", [16.0])]),
        # SQLite: both rates met; PostgreSQL: 1,000/s too slow, 2,000/s short of 0.95.
        e2e_result("sqlite", 1000, 80.0),
        e2e_result("sqlite", 2000, 200.0),
        e2e_result("postgresql", 1000, 140.0),
        e2e_result("postgresql", 2000, 240.0, achieved=0.9),
    ]
    for r in results[1:4]:
        r["backend"] = "postgresql"
    return results


def test_the_report_shows_each_backend_and_rate_with_its_own_targets(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    for r in both_backends():
        name = f"{r['stage']}-{r['backend']}{'-' + str(r['rate']) if 'rate' in r else ''}"
        (results / f"{name}.json").write_text(json.dumps(r))

    stages = report.load([str(results)])
    report.write(stages, tmp_path, "python bench/run.py", "")

    # Stage order, SQLite before PostgreSQL, the slower rate first.
    assert [report.label(s) for s in stages] == [
        "intake (sqlite)",
        "intake (postgresql)",
        "processing (postgresql)",
        "scale-out (postgresql)",
        "e2e (sqlite, 1,000 orders/s)",
        "e2e (sqlite, 2,000 orders/s)",
        "e2e (postgresql, 1,000 orders/s)",
        "e2e (postgresql, 2,000 orders/s)",
    ]
    text = (tmp_path / "RESULTS.md").read_text()
    targets = text.split("## Targets")[1].split("## Correctness checks")[0]
    # Every e2e result's speed targets, each against its own figure.
    for row in (
        "| e2e (sqlite, 1,000 orders/s) | p99 201 -> applied (ms) | 80 | <= 100 | yes |",
        "| e2e (sqlite, 2,000 orders/s) | p99 201 -> applied (ms) | 200 | <= 250 | yes |",
        "| e2e (sqlite, 2,000 orders/s) | achieved: applied orders/s / offered | 0.99 | >= 0.95 "
        "| yes |",
        "| e2e (postgresql, 1,000 orders/s) | p99 201 -> applied (ms) | 140 | <= 100 | **no** |",
        "| e2e (postgresql, 2,000 orders/s) | p99 201 -> applied (ms) | 240 | <= 250 | yes |",
        "| e2e (postgresql, 2,000 orders/s) | achieved: applied orders/s / offered | 0.9 "
        "| >= 0.95 | **no** |",
    ):
        assert row in targets
    assert "accepted orders settled" not in targets  # correctness has a table of its own
    checks = text.split("## Correctness checks")[1].split("## intake")[0]
    assert checks.count("| accepted orders settled (applied or rejected) |") == 4
    # A section per result, none merged with another.
    for heading in (
        "## e2e (sqlite, Kafka embedded, 1,000 orders/s)",
        "## e2e (postgresql, Kafka embedded, 2,000 orders/s)",
        "## intake (postgresql, Kafka embedded)",
    ):
        assert text.count(heading) == 1
    for picture in ("throughput.png", "latency.png"):
        assert (tmp_path / picture).read_bytes().startswith(b"\x89PNG")
    # A missed speed target fails nothing.
    assert report.failed_checks(stages) == []


def test_one_e2e_result_of_four_with_a_correctness_miss_fails_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = both_backends()
    results[6] = e2e_result("postgresql", 1000, 80.0, settled=False)  # an order lost
    for i, r in enumerate(results):
        (tmp_path / f"{i}.json").write_text(json.dumps(r))
    monkeypatch.setattr(sys, "argv", ["report.py", str(tmp_path), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as exited:
        report.main()
    assert exited.value.code == (
        "correctness checks failed: e2e (postgresql, 1,000 orders/s): accepted orders "
        "settled (applied or rejected): 10 (target >= 10 (the 201s), none pending)"
    )
    assert "| **no** |" in (tmp_path / "o" / "RESULTS.md").read_text().split("## intake")[0]
