"""The benchmark's report: RESULTS.md and the plots, from the stages' JSON results.

    python bench/report.py RESULT.json|FOLDER ... [--out bench] [--command TEXT]
                           [--database URL]

Each input is a stage's result file (one JSON object, a list of them, or one per line) or
a folder of them. The first row of each stage is its ceiling or baseline: every other
row is shown with its ratio to it. Writes, into --out: RESULTS.md (the tables, the
targets, the machine, the command, the date), throughput.png (each stage's rows, bars
for the medians, points for the runs) and latency.png (the end-to-end latency
distribution, with p50, p99 and the 250 ms target marked). Exit code 1, once they are
written, if a correctness check failed (an order lost, a duplicate email, a wrong stock):
a speed target missed is only reported.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display where benchmarks run
import matplotlib.pyplot as plt
from matplotlib import ticker

ORDER = ["intake", "processing", "scale-out", "e2e"]
TARGET_MS = 250.0
TICKS_MS = (1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 30000, 60000)


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
            stages += data if isinstance(data, list) else [data]
        except json.JSONDecodeError:  # JSON lines: one stage per line
            stages += [json.loads(line) for line in text.splitlines() if line.strip()]
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(stages, key=lambda s: rank.get(s["stage"], len(ORDER)))


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


def markdown(stages: list[dict[str, Any]], about: dict[str, str], command: str) -> str:
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Benchmark results",
        "",
        f"Measured {date} with `{command}`.",
        "",
        "| machine | |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in about.items()],
        "",
        "## Targets",
        "",
        "| stage | what | measured | target | met |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for s in stages:
        for t in s.get("targets", []):
            met = "yes" if t["met"] else "**no**"
            out.append(
                f"| {s['stage']} ({s['backend']}) | {t['what']} | {number(t['value'])} "
                f"| {t['target']} | {met} |"
            )
    for s in stages:
        rows = s["rows"]
        base = rows[0]
        out += [
            "",
            f"## {s['stage']} ({s['backend']}, Kafka {s['kafka']})",
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
    out += ["", "## Plots", "", "![throughput](throughput.png)", ""]
    if any(s.get("latencies_ms") for s in stages):
        out += ["![end-to-end latency](latency.png)", ""]
    return "\n".join(out)


def throughput_plot(stages: list[dict[str, Any]], path: Path) -> None:
    """One panel per stage: a bar per row (the ceiling or baseline grey), runs as dots."""
    fig, axes = plt.subplots(1, len(stages), figsize=(4.2 * len(stages), 4.2), squeeze=False)
    for ax, s in zip(axes[0], stages, strict=True):
        names = [r["name"] for r in s["rows"]]
        colours = ["#9e9e9e"] + ["#1f77b4"] * (len(names) - 1)
        ax.bar(range(len(names)), [r["median"] for r in s["rows"]], color=colours)
        for i, r in enumerate(s["rows"]):
            ax.plot([i] * len(r["runs"]), r["runs"], "o", color="black", markersize=4)
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(s["unit"])
        ax.set_title(f"{s['stage']} ({s['backend']})", fontsize=10)
    fig.suptitle("Throughput: median (bar) and runs (dots); grey = ceiling or baseline")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency_plot(stages: list[dict[str, Any]], path: Path) -> None:
    """The CDF of every order's 201 -> applied latency, per e2e result."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for s in stages:
        values = sorted(s.get("latencies_ms") or [])
        if not values:
            continue
        n = len(values)
        p50, p99 = values[(n - 1) // 2], values[max(0, -(-99 * n // 100) - 1)]
        line = ax.plot(
            values,
            [(i + 1) / n for i in range(n)],
            label=f"{s['backend']}, Kafka {s['kafka']}: p50 {p50:.0f} ms, p99 {p99:.0f} ms",
        )[0]
        for p in (p50, p99):
            ax.axvline(p, color=line.get_color(), linestyle=":", linewidth=1)
    ax.axvline(TARGET_MS, color="red", linestyle="--", label=f"target p99 <= {TARGET_MS:g} ms")
    ax.axhline(0.99, color="grey", linewidth=0.5)
    ax.set_xscale("log")
    low, high = ax.get_xlim()
    ax.set_xticks([t for t in TICKS_MS if low <= t <= high])
    ax.xaxis.set_major_formatter(ticker.ScalarFormatter())  # 250, not 2.5 x 10^2
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("201 -> applied (ms, log scale)")
    ax.set_ylabel("fraction of orders")
    ax.set_title("End-to-end latency (dotted: p50 and p99)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def failed_checks(stages: list[dict[str, Any]]) -> list[str]:
    """The correctness checks that failed, each as one line. A speed target depends on the
    machine, so it is reported and never fails a run; a correctness check (targets marked
    `correctness`) holds at any speed, so it fails even the smoke run."""
    return [
        f"{s['stage']} ({s['backend']}): {t['what']}: {t['value']} (target {t['target']})"
        for s in stages
        for t in s.get("targets", [])
        if t.get("correctness") and not t["met"]
    ]


def write(stages: list[dict[str, Any]], out: Path, command: str, database: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    about = machine(database, stages)
    (out / "RESULTS.md").write_text(markdown(stages, about, command) + "\n")
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
