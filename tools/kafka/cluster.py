"""A real Apache Kafka broker (KRaft, broker and controller in one JVM), or a cluster of N such
nodes, for development and CI; jars from Maven Central via pom.xml. See README.md.

A single broker is a cluster of one whose node folder is DIR itself; node I of a cluster of N
lives in DIR/node-I. `run` is the command; tests may import this module (`kill_node(dir, 2)`).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from subprocess import DEVNULL, PIPE, STDOUT, Popen
from typing import NoReturn

HERE = Path(__file__).resolve().parent
LIBS = Path(os.environ.get("KAFKA_CACHE_DIR") or HERE / ".cache", "libs")
RUN_DIR = os.environ.get("KAFKA_RUN_DIR") or "/tmp/kitchen-kafka"
JAVA = os.path.join(os.environ["JAVA_HOME"], "bin/java") if os.environ.get("JAVA_HOME") else "java"
LISTENERS = re.compile(r"^listeners=PLAINTEXT://[^,]*:(\d+),CONTROLLER://[^,]*:(\d+)$", re.M)
Opt = int | None
NODE_FILES = ("kafka.log", "kafka.log.1", "format.log", "server.properties", "log4j2.properties")


class Failure(Exception):
    """What is wrong and what to do: one stderr line, exit 2."""


def log(message: str) -> None:
    print(f"kafka: {message}", file=sys.stderr, flush=True)


def fetch() -> None:
    """Resolve the jars into LIBS. The cache is keyed by a hash of pom.xml: a warm cache never
    runs mvn (works offline), and editing the pom (a version bump) triggers a fresh fetch."""
    pom = hashlib.sha256((HERE / "pom.xml").read_bytes()).hexdigest()
    marker = LIBS / ".pom-sha256"
    if marker.is_file() and marker.read_text().strip() == pom and kafka_version():
        return
    if not shutil.which("mvn"):
        raise Failure(f"jars not cached in {LIBS} and mvn is not installed")
    log(f"resolving broker jars with Maven into {LIBS} ...")
    LIBS.parent.mkdir(parents=True, exist_ok=True)
    # Filled in a temp dir, then moved into place: an interrupted fetch never leaves a
    # half-populated cache that looks valid.
    tmp = Path(tempfile.mkdtemp(prefix="libs.tmp.", dir=LIBS.parent))
    command = ["mvn", "-B", "-q", "-f", str(HERE / "pom.xml"), "dependency:copy-dependencies"]
    command += ["-DincludeScope=runtime", f"-DoutputDirectory={tmp}"]
    mvn = Popen(command, stdout=PIPE, stderr=STDOUT, text=True)
    for line in mvn.stdout or ():
        if line := re.sub(r"\x1b\[[0-9;]*m", "", line).strip():  # Maven 3.8's -q colours
            log(line)
    if mvn.wait():
        shutil.rmtree(tmp)
        raise Failure("mvn dependency:copy-dependencies failed")
    (tmp / ".pom-sha256").write_text(pom + "\n")
    shutil.rmtree(LIBS, ignore_errors=True)
    tmp.rename(LIBS)


def kafka_version() -> str:
    jars = sorted(LIBS.glob("kafka_2.13-*.jar"))
    return jars[0].name.removeprefix("kafka_2.13-").removesuffix(".jar") if jars else ""


def java(flags: str, main: str) -> list[str]:
    """A JVM with FLAGS, running MAIN from the jars, logging with ./log4j2.properties."""
    log4j = f"-Dlog4j2.configurationFile={HERE}/log4j2.properties"
    return [JAVA, *flags.split(), log4j, "-cp", f"{LIBS}/*", main]


def check_java() -> None:
    if not shutil.which(JAVA):
        raise Failure("java not found (Kafka 4.x needs Java 17+): install it or set JAVA_HOME")
    first = subprocess.run([JAVA, "-version"], capture_output=True, text=True).stderr + "\n"
    first = first.splitlines()[0]
    if not (found := re.search(r'version "(\d+)', first)) or int(found[1]) < 17:
        raise Failure(f"Kafka 4.x needs Java 17+, found: {first}")


def node_dirs(dir: Path) -> list[Path]:
    """The node folders an earlier start set up in DIR: DIR/node-1..N, or DIR itself."""
    nodes: list[Path] = []
    while (dir / f"node-{len(nodes) + 1}" / "server.properties").is_file():
        nodes.append(dir / f"node-{len(nodes) + 1}")
    return nodes or ([dir] if (dir / "server.properties").is_file() else [])


def targets(dir: Path, node: int | None) -> list[Path]:
    """Node NODE's folder, or every node's."""
    nodes = node_dirs(dir)
    if node and not node <= len(nodes):
        raise Failure(f"no node {node} in {dir} (start a cluster with --brokers N first)")
    return nodes[node - 1 : node] if node else nodes


def recorded_ports(node: Path) -> tuple[int, int]:
    """The broker and controller ports that start wrote into NODE/server.properties."""
    with suppress(OSError):
        if found := LISTENERS.search((node / "server.properties").read_text()):
            return int(found[1]), int(found[2])
    raise Failure(f"cannot read the ports from the listeners line of {node}/server.properties")


def bind(port: int) -> socket.socket | None:
    """A socket bound to PORT, or None. A wanted port is tried with SO_REUSEADDR as the broker
    binds it (Java sets it on Unix): TIME_WAIT connections of a broker just stopped leave it
    free."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1 if port else 0)
    try:
        sock.bind(("127.0.0.1", port))
        return sock
    except OSError:
        sock.close()
        return None


