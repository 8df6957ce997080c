"""The benchmark's report: RESULTS.md and the plots, from the stages' JSON results.

    python bench/report.py RESULT.json|FOLDER ... [--out bench] [--command TEXT]
                           [--database URL]

Each input is a stage's result file (one JSON object, a list of them, or one per line) or
a folder of them: any stages, on any backends, e2e at any rates, each shown on its own
(in stage order, SQLite before PostgreSQL, slower rate first). The first row of each
stage is its ceiling or baseline: every other row is shown with its ratio to it. Writes,
into --out: RESULTS.md (every target, then a table per stage, backend and rate, the
machine, the command, the date), throughput.png (a panel per stage result: bars for the
medians, points for the runs) and latency.png (a panel per e2e result: its latency
distribution, with p50, p99 and its own p99 target marked). Exit code 1, once they are
written, if a correctness check failed (an order lost, a duplicate email, a wrong stock):
a speed target missed is only reported.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display where benchmarks run
import matplotlib.pyplot as plt
from matplotlib import ticker

ORDER = ["intake", "processing", "scale-out", "e2e"]
BACKENDS = ["sqlite", "postgresql"]
TARGET_MS = 250.0  # an e2e result's p99 target when it names none (older results)
TICKS_MS = (1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000, 10000, 30000, 60000)


def load(paths: list[str]) -> list[dict[str, Any]]:
    """Every stage result in `paths`, in the benchmark's stage order."""
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(p.glob("*.json")) if p.is_dir() else [p]
    stages: list[dict[str, Any]] = []
    for f in files:
        text = f.read_text().strip()
        try:
            data = json.loads(text)
            found = data if isinstance(data, list) else [data]
        except json.JSONDecodeError:  # JSON lines: one stage per line
            found = [json.loads(line) for line in text.splitlines() if line.strip()]
        written = datetime.datetime.fromtimestamp(f.stat().st_mtime, datetime.UTC)
        stages += [{**stage, "_written": written} for stage in found]
    rank = {name: i for i, name in enumerate(ORDER)}
    backend = {name: i for i, name in enumerate(BACKENDS)}
    return sorted(
        stages,
        key=lambda s: (
            rank.get(s["stage"], len(ORDER)),
            backend.get(s["backend"], len(BACKENDS)),
            s.get("rate", 0),
        ),
    )


def label(stage: dict[str, Any], kafka: bool = False) -> str:
    """A stage result's name: "intake (sqlite)", "e2e (postgresql, 2,000 orders/s)", with
    its Kafka too when asked."""
    about = [stage["backend"]]
    about += [f"Kafka {stage['kafka']}"] if kafka else []
    about += [f"{stage['rate']:,} orders/s"] if stage.get("rate") else []
    return f"{stage['stage']} ({', '.join(about)})"


def machine(database: str, stages: list[dict[str, Any]]) -> dict[str, str]:
    """What the figures were measured on."""
    cpu = "unknown CPU"
    memory = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        kib = int(Path("/proc/meminfo").read_text().split()[1])  # MemTotal, first line
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    kafka = sorted({s.get("kafka", "?") for s in stages})
    return {
        "CPU": f"{cpu}, {os.cpu_count()} cores",
        "RAM": memory,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "PostgreSQL": postgres_version(database),
        "Kafka": ", ".join(kafka) or "not used",
    }


def postgres_version(url: str) -> str:
    if not url.startswith("postgres"):
        return "not used"
    import psycopg2

    try:
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("SHOW server_version")
            row = cur.fetchone()
        conn.close()
        return f"PostgreSQL {row[0] if row else '?'}"
    except psycopg2.Error as exc:
        return f"unknown ({str(exc).strip().splitlines()[0]})"


def number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if value != value:  # NaN: nothing was measured
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}".rstrip("0").rstrip(".")


