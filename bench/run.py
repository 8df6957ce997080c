"""The benchmark, in one command: start what it needs, run every stage, write the report.

    python bench/run.py                      # PostgreSQL + a Kafka broker, started here
    python bench/run.py --embedded           # SQLite + the embedded mock cluster
    python bench/run.py --database URL --kafka BOOTSTRAP   # services already running
    python bench/run.py --smoke --out /tmp/bench           # every stage tiny (CI)

Starts PostgreSQL as .ci/run does (Debian's package, installed with apt-get if missing;
the cluster with pg_ctlcluster; a database kitchen_bench) and an Apache Kafka broker
(tools/kafka/run, in a temporary folder), and stops what it started. Runs the stages
intake, processing (with scale-out) and e2e one after the other, each as its own
process writing its JSON result into <out>/results/, then bench/report.py, which writes
<out>/RESULTS.md and the plots. Exit code 1 if a stage failed (the report shows the
others) or a correctness check did (an order lost, a duplicate email, a wrong stock: see
bench/report.py), in a smoke run too; a speed target missed is only reported.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
KAFKA = str(ROOT / "tools" / "kafka" / "run")
DATABASE = "kitchen_bench"

# The stages: (script, its arguments, the full size, the --smoke size). A smoke takes
# seconds and one run.
STAGES = {
    "intake": ("intake.py", ["--all-roles"], [], ["--seconds", "2"]),
    "processing": (
        "processing.py",
        ["--stage", "processing"],
        ["--orders", "30000"],
        ["--orders", "2000", "--naive-orders", "200"],
    ),
    "scale-out": (
        "processing.py",
        ["--stage", "scale-out"],
        ["--orders", "36000"],
        ["--orders", "2400"],
    ),
    "e2e": ("e2e.py", [], [], ["--rate", "100", "--seconds", "3"]),
}


def sh(*command: str, check: bool = True) -> str:
    return subprocess.run(command, check=check, capture_output=True, text=True).stdout.strip()


def apt_install(package: str) -> None:
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=env)


@contextmanager
def postgresql() -> Iterator[str]:
    """Debian's PostgreSQL cluster running, with an empty kitchen_bench database owned by
    kitchen/kitchen; yields its URL. Stops the cluster afterwards if it was down."""
    versions = Path("/usr/lib/postgresql")
    if not (versions.is_dir() and any(versions.iterdir())):
        apt_install("postgresql")
    version = max(
        (p.name for p in versions.iterdir()), key=lambda v: [int(x) for x in v.split(".")]
    )

    def cluster() -> list[str]:
        for line in sh("pg_lsclusters", "-h").splitlines():
            fields = line.split()
            if fields[:2] == [version, "main"]:
                return fields
        return []

    if not cluster():
        sh("pg_createcluster", version, "main")
    was_online = cluster()[3] == "online"
    if not was_online:
        sh("pg_ctlcluster", version, "main", "start")
    port = cluster()[2]
    sql = f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kitchen') THEN
            CREATE ROLE kitchen LOGIN PASSWORD 'kitchen';
          END IF;
        END $$;
        DROP DATABASE IF EXISTS {DATABASE};
        CREATE DATABASE {DATABASE} OWNER kitchen;
    """
    psql = ["runuser", "-u", "postgres", "--", "psql", "-q", "-p", port, "-v", "ON_ERROR_STOP=1"]
    subprocess.run(psql, input=sql, text=True, check=True)
    try:
        yield f"postgresql://kitchen:kitchen@127.0.0.1:{port}/{DATABASE}"
    finally:
        if not was_online:
            sh("pg_ctlcluster", version, "main", "stop", check=False)


@contextmanager
def kafka() -> Iterator[str]:
    """A single-node Apache Kafka broker of its own (tools/kafka/run); yields bootstrap."""
    folder = tempfile.mkdtemp(prefix="bench-kafka-")
    subprocess.run([KAFKA, "start", "--port", "0", "--dir", folder], check=True)
    try:
        yield Path(folder, "bootstrap").read_text().strip()
    finally:
        subprocess.run([KAFKA, "stop", "--dir", folder, "--clean"], check=False)


def run_stage(name: str, args: argparse.Namespace, database: str, broker: str) -> bool:
    """One stage script as its own process; True if it wrote its result."""
    script, always, full, smoke = STAGES[name]
    result = Path(args.out, "results", f"{name}.json")
    command = [sys.executable, str(BENCH / script), *always, "--json", str(result)]
    command += ["--runs", str(1 if args.smoke else args.runs)]
    command += smoke if args.smoke else full
    if database:
        command += ["--database", database]
    if broker:
        command += ["--kafka", broker]
        if name == "e2e" and args.kafka_version:
            command += ["--kafka-version", args.kafka_version]
        if script == "processing.py" and args.kafka_version:
            command += ["--kafka-label", f"apache-kafka {args.kafka_version}"]
    print(f"\n==> {name}: {shlex.join(command)}", flush=True)
    code = subprocess.run(command, cwd=ROOT).returncode
    if code or not result.exists():
        print(f"==> {name} FAILED (exit code {code})", file=sys.stderr, flush=True)
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--embedded", action="store_true", help="SQLite + embedded Kafka")
    parser.add_argument("--smoke", action="store_true", help="every stage tiny, one run")
    parser.add_argument("--database", default="", help="a running PostgreSQL (tables dropped)")
    parser.add_argument("--kafka", default="", help="a running broker's bootstrap servers")
    parser.add_argument("--kafka-version", default="", help="that broker's, for the report")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset")
    parser.add_argument("--out", default=str(BENCH), help="RESULTS.md, plots, results/")
    args = parser.parse_args()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown or (args.embedded and (args.database or args.kafka)):
        parser.error(f"unknown stages {unknown}" if unknown else "--embedded uses no servers")
    # Only this run's results go into the report.
    results = Path(args.out, "results")
    results.mkdir(parents=True, exist_ok=True)
    for old in results.glob("*.json"):
        old.unlink()

    with ExitStack() as started:
        database, broker = args.database, args.kafka
        if not args.embedded and not database:
            database = started.enter_context(postgresql())
        if not args.embedded and not broker:
            broker = started.enter_context(kafka())
            args.kafka_version = args.kafka_version or sh(KAFKA, "version")
        failed = [s for s in stages if not run_stage(s, args, database, broker)]
        # Before the services stop: report.py asks PostgreSQL its version.
        command = shlex.join(["python", "bench/run.py", *sys.argv[1:]])
        report = [sys.executable, str(BENCH / "report.py"), str(results)]
        report += ["--out", args.out, "--command", command]
        report += ["--database", database] if database else []
        code = subprocess.run(report, cwd=ROOT).returncode
    if failed:
        print(f"stages that failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or code else 0


if __name__ == "__main__":
    sys.exit(main())