def close(socks: list[socket.socket | None]) -> None:
    for sock in socks:
        if sock:
            sock.close()


def pick_ports(want: int | None, nodes: int) -> tuple[list[int], list[int]]:
    """N broker ports, then N controller ports, all different. WANT None: 9092 and up if
    free, else any free ports; 0: any free ports; P: exactly P and up, or fail."""
    # Any free port comes from below the kernel's ephemeral range: one the kernel hands out
    # (bind to 0) can go to an outgoing connection before the broker binds it.
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    held = [bind((want or 9092) + i) for i in range(nodes)] if want != 0 else []
    if not all(held):
        close(held)
        if want:
            raise Failure(
                f"ports {want} to {want + nodes - 1} are not all free"
                if nodes > 1
                else f"port {want} is already in use"
            )
        held = []
    tries = 0
    while len(held) < 2 * nodes:
        tries += 1
        if sock := bind(random.randrange(min(10000, low - 1000), low) if tries < 1000 else 0):
            held.append(sock)
    ports = [sock.getsockname()[1] for sock in held if sock]
    close(held)
    return ports[:nodes], ports[nodes:]


def running_pid(node: Path) -> int | None:
    """The pid in NODE/kafka.pid if it is still that node's broker (pids get reused). A
    zombie has an empty command line: gone, its sockets closed."""
    with suppress(OSError, ValueError):
        pid = int((node / "kafka.pid").read_text())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        if f"kafka.Kafka {node}/server.properties".encode() in command:
            return pid
    return None


