"""The benchmark's report, from stage results made here (no benchmark runs)."""

import json
from pathlib import Path
from typing import Any

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