def markdown(
    stages: list[dict[str, Any]], about: dict[str, str], command: str, analysis: str = ""
) -> str:
    # When the last stage finished (its result file's time), not when the report is made.
    finished = max((s["_written"] for s in stages if "_written" in s), default=None)
    at = finished or datetime.datetime.now(datetime.UTC)
    date = at.strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Benchmark results",
        "",
        f"Measured {date} with `{command}`.",
        "",
        "| machine | |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in about.items()],
        "",
    ]
    # Speed targets (reported), then the correctness checks (a miss fails the run).
    for title, correctness in (("Targets", False), ("Correctness checks", True)):
        rows = [
            f"| {label(s)} | {t['what']} | {number(t['value'])} | {t['target']} | "
            f"{'yes' if t['met'] else '**no**'} |"
            for s in stages
            for t in s.get("targets", [])
            if bool(t.get("correctness")) == correctness
        ]
        if rows:
            out += [f"## {title}", "", "| stage | what | measured | target | met |"]
            out += ["| --- | --- | ---: | --- | --- |", *rows, ""]
    if analysis:
        # Written by whoever ran the benchmark, after the run: what stops each target missed.
        out += [analysis.strip(), ""]
    for s in stages:
        rows = s["rows"]
        base = rows[0]
        out += [
            f"## {label(s, kafka=True)}",
            "",
            f"{s['method']}. First row: the ceiling or baseline the others are measured against.",
            "",
            f"| {s['unit']} | median | vs {base['name']} | runs | more |",
            "| --- | ---: | ---: | --- | --- |",
        ]
        for r in rows:
            ratio = "" if r is base or not base["median"] else f"{r['median'] / base['median']:.2f}"
            runs = ", ".join(number(v) for v in r["runs"])
            extra = ", ".join(f"{k} {number(v)}" for k, v in r.get("extra", {}).items())
            out.append(f"| {r['name']} | {number(r['median'])} | {ratio} | {runs} | {extra} |")
        out.append("")
    out += ["## Plots", "", "![throughput](throughput.png)", ""]
    if any(s.get("latencies_ms") for s in stages):
        out += ["![end-to-end latency](latency.png)", ""]
    return "\n".join(out)


def grid(count: int, columns: int, size: tuple[float, float]) -> tuple[Any, list[Any]]:
    """A figure of `count` panels, `columns` a row at most; the panels, the unused hidden."""
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(size[0] * columns, size[1] * rows), squeeze=False
    )
    panels = [ax for row in axes for ax in row]
    for ax in panels[count:]:
        ax.set_visible(False)
    return fig, panels[:count]


