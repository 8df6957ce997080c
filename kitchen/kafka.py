"""Kafka adapter: producers, supervised consumer threads, topics and the embedded cluster.

The only module that knows the Kafka client: handlers receive decoded events
(`events.Received`), never `confluent_kafka.Message`.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kitchen import metrics
from kitchen.background import Background
from kitchen.events import Handler, Received, UnusableEvent

log = logging.getLogger(__name__)
# librdkafka's own messages (the mock cluster's banner, a broker gone), through Python
# logging like every other line (and so in JSON when [log] format = "json"). The client
# hands them over when it is polled.
client_log = logging.getLogger("kitchen.kafka.client")

E = TypeVar("E")

# Stands for "no offset committed yet" in ConsumerWorker._committed (librdkafka's
# OFFSET_INVALID is -1001): lag then counts from the low watermark.
NOT_COMMITTED = -1


class BrokerUnreachable(Exception):
    """The broker did not answer in time; `reason` is the client's own words for it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EmbeddedKafka:
    """librdkafka's in-memory mock cluster, for development and tests.

    The cluster lives inside the client that creates it, so this object must outlive
    every client that uses it. It keeps nothing on disk: the database, not Kafka, is the
    source of truth for anything not yet applied (see the re-drive job).
    """

    def __init__(self, brokers: int = 1) -> None:
        self._owner = Producer(
            {"test.mock.num.brokers": brokers, "client.id": "embedded", "logger": client_log}
        )
        metadata = self._owner.list_topics(timeout=10)
        self._owner.poll(0)  # hands its banner to the logger
        self.bootstrap_servers = ",".join(f"{b.host}:{b.port}" for b in metadata.brokers.values())

    def create_topics(self, topics: Sequence[str]) -> None:
        """The mock cluster has no CreateTopics; asking for a topic's metadata creates it.
        Creating them up front spares consumers a slow metadata refresh on startup."""
        for topic in topics:
            self._owner.list_topics(topic, timeout=10)

    def close(self) -> None:
        self._owner.flush(1)


def producer_config(bootstrap_servers: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap_servers,
        "log.connection.close": False,
        "logger": client_log,
        # Idempotence: a retried send is written once and order per partition is kept.
        "enable.idempotence": True,
        # A send counts once every in-sync copy has it, and the topics' min.insync.replicas
        # (2 of 3) refuses it with fewer: an acknowledged event survives losing a broker.
        "acks": "all",
        "linger.ms": 5,
        # Surface an unreachable broker within a minute; the outbox row stays unsent
        # and is retried, instead of waiting in librdkafka's queue for five.
        "message.timeout.ms": 60000,
    }


# Told, for one record sent, None once Kafka has it (every in-sync copy: acks=all), else
# why not (refused, timed out).
Delivered = Callable[[str | None], None]