def alive(pid: int) -> bool:
    with suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped if it is our child (a start given up)
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def stop_pids(pids: list[int], timeout: float) -> None:
    """SIGTERM runs Kafka's controlled shutdown; SIGKILL if it hangs, or at once with no
    TIMEOUT (a crash). A cluster's nodes get SIGTERM together: one by one, the last would
    wait for a controller quorum already gone."""
    deadline = time.monotonic() + timeout
    for pid in pids if timeout else ():
        with suppress(ProcessLookupError):  # gone since we looked
            os.kill(pid, signal.SIGTERM)
    while any(map(alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in filter(alive, pids):
        if timeout:
            log(f"pid {pid} still alive after {timeout:.0f}s; sending SIGKILL")
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.1)


def partitions_ready(port: int, node: int) -> str | None:
    """None once every partition has a leader and those NODE leads answer ListOffsets, else
    why not. With kept data, "Kafka Server started" comes a moment before the broker leads
    its partitions again: clients would see NOT_LEADER for about 0.3 s."""
    from confluent_kafka import KafkaException, TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", "log_level": 0})
    try:
        mine = []
        for name, topic in admin.list_topics(timeout=3).topics.items():
            for p in topic.partitions.values():
                if topic.error or p.error or p.leader < 0:
                    return f"{name}-{p.id}: error {topic.error or p.error}, leader {p.leader}"
                if p.leader == node:
                    mine.append(TopicPartition(name, p.id))
        if mine:
            asked = admin.list_offsets({tp: OffsetSpec.latest() for tp in mine}, request_timeout=3)
            for future in asked.values():
                future.result()
        return None
    except KafkaException as e:
        return f"partitions not ready: {e}"


def launch(dir: Path, nodes: list[Path], reuse: bool) -> None:
    """Start the configured NODES together (none is ready before a quorum runs) and wait until
    each is ready: its log says the whole server started (broker unfenced, not just the socket
    bound), its port answers and, with kept data, its partitions are led again. Kills what it
    started if it gives up (timeout, Ctrl-C). Writes the bootstrap files."""
    one = len(node_dirs(dir)) == 1
    # A cluster's JVMs share the machine with the tests: a modest heap, and C1-only JIT and the
    # serial GC start them faster and cost less CPU on few cores. The single node lives through
    # the whole second suite, which makes some 13,000 partitions (each test its own topics):
    # with 512 MB it ran out of heap at the end of it (issue 20's CI), so 1 GB.
    heap = os.environ.get("KAFKA_HEAP_OPTS") or ("-Xms128m -Xmx1g" if one else "-Xms64m -Xmx384m")
    opts = os.environ.get("KAFKA_OPTS") or (
        "" if one else "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    )
    # ExitOnOutOfMemoryError: a broker out of heap dies at once, not at the start timeout.
    jvm = java(f"{heap} {opts} -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true", "kafka.Kafka")
    if reuse and not importlib.util.find_spec("confluent_kafka"):
        raise Failure("a restart with kept data needs confluent-kafka: create .venv (README.md)")
    started: dict[Path, Popen[bytes]] = {}
    ready: set[Path] = set()
    t0, timeout = time.monotonic(), float(os.environ.get("KAFKA_START_TIMEOUT") or 90)
    # SIGTERM (as Ctrl-C) gives up and stops what started; a handler only in the main thread.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(130)) if main else None
    try:
        for node in nodes:
            for name in ("kafka.pid", "bootstrap", "log4j2.properties"):
                (node / name).unlink(missing_ok=True)
            if reuse and (node / "kafka.log").exists():  # the run up to a kill, for post-mortems
                (node / "kafka.log").replace(node / "kafka.log.1")
            # Its own session, stdin from /dev/null: `$(run start)` in a caller returns.
            with (node / "kafka.log").open("wb") as out:
                command = [*jvm, f"{node}/server.properties"]
                started[node] = Popen(
                    command, stdin=DEVNULL, stdout=out, stderr=out, start_new_session=True
                )
            (node / "kafka.pid").write_text(f"{started[node].pid}\n")
        ports = {node: recorded_ports(node)[0] for node in nodes}
        where = ", ".join(f"pid {p.pid} on 127.0.0.1:{ports[n]}" for n, p in started.items())
        log(f"waiting for {where} (logs: {' '.join(f'{n}/kafka.log' for n in nodes)}) ...")
        while waiting := [n for n in nodes if n not in ready]:
            for node in waiting:
                if started[node].poll() is not None or time.monotonic() - t0 >= timeout:
                    lines = (node / "kafka.log").read_text(errors="replace").splitlines()[-50:]
                    log(f"last 50 lines of {node}/kafka.log:\n" + "\n".join(lines))
                    if started[node].poll() is not None:
                        raise Failure("broker exited during startup")
                    if reuse and (why := partitions_ready(ports[node], node_id(node))):
                        log(why)
                    raise Failure(f"broker not ready after {timeout:.0f}s; killing it")
                with socket.socket() as probe:
                    if (
                        "Kafka Server started" in (node / "kafka.log").read_text(errors="replace")
                        and probe.connect_ex(("127.0.0.1", ports[node])) == 0
                        and not (reuse and partitions_ready(ports[node], node_id(node)))
                    ):
                        ready.add(node)
            time.sleep(0.2 if len(ready) < len(nodes) else 0)
    except BaseException:
        stop_pids([p.pid for p in started.values()], 10)
        for node in started:
            (node / "kafka.pid").unlink(missing_ok=True)
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
    for node in nodes:
        (node / "bootstrap").write_text(f"127.0.0.1:{ports[node]}\n")
    everyone = ",".join(f"127.0.0.1:{recorded_ports(n)[0]}" for n in node_dirs(dir))
    (dir / "bootstrap").write_text(everyone + "\n")
    pids = " ".join(str(p.pid) for p in started.values())
    log(f"{len(nodes)} node(s) ready in {time.monotonic() - t0:.0f}s (pid {pids})")


def node_id(node: Path) -> int:
    return int(re.findall(r"^node\.id=(\d+)$", (node / "server.properties").read_text(), re.M)[0])


def start(
    dir: Path, port: Opt = None, brokers: Opt = None, keep: bool = False, node: Opt = None
) -> str:
    """Fresh storage for BROKERS nodes (default 1) in DIR; with KEEP the nodes an earlier start
    set up there, with their storage, ports and config; with NODE only that node of them (the
    others run on). Returns the bootstrap address of every node."""
    existing = node_dirs(dir)
    restart = targets(dir, node)
    for folder in restart:
        if pid := running_pid(folder):
            raise Failure(
                f"{folder} runs already (pid {pid}); run: tools/kafka/run stop --dir {dir}"
            )
    check_java()
    fetch()
    if node and not (restart[0] / "data/meta.properties").is_file():
        raise Failure(f"node {node} in {dir} has no storage to restart from")
    if node or (keep and existing and (existing[0] / "data/meta.properties").is_file()):
        if brokers not in (None, len(existing)):
            raise Failure(f"--keep-data: {dir} holds {len(existing)} node(s), not {brokers}")
        for folder in restart:
            if f"log.dirs={folder}/data\n" not in (folder / "server.properties").read_text():
                raise Failure(f"{folder}/server.properties does not use {folder}/data (moved?)")
            socks = [bind(p) for p in recorded_ports(folder)]
            close(socks)
            if not all(socks):
                ports = " and ".join(map(str, recorded_ports(folder)))
                raise Failure(
                    f"ports {ports} of {folder} are not both free: in use by another process"
                )
        first = recorded_ports(restart[0])[0]
        if port not in (None, 0, first):
            raise Failure(f"--keep-data: {dir} has port {first}: omit --port or pass {first}")
        log(f"restarting {len(restart)} node(s) of {dir} with their data")
        launch(dir, restart, reuse=True)
        return (dir / "bootstrap").read_text().strip()
    count = brokers or 1
    bports, cports = pick_ports(port, count)
    # Fresh storage each start, and none of the files of an earlier start in DIR (a single
    # broker's or a cluster's): only the files this tool writes.
    for old in dir.glob("node-*"):
        shutil.rmtree(old)
    shutil.rmtree(dir / "data", ignore_errors=True)
    for name in (*NODE_FILES, "kafka.pid", "bootstrap"):
        (dir / name).unlink(missing_ok=True)
    nodes = [dir] if count == 1 else [dir / f"node-{i}" for i in range(1, count + 1)]
    voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in enumerate(cports, 1))
    template = (HERE / "server.properties.in").read_text()
    # Kafka refuses cluster ids that start with "-" (they look like flags).
    while (cluster_id := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode())[0] == "-":
        pass
    fields = {"nodes": count, "voters": voters, "copies": min(count, 3), "isr": 1 + (count > 2)}
    # A short-lived tool: C1-only JIT and serial GC start it about 0.4 s faster.
    tool = java("-Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC", "kafka.tools.StorageTool")
    tool += ["format", "--ignore-formatted", "-t", cluster_id.rstrip("="), "-c"]
    formats = []
    for i, (folder, bport, cport) in enumerate(zip(nodes, bports, cports, strict=True), 1):
        folder.mkdir(parents=True, exist_ok=True)
        config = template.format(id=i, port=bport, controller=cport, data=folder / "data", **fields)
        (folder / "server.properties").write_text(config)
        with (folder / "format.log").open("w") as out:
            command = [*tool, f"{folder}/server.properties"]
            formats.append(Popen(command, stdout=out, stderr=STDOUT))
    for folder, process in zip(nodes, formats, strict=True):
        if process.wait():
            sys.stderr.write((folder / "format.log").read_text())
            raise Failure(f"formatting KRaft storage in {folder} failed")
    launch(dir, nodes, reuse=False)
    return (dir / "bootstrap").read_text().strip()


def stop(dir: Path, node: int | None = None, clean: bool = False, crash: bool = False) -> list[int]:
    """SIGTERM every node of DIR (or NODE), SIGKILL after 30 s; CRASH: SIGKILL at once, the
    data stays for a restart; CLEAN: remove the files start wrote. The pids it ended."""
    if clean and node:
        raise Failure("--clean removes a whole cluster's files: leave out --node")
    nodes = targets(dir, node)
    what = f"node {node}" if node else f"the broker(s) of {dir}"
    if pids := [p for n in nodes if (p := running_pid(n))]:
        log(f"{'killing' if crash else 'stopping'} {what}, pid(s) {' '.join(map(str, pids))}")
        stop_pids(pids, 0 if crash else 30)
        log("killed (SIGKILL); the data stays" if crash else "stopped")
    else:
        log(f"{what} not running")
    for path in [*(n / "kafka.pid" for n in nodes), *(n / "bootstrap" for n in nodes)]:
        path.unlink(missing_ok=True)
    if not node:
        (dir / "bootstrap").unlink(missing_ok=True)
    for folder in nodes if clean else ():
        shutil.rmtree(folder / "data", ignore_errors=True)
        for name in NODE_FILES:
            (folder / name).unlink(missing_ok=True)
        with suppress(OSError):
            folder.rmdir()
    if clean:
        with suppress(OSError):
            dir.rmdir()
        log(f"removed broker files in {dir}")
    return pids


def kill_node(dir: Path, node: int) -> int | None:
    """A crash of node NODE of DIR (SIGKILL); its pid, if it ran. Storage, ports and config
    stay for `start --node` (or `start --keep-data`)."""
    return next(iter(stop(dir, node, crash=True)), None)


def status(dir: Path, node: int | None = None) -> int:
    """One line per node; 0 only if every node asked about runs."""
    if not (nodes := targets(dir, node)):
        print("not running")
    for folder in nodes:
        prefix = f"node {node_id(folder)}: " if node or len(nodes) > 1 else ""
        if pid := running_pid(folder):
            with suppress(OSError):
                address = "(starting)"
                address = (folder / "bootstrap").read_text().strip()
            print(f"{prefix}running: pid {pid}, bootstrap: {address}")
        else:
            print(f"{prefix}not running")
    return 0 if nodes and all(map(running_pid, nodes)) else 1


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"kafka: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def number(least: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < least:
            raise argparse.ArgumentTypeError(f"must be a number from {least}, not {text!r}")
        return int(text)

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="tools/kafka/run", description=(__doc__ or "").split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in [
        ("start", "format fresh storage, start, wait until ready (prints bootstrap)"),
        ("stop", "SIGTERM, then SIGKILL after 30 s"),
        ("kill", "SIGKILL at once (crash tests); the data stays"),
        ("status", "one line per node; exit 0 if every node asked about runs"),
    ]:
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--dir", type=Path, default=RUN_DIR, help="run folder (%(default)s)")
        sub.add_argument("--node", type=number(1), metavar="ID", help="only node ID of a cluster")
    start_, stop_ = commands.choices["start"], commands.choices["stop"]
    start_.add_argument("--port", type=number(0), help="0: any free; default: 9092 if free")
    start_.add_argument("--brokers", type=number(1), metavar="N", help="N nodes, all voters")
    start_.add_argument("--keep-data", action="store_true", help="reuse DIR's storage and ports")
    stop_.add_argument("--clean", action="store_true", help="remove the files start wrote")
    commands.add_parser("version", help="print the Kafka version (e.g. 4.4.0)")
    commands.add_parser("fetch", help="only resolve the jars into the cache")
    commands.add_parser("help", help="show this help")
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("a command is needed: start, stop, kill, status, version or fetch")
    if args.command == "help":
        parser.print_help()
        return 0
    dir = Path(getattr(args, "dir", RUN_DIR)).resolve()  # absolute: it goes into the config
    try:
        if args.command == "start":
            if args.node and (args.port is not None or args.brokers):
                raise Failure("--node restarts a node with its own ports: no --port or --brokers")
            print(f"bootstrap: {start(dir, args.port, args.brokers, args.keep_data, args.node)}")
            if not args.node:
                print(f"kafka version: {kafka_version()}")
        elif args.command in ("stop", "kill"):
            stop(dir, args.node, getattr(args, "clean", False), crash=args.command == "kill")
        elif args.command == "status":
            return status(dir, args.node)
        else:
            fetch()
            if args.command == "version":
                print(kafka_version())
            else:
                log(f"jars cached in {LIBS} (kafka {kafka_version()})")
    except Failure as e:
        print(f"kafka: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
