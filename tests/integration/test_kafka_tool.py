"""tools/kafka/run, the local Apache Kafka for development and CI: its command line, its
ports, and a broker killed and restarted with its data (imported, as the cluster test does)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tools.kafka import cluster

ROOT = Path(__file__).resolve().parents[2]
RUN = str(ROOT / "tools/kafka/run")
# The tool runs with the interpreter of these tests (its confluent-kafka checks partitions).
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUN, *args], capture_output=True, text=True, env=ENV, timeout=180)


def test_a_bad_option_exits_2_with_one_line_naming_it() -> None:
    for args, named in [
        ([], "a command is needed"),
        (["start", "--brokers", "0"], "--brokers"),
        (["start", "--port", "x"], "--port"),
        (["stop", "--node", "-1"], "--node"),
    ]:
        done = run(*args)
        assert done.returncode == 2, args
        assert len(done.stderr.splitlines()) == 1 and named in done.stderr, done.stderr
        assert done.stdout == ""


def test_node_restart_takes_no_port_and_clean_takes_no_node(tmp_path: Path) -> None:
    done = run("start", "--dir", str(tmp_path), "--node", "2", "--port", "9092")
    assert (done.returncode, done.stderr.strip()) == (
        2,
        "kafka: error: --node restarts a node with its own ports: no --port or --brokers",
    )
    done = run("stop", "--dir", str(tmp_path), "--node", "1", "--clean")
    assert done.returncode == 2 and "leave out --node" in done.stderr


def test_status_of_a_folder_without_a_broker(tmp_path: Path) -> None:
    done = run("status", "--dir", str(tmp_path))
    assert (done.returncode, done.stdout) == (1, "not running\n")
    done = run("status", "--dir", str(tmp_path), "--node", "2")
    assert done.returncode == 2 and f"no node 2 in {tmp_path}" in done.stderr


def test_ports_are_distinct_and_below_the_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    brokers, controllers = cluster.pick_ports(0, 3)
    assert len(set(brokers + controllers)) == 6
    assert all(0 < p < low for p in brokers + controllers)


def test_a_wanted_port_in_use_fails_and_names_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(cluster.Failure, match=f"ports {port - 1} to {port} are not all free"):
            cluster.pick_ports(port - 1, 2)


@pytest.mark.slow  # starts a broker twice: about 30 s
@pytest.mark.skipif(shutil.which("java") is None, reason="needs Java for tools/kafka/run")
def test_a_killed_broker_comes_back_with_its_data(tmp_path: Path) -> None:
    folder = tmp_path / "kafka"
    started = run("start", "--port", "0", "--dir", str(folder))
    assert started.returncode == 0, started.stderr
    bootstrap = (folder / "bootstrap").read_text().strip()
    assert started.stdout == f"bootstrap: {bootstrap}\nkafka version: {cluster.kafka_version()}\n"
    try:
        producer = Producer({"bootstrap.servers": bootstrap})
        producer.produce("kept", b"before the crash", partition=0)
        assert producer.flush(30) == 0

        pid = cluster.kill_node(folder, 1)
        assert pid and cluster.running_pid(folder) is None
        assert not (folder / "bootstrap").exists()
        assert run("status", "--dir", str(folder)).stdout == "not running\n"

        again = run("start", "--dir", str(folder), "--keep-data")
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines()[0] == f"bootstrap: {bootstrap}"
        reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "kept"})
        try:
            # Answered at once: `start` returned only once the partition was led again.
            assert reader.get_watermark_offsets(TopicPartition("kept", 0), timeout=5) == (0, 1)
        finally:
            reader.close()
    finally:
        stopped = run("stop", "--dir", str(folder), "--clean")
    assert stopped.returncode == 0 and not folder.exists()