def throughput_plot(stages: list[dict[str, Any]], path: Path) -> None:
    """One panel per stage result, 4 a row: a bar per row (the ceiling or baseline grey),
    runs as dots."""
    fig, panels = grid(len(stages), 4, (4.2, 4.4))
    for ax, s in zip(panels, stages, strict=True):
        names = [textwrap.fill(r["name"], 16) for r in s["rows"]]
        colours = ["#9e9e9e"] + ["#1f77b4"] * (len(names) - 1)
        ax.bar(range(len(names)), [r["median"] for r in s["rows"]], color=colours)
        for i, r in enumerate(s["rows"]):
            ax.plot([i] * len(r["runs"]), r["runs"], "o", color="black", markersize=4)
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=7)
        ax.set_ylabel(s["unit"])
        ax.set_title(label(s), fontsize=10)
    fig.suptitle("Throughput: median (bar) and runs (dots); grey = ceiling or baseline")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency_plot(stages: list[dict[str, Any]], path: Path) -> None:
    """One panel per e2e result (a row per backend, a column per rate, one x axis): the
    CDF of every order's 201 -> applied latency, its p50 and p99, its own p99 target."""
    e2e = [s for s in stages if s.get("latencies_ms")]
    rates = sorted({s.get("rate", 0) for s in e2e})
    fig, panels = grid(len(e2e), len(rates), (5.5, 3.6))
    shared = None
    for ax, s in zip(panels, e2e, strict=True):
        if shared is None:
            shared = ax
        else:
            ax.sharex(shared)
        values = sorted(s["latencies_ms"])
        n = len(values)
        p50, p99 = values[(n - 1) // 2], values[max(0, -(-99 * n // 100) - 1)]
        target = float(s.get("target_p99_ms", TARGET_MS))
        ax.plot(values, [(i + 1) / n for i in range(n)], color="#1f77b4")
        ax.axvline(p50, color="#1f77b4", linestyle=":", linewidth=1, label=f"p50 {p50:.0f} ms")
        ax.axvline(p99, color="black", linestyle=":", linewidth=1, label=f"p99 {p99:.0f} ms")
        # Met or not as the result's targets say (the median of the runs' p99s).
        said = {t["what"].split(":")[0].split(" ")[0]: t for t in s.get("targets", [])}
        met = said["p99"]["met"] if "p99" in said else p99 <= target
        text = f"target p99 <= {target:g} ms ({'met' if met else 'missed'})"
        if "achieved" in said:
            got = said["achieved"]
            text += f"\nachieved {number(got['value'])}, target {got['target']}"
        ax.axvline(target, color="red", linestyle="--", label=text)
        ax.axhline(0.99, color="grey", linewidth=0.5)
        ax.set_xscale("log")
        ax.set_title(label(s, kafka=True), fontsize=9)
        ax.set_xlabel("201 -> applied (ms, log scale)", fontsize=8)
        ax.set_ylabel("fraction of orders", fontsize=8)
        ax.legend(fontsize=7, loc="best")  # a slow run fills the lower right
    if shared is not None:
        # Every panel shares this axis: the ticks once the whole range is known.
        low, high = shared.get_xlim()
        shared.set_xticks([t for t in TICKS_MS if low <= t <= high])
        shared.xaxis.set_major_formatter(ticker.ScalarFormatter())  # 250, not 2.5 x 10^2
        shared.xaxis.set_minor_formatter(ticker.NullFormatter())
    fig.suptitle("End-to-end latency per backend and rate (dotted: p50, p99; dashed: target)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def failed_checks(stages: list[dict[str, Any]]) -> list[str]:
    """The correctness checks that failed, each as one line. A speed target depends on the
    machine, so it is reported and never fails a run; a correctness check (targets marked
    `correctness`) holds at any speed, so it fails even the smoke run."""
    return [
        f"{label(s)}: {t['what']}: {t['value']} (target {t['target']})"
        for s in stages
        for t in s.get("targets", [])
        if t.get("correctness") and not t["met"]
    ]


def write(stages: list[dict[str, Any]], out: Path, command: str, database: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    about = machine(database, stages)
    # The analysis of the run, when one sits beside the report (bench/analysis.md).
    analysis = out / "analysis.md"
    text = analysis.read_text() if analysis.exists() else ""
    (out / "RESULTS.md").write_text(markdown(stages, about, command, text) + "\n")
    throughput_plot(stages, out / "throughput.png")
    if any(s.get("latencies_ms") for s in stages):
        latency_plot(stages, out / "latency.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("inputs", nargs="+", help="stage result files or folders of them")
    parser.add_argument("--out", default=str(Path(__file__).parent), help="default: bench/")
    parser.add_argument("--command", default="", help="the command that measured, as shown")
    parser.add_argument("--database", default="", help="PostgreSQL URL, to report its version")
    args = parser.parse_args()
    stages = load(args.inputs)
    if not stages:
        raise SystemExit("no stage results in " + " ".join(args.inputs))
    write(stages, Path(args.out), args.command or "python bench/run.py", args.database)
    print(f"wrote {Path(args.out) / 'RESULTS.md'} and its plots")
    failed = failed_checks(stages)
    if failed:
        raise SystemExit(f"correctness checks failed: {'; '.join(failed)}")


if __name__ == "__main__":
    main()