class Publisher:
    """What the outbox relay needs of Kafka: queue records, each with a callback told how
    it went, then wait for every answer at once. Sending a batch and flushing once is what
    makes a relay fast: a relay that waits for each record runs about 110 records/s, one
    that batches 16-45x that (softwaremill/okapi's published benchmarks); here 16,000
    rows/s (20,000 outbox rows on SQLite and the embedded Kafka, batches of 500, median
    of 5 runs, measured)."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer

    @classmethod
    def to(cls, bootstrap_servers: str) -> Publisher:
        return cls(Producer(producer_config(bootstrap_servers)))

    def publish(self, topic: str, key: str | None, value: str, delivered: Delivered) -> None:
        """Queue one record; raises BufferError when librdkafka's queue is full."""

        def report(error: KafkaError | None, _message: Message) -> None:
            delivered(None if error is None else str(error))

        self._producer.produce(topic, key=key, value=value, on_delivery=report)

    def flush(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for the answers (callbacks run here); returns how
        many records are still unanswered."""
        return int(self._producer.flush(timeout))


# How long a fetch may wait at the broker for data. A broker answers as soon as data comes
# (a long poll), so there it only paces an idle consumer's requests. librdkafka's mock
# cluster (the embedded Kafka) answers only when the wait runs out, so there the whole
# wait was added to every event's way: an idle all-in-one took 70-80 ms from 201 to
# applied with 100 ms, 5-10 ms with 10 ms. The price, all in process: an idle all-in-one
# uses 5 % of a core instead of 2 %.
FETCH_WAIT_MS = 100
EMBEDDED_FETCH_WAIT_MS = 10


def consumer_config(
    bootstrap_servers: str,
    group_id: str,
    instance_id: str = "",
    session_timeout_ms: int = 10000,
    fetch_wait_ms: int = FETCH_WAIT_MS,
) -> dict[str, Any]:
    config = {
        "bootstrap.servers": bootstrap_servers,
        "log.connection.close": False,
        "logger": client_log,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        # Offsets are committed by hand, after the database commit of the batch.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "allow.auto.create.topics": True,
        "fetch.wait.max.ms": fetch_wait_ms,
        "session.timeout.ms": session_timeout_ms,
    }
    if instance_id:
        config["group.instance.id"] = instance_id
    return config


def take_batch(consumer: Consumer, size: int, wait: float = 0.5) -> list[Message]:
    """Up to `size` messages: wait at most `wait` s for the first, then take only what has
    already arrived. `consume(size, timeout)` would wait the whole timeout unless `size`
    messages came: 500 ms of latency on every batch at low and medium load (measured)."""
    first = consumer.poll(wait)
    if first is None:
        return []
    return [first, *consumer.consume(size - 1, timeout=0)] if size > 1 else [first]


def ensure_topics(
    bootstrap_servers: str,
    topics: Sequence[str],
    partitions: int,
    replication_factor: int = 3,
    min_insync_replicas: int = 2,
    timeout: float = 5.0,
) -> None:
    """Create missing topics on a real broker with `partitions` partitions each, copied
    to `replication_factor` brokers (fewer if the cluster has fewer), a write needing
    `min_insync_replicas` copies (see `copies`).

    Topics that exist are left as they are, whatever their settings (lowering them, or
    moving partitions between brokers, is for an operator to decide): one with fewer
    copies than wanted is logged as a warning.

    Raises BrokerUnreachable when the broker does not answer within `timeout` (the caller
    tries again). A broker that answers but will not create a topic (ACLs on a managed
    cluster, or librdkafka's mock cluster, which has no CreateTopics) is not an error:
    the topic may exist already or be auto-created on first use; that is logged.
    """
    # Quiet: while the broker is down librdkafka would log every reconnect (20 a second);
    # the caller logs one line per attempt instead.
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap_servers,
        "log_level": 2,
        "logger": client_log,
    }
    admin = AdminClient(config)
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnreachable(exc.args[0].str() if exc.args else str(exc)) from None
    brokers = len(metadata.brokers)
    replicas, in_sync = copies(replication_factor, min_insync_replicas, brokers)
    for topic in topics:
        found = metadata.topics.get(topic)
        if found is None or not found.partitions:
            continue
        fewest = min(len(p.replicas) for p in found.partitions.values())
        if fewest < replicas:
            log.warning(
                "topic %s keeps %d copies of some partitions, fewer than the %d wanted "
                "([kafka] replication_factor, %d brokers): losing a broker can lose or "
                "stall its events. Kitchen never changes existing topics; reassign its "
                "partitions (kafka-reassign-partitions.sh) to add copies",
                topic,
                fewest,
                replicas,
                brokers,
            )
    missing = [
        NewTopic(
            t,
            num_partitions=partitions,
            replication_factor=replicas,
            config={"min.insync.replicas": str(in_sync)},
        )
        for t in topics
        if t not in metadata.topics
    ]
    if not missing:
        return
    if replicas < replication_factor:
        log.warning(
            "only %d Kafka brokers answer: new topics get %d copies, not the %d of "
            "[kafka] replication_factor",
            brokers,
            replicas,
            replication_factor,
        )
    futures = admin.create_topics(missing, request_timeout=CREATE_TOPICS_SECONDS)
    for topic, future in futures.items():
        try:
            future.result(timeout=CREATE_TOPICS_SECONDS + 5)
            log.info(
                "created topic %s with %d partitions, %d copies, min.insync.replicas %d",
                topic,
                partitions,
                replicas,
                in_sync,
            )
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                _not_created(topic, exc.args[0].str())
        except concurrent.futures.TimeoutError:
            _not_created(topic, "no answer to CreateTopics")


# How long the broker gets to answer CreateTopics (the mock cluster never does).
CREATE_TOPICS_SECONDS = 10.0


def copies(replication_factor: int, min_insync_replicas: int, brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) of a new topic on a cluster of `brokers`.

    A partition cannot have more copies than there are brokers. On a cluster too small
    for the configured copies, a write needs one copy fewer than there are (at least
    one), so that the cluster still takes writes with a broker down: 2 brokers give
    (2, 1), one gives (1, 1).
    """
    replicas = max(1, min(replication_factor, brokers))
    if replicas < replication_factor:
        return replicas, max(1, min(min_insync_replicas, replicas - 1))
    return replicas, min_insync_replicas


def _not_created(topic: str, why: str) -> None:
    log.warning("topic %s not created (%s); going on: it must exist or be auto-created", topic, why)


def next_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    """The offsets to commit after a batch: one past the last message of each partition."""
    last: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic() or "", m.partition() or 0)
        last[key] = max(last.get(key, -1), m.offset() or 0)
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


def first_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    """Where to seek to read a batch again: its first offset in each partition."""
    first: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic() or "", m.partition() or 0)
        first[key] = min(first.get(key, m.offset() or 0), m.offset() or 0)
    return [TopicPartition(t, p, o) for (t, p), o in first.items()]


def is_fatal(error: KafkaError) -> bool:
    """Whether the consumer must be made anew. A static member fenced by a newer one with
    its group.instance.id (a rejoin after a session timeout while a broker was down races
    its own old member id: seen in the 3-broker kill test) comes as _FATAL, whose fatal()
    is False in confluent-kafka-python (its issue 869). Such a consumer fetches nothing
    ever again: taken for a passing error, the pipeline would stop without a word."""
    return bool(error.fatal() or error.code() == KafkaError._FATAL)


def close_with_timeout(consumer: Consumer, seconds: float = 10.0) -> None:
    """Consumer.close() can hang (confluent-kafka-python #1667): bound it."""
    closer = threading.Thread(target=consumer.close, daemon=True)
    closer.start()
    closer.join(seconds)
    if closer.is_alive():
        log.warning("consumer close did not finish within %.0f s", seconds)


def source(m: Message, cluster_id: str) -> str:
    """Where a record was read from: `cluster/topic-partition-offset`. The cluster's id is
    part of it because a new cluster numbers its offsets from 0 again (the embedded one
    is new, with a new id, at each start): a position alone would name two records."""
    return f"{cluster_id}/{m.topic()}-{m.partition()}-{m.offset()}"


class ConsumerWorker(Background, Generic[E]):
    """A consumer thread: poll a batch, decode it, hand it over, commit only after it is
    applied.

    What gets dead-lettered, and nothing else: an event `decode` calls unusable
    (`events.UnusableEvent`), an event the handler returns as unusable, and an event whose
    handling raises an error that `unusable` says no retry can cure (bad data reaching
    the database). Such an error is narrowed down to its event by handling the batch one
    event at a time, and that event alone is parked, so one bad event never stalls a
    partition.

    Any other error is an outage or a bug: it is logged with its traceback, nothing is
    committed, and the consumer seeks back to the batch's first offsets and reads it again
    after a back-off, keeping its place in the group (a new consumer would cost a
    rebalance). Errors of the consumer itself (broker gone, a failed commit) start a fresh
    consumer, which reads again from the last commit. The worker never dies silently:
    `ready`, `failures` and `last_error` say how it goes.
    """

    def __init__(
        self,
        name: str,
        bootstrap_servers: str,
        group_id: str,
        topics: Sequence[str],
        decode: Callable[[bytes | None], E],
        handler: Handler[E],
        batch_size: int = 500,
        instance_id: str = "",
        session_timeout_ms: int = 10000,
        unusable: Callable[[Exception], bool] = lambda exc: False,
        fetch_wait_ms: int = FETCH_WAIT_MS,
    ) -> None:
        self.name = name
        self.fetch_wait_ms = fetch_wait_ms
        self.decode = decode
        self.handler = handler
        self.unusable = unusable
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id
        self.topics = list(topics)
        self.batch_size = batch_size
        self.instance_id = instance_id
        self.session_timeout_ms = session_timeout_ms
        super().__init__(name)
        self.failures = 0  # handler or consumer errors, each followed by a retry
        self.processed = 0
        self.assigned: list[tuple[str, int]] = []  # partitions this consumer owns now
        self.cluster_id = ""  # of the cluster the consumer reads, for `source`
        self._committed: dict[tuple[str, int], int] = {}  # offsets this consumer committed
        self._lag_reported = 0.0  # time.monotonic() of the last lag report
        self._dlq: Producer | None = None
        self._backoff = 0.5  # grows while failures repeat, reset by a committed batch

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consume()
            except Exception as exc:
                self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        """Count and log a failure, then wait before the retry, longer each time."""
        self.failures += 1
        self.failing += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.exception("%s failed; retrying in %.1f s", self.name, self._backoff)
        self._stop.wait(self._backoff)
        self._backoff = min(self._backoff * 2, 10.0)

    def _consume(self) -> None:
        consumer = Consumer(
            consumer_config(
                self.bootstrap_servers,
                self.group_id,
                self.instance_id,
                self.session_timeout_ms,
                self.fetch_wait_ms,
            )
        )
        try:
            # Broker unreachable: raises, and the supervisor tries again after a back-off.
            self.cluster_id = consumer.list_topics(timeout=10).cluster_id or ""
            consumer.subscribe(
                self.topics,
                on_assign=lambda _c, parts: self._track(parts, add=True),
                on_revoke=lambda _c, parts: self._track(parts, add=False),
                on_lost=lambda _c, parts: self._track(parts, add=False),
            )
            while not self._stop.is_set():
                batch = take_batch(consumer, self.batch_size)
                messages = []
                for m in batch:
                    error = m.error()
                    if error is None:
                        messages.append(m)
                    elif is_fatal(error):
                        raise KafkaException(error)  # a new consumer, after a back-off
                    else:
                        # Partition EOF, a topic not created yet: nothing to process.
                        log.debug("%s: %s", self.name, error)
                if time.monotonic() - self._lag_reported > 1.0:
                    # Idle, or failing the same batch: the lag still shows how much waits.
                    self._report_lag(consumer)
                if not messages:
                    # Committing an empty batch raises _NO_OFFSET: commit only work done.
                    continue
                started = time.perf_counter()
                try:
                    rejected = self._process(messages)
                except Exception as exc:
                    for tp in first_offsets(messages):
                        consumer.seek(tp)
                    self._fail(exc)
                    continue
                if rejected:
                    self._dead_letter(rejected)
                offsets = next_offsets(messages)
                consumer.commit(offsets=offsets, asynchronous=False)
                metrics.batch_done(self.name, len(messages), time.perf_counter() - started)
                self._committed.update({(tp.topic, tp.partition): tp.offset for tp in offsets})
                self._report_lag(consumer)
                self.processed += len(messages)
                self.failing = 0
                self._backoff = 0.5
        finally:
            self._track([TopicPartition(t, p) for t, p in self.assigned], add=False)
            close_with_timeout(consumer)

    def _report_lag(self, consumer: Consumer) -> None:
        """Lag of each partition this consumer owns: the high watermark (as librdkafka last
        heard it from a fetch: no request to the broker) minus the offset committed. That
        offset is the one this consumer last committed; for a partition it has not
        committed yet, it is asked of the broker once (a partition never committed counts
        from its low watermark, as `auto.offset.reset` = earliest reads it)."""
        self._lag_reported = time.monotonic()
        unknown = [TopicPartition(t, p) for t, p in self.assigned if (t, p) not in self._committed]
        if unknown:
            try:
                for tp in consumer.committed(unknown, timeout=2):
                    if tp.error is None:
                        self._committed[(tp.topic, tp.partition)] = max(tp.offset, NOT_COMMITTED)
            except KafkaException:
                pass  # asked again at the next report
        for topic, partition in self.assigned:
            committed = self._committed.get((topic, partition))
            try:
                watermarks = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
            except KafkaException:
                continue
            if committed is None or watermarks is None or watermarks[1] < 0:
                continue
            low, high = watermarks
            start = committed if committed >= 0 else low
            if start < 0:
                continue
            metrics.consumer_lag(self.group_id, topic, partition, max(0, high - start))

    def _process(self, messages: list[Message]) -> list[tuple[Message, str]]:
        """Decode and handle a batch; return the messages to dead-letter, with the reason."""
        rejected: list[tuple[Message, str]] = []
        by_source: dict[str, Message] = {}
        received: list[Received[E]] = []
        for m in messages:
            try:
                event = self.decode(m.value())
            except UnusableEvent as exc:
                rejected.append((m, str(exc)))
                continue
            where = source(m, self.cluster_id)
            by_source[where] = m
            received.append(Received(event, where, m.key()))
        if received:
            rejected += [(by_source[r.source], why) for r, why in self._handle(received)]
        return rejected

    def _handle(self, batch: list[Received[E]]) -> list[tuple[Received[E], str]]:
        try:
            return self.handler(batch)
        except Exception as exc:
            if not (isinstance(exc, UnusableEvent) or self.unusable(exc)):
                raise  # an outage or a bug: the caller reads the batch again after a back-off
            if len(batch) == 1:
                log.exception("%s: event %s unusable", self.name, batch[0].source)
                return [(batch[0], f"unusable: {exc!r}")]
        # Somewhere in the batch is an event no retry can cure: find it, one at a time.
        return [rejected for r in batch for rejected in self._handle([r])]

    def _track(self, partitions: list[TopicPartition], add: bool) -> None:
        changed = {(p.topic, p.partition) for p in partitions}
        kept = [tp for tp in self.assigned if tp not in changed]
        self.assigned = sorted(kept + list(changed)) if add else kept
        if not add:
            # Another consumer (maybe in another process) owns them now and reports them.
            for tp in changed:
                self._committed.pop(tp, None)
            metrics.partitions_gone(self.group_id, changed)

    def _dead_letter(self, rejected: list[tuple[Message, str]]) -> None:
        """Park unusable messages on `<topic>.dlq`, reason in a header; go on with the rest."""
        if self._dlq is None:
            self._dlq = Producer(producer_config(self.bootstrap_servers))
        for m, reason in rejected:
            log.warning("%s: dead-lettering %s: %s", self.name, source(m, self.cluster_id), reason)
            self._dlq.produce(
                f"{m.topic()}.dlq",
                key=m.key(),
                value=m.value(),
                headers=[
                    # Bounded: a reason can quote the event, which can be large.
                    ("kitchen-error", reason[:500].encode()),
                    ("kitchen-source", f"{m.topic()}:{m.partition()}:{m.offset()}".encode()),
                ],
            )
        if self._dlq.flush(30) > 0:
            raise RuntimeError("dead-letter topic unreachable; batch not committed")
        for m, _ in rejected:
            metrics.dead_lettered(m.topic() or "")
