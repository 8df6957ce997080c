"""Kitchen: one deployable. Reads settings, starts the roles that are on, serves HTTP.

    python app.py                          # every role, embedded defaults
    python app.py --roles processing       # one role per pod
    python app.py merchant create --name N --email E   # prints the merchant's API key
    python app.py digest send MERCHANT [--date YYYY-MM-DD]  # a morning digest, now

Only this module knows every part; the parts know only what their constructor is given.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TextIO, TypeVar
from urllib.parse import urlsplit

import peewee as pw
import uvicorn
from apscheduler.schedulers.background import BackgroundScheduler
from starlette.applications import Starlette

from kitchen import (
    admin,
    alerts,
    digest,
    forecast,
    inventory,
    logs,
    merchants,
    metrics,
    migrations,
    notifications,
    orders,
    outbox,
    payment_worker,
    payments,
    processing,
    scheduler,
)
from kitchen import settings as config
from kitchen.db import bind, is_data_error
from kitchen.events import Handler, Notify, OrderCreated, OrderEvent
from kitchen.http import Api, build_app, build_operations_app
from kitchen.intake import Intake
from kitchen.kafka import (
    EMBEDDED_FETCH_WAIT_MS,
    FETCH_WAIT_MS,
    BrokerUnreachable,
    ConsumerWorker,
    EmbeddedKafka,
    Publisher,
    ensure_topics,
)
from kitchen.mail import Mailer, make_mailer
from kitchen.merchants import ensure_default_merchant
from kitchen.outbox import Relay
from kitchen.providers import Provider

log = logging.getLogger("kitchen")

E = TypeVar("E")


class Kitchen:
    """The running service: database, Kafka clients, role threads, jobs and the web app."""

    def __init__(self, settings: config.Settings, mailer: Mailer | None = None) -> None:
        self.settings = settings
        self.mailer = mailer or make_mailer(settings.mail)
        self.embedded: EmbeddedKafka | None = None
        self.relay: Relay | None = None
        # POST /order's group commit (one writer thread, started by the first order).
        self.intake = Intake(settings.kafka.order_created_topic, on_commit=self.wake_relay)
        # The api role's notes of when each key was last used, written once a minute.
        self.key_uses = merchants.KeyUses()
        self.workers: list[ConsumerWorker[Any]] = []
        self.jobs: BackgroundScheduler | None = None
        self.sender: notifications.Sender | None = None  # the notification role's mail
        self.settler: payment_worker.Settler | None = None  # the payments role's calls
        self.bootstrap_servers = settings.kafka.bootstrap_servers
        self.merchant_id = 0
        # Set once the relay and consumers run (at once, or when Kafka first answers).
        self.kafka_roles_started = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> Kitchen:
        """Open the database (or raise StartupError), then start the roles that are on.

        Roles that use Kafka start once the broker answers and their topics exist; until
        then a background thread keeps trying, and the API takes orders into the outbox.
        """
        s = self.settings
        self.merchant_id = open_database(s)
        k = s.kafka
        topics = [k.order_created_topic, k.notify_topic, k.order_events_topic]
        topics += [f"{t}.dlq" for t in topics]
        if k.embedded:
            self.embedded = EmbeddedKafka()
            self.embedded.create_topics(topics)
            self.bootstrap_servers = self.embedded.bootstrap_servers
            # Allowed in either mode (the image alone runs production on it): the
            # database holds every order and alert, and _requeue_lost rebuilds what the
            # cluster forgot. What it cannot do is share events with another process.
            log.warning(
                "embedded in-memory Kafka at %s: only this process can use it, and it "
                "forgets its events when the process stops (pending orders and alerts are "
                "queued again from the database at the next start). Set "
                "KITCHEN_KAFKA_BOOTSTRAP_SERVERS for a real broker.",
                self.bootstrap_servers,
            )

        threshold = s.alerts.threshold_fraction
        jobs: list[tuple[Any, float]] = []
        at_once: list[Any] = []  # jobs that run at the start too (scheduler.start)
        if s.roles.api:
            # Keys' last uses: one write per used key a minute, not one per request.
            jobs.append((logs.in_role("api", self.key_uses.flush), self.key_uses.FLUSH_SECONDS))
        if s.roles.relay:
            if self.embedded is not None:
                self._requeue_lost()
            self.relay = Relay(Publisher.to(self.bootstrap_servers), k.batch_size)
            redrive = datetime.timedelta(seconds=s.scheduler.redrive_after_seconds)
            every = max(1.0, s.scheduler.redrive_after_seconds / 3)
            jobs += [
                (
                    logs.in_role("relay", lambda: orders.redrive(k.order_created_topic, redrive)),
                    every,
                ),
                (logs.in_role("relay", lambda: alerts.redrive(k.notify_topic, redrive)), every),
                (logs.in_role("relay", outbox.purge), 3600),
            ]
        if s.roles.processing:
            self.workers.append(
                self._worker(
                    "processing",
                    k.processing_group,
                    k.order_created_topic,
                    OrderCreated.decode,
                    processing.order_created_handler(
                        k.notify_topic,
                        k.order_events_topic,
                        threshold,
                        self.wake_relay,
                        forecast.Rules(s.forecast.window_days, s.forecast.weekday_weeks),
                    ),
                )
            )
        if s.roles.notification:
            # Mail goes out from its own thread: the consumer must keep polling, however
            # long SMTP takes.
            self.sender = notifications.Sender(
                self.mailer, s.mail.claim_seconds, s.scheduler.mail_retry_seconds
            )
            self.workers.append(
                self._worker(
                    "notification",
                    k.notification_group,
                    k.notify_topic,
                    Notify.decode,
                    notifications.notify_handler(threshold, self.sender.wake),
                )
            )
            # The morning digests: recorded when due (once per merchant and local day,
            # whichever process looks first), mailed by the sender it wakes; looked for
            # at the start too, for a day missed while everything was down.
            record = logs.in_role("notification", digest.job(digest_rules(s), self.sender.wake))
            jobs.append((record, digest.EVERY))
            at_once.append(record)
        if s.roles.payments:
            # Provider calls go out from their own thread, as mail does: the consumer only
            # records what is owed.
            cycle, provider = payments.Cycle.of(s), payments.provider_for(s.payments)
            self.settler = payment_worker.Settler(
                provider,
                cycle,
                s.payments.retry_seconds,
                s.payments.retry_max_seconds,
            )
            self.workers.append(
                self._worker(
                    "payments",
                    k.payments_group,
                    k.order_events_topic,
                    OrderEvent.decode,
                    payment_worker.order_events_handler(cycle, self.settler.wake),
                )
            )
            job = payment_worker.jobs(cycle, provider, self.settler)
            jobs.append((logs.in_role("payments", job), payment_worker.EVERY))
        if k.embedded or not self._kafka_roles():
            self._start_kafka_roles()
        else:
            threading.Thread(
                target=self._start_kafka_roles_when_topics_exist,
                args=(topics,),
                name="kafka-start",
                daemon=True,
            ).start()
        # The jobs and the sender need only the database (and SMTP): they run while
        # Kafka is away.
        if jobs:
            self.jobs = scheduler.start(jobs, at_once)
        if self.sender is not None:
            self.sender.start()
        if self.settler is not None:
            self.settler.start()
        if s.app.production:
            log.info("production mode: every request needs a merchant's key")
        else:
            log.warning(
                "development mode: requests without a key act as the default merchant "
                "(id %d); set KITCHEN_APP_ENV=production to require keys",
                self.merchant_id,
            )
        if s.roles.api and s.app.production and not s.metrics.token:
            log.warning(
                "metrics.token is not set: GET /metrics answers 401 to every scrape; set "
                "KITCHEN_METRICS_TOKEN and give Prometheus the same token"
            )
        log.info("roles on: %s", ", ".join(s.roles.enabled()) or "none")
        # kitchen_role_ready is read at each scrape; the relay's process reports the
        # outbox and mail gauges of the database.
        metrics.report_roles(self, self.roles_ready, s.roles.relay)
        return self

    def _kafka_roles(self) -> list[Relay | ConsumerWorker[Any]]:
        return [*self.workers, *([self.relay] if self.relay is not None else [])]

    def _start_kafka_roles_when_topics_exist(self, topics: list[str]) -> None:
        """Create the topics on the broker, trying again until it answers, then start the
        roles. Waiting for the topics first keeps a consumer or producer from having them
        auto-created with the broker's default partition count."""
        k = self.settings.kafka
        delay = 1.0
        while not self._stopping.is_set():
            try:
                ensure_topics(
                    self.bootstrap_servers,
                    topics,
                    k.partitions,
                    k.replication_factor,
                    k.min_insync_replicas,
                )
                break
            except BrokerUnreachable as exc:
                reason = exc.reason
            except Exception as exc:  # a bug must not leave the roles unstarted for good
                log.exception("creating Kafka topics failed")
                reason = f"{type(exc).__name__}: {exc}"
            log.warning(
                "Kafka broker unreachable at %s (%s); %s start when it answers "
                "(orders wait in the outbox); next try in %.0f s",
                self.bootstrap_servers,
                reason,
                ", ".join(self._kafka_role_names()),
                delay,
            )
            self._stopping.wait(delay)
            delay = min(delay * 2, 15.0)
        else:
            return
        log.info(
            "Kafka answered at %s; starting %s",
            self.bootstrap_servers,
            ", ".join(self._kafka_role_names()),
        )
        self._start_kafka_roles()

    def _kafka_role_names(self) -> list[str]:
        return [w.name for w in self.workers] + (["relay"] if self.relay is not None else [])

    def _start_kafka_roles(self) -> None:
        with self._lock:  # against a stop() at the same moment
            if self._stopping.is_set():
                return
            for role in self._kafka_roles():
                role.start()
            self.kafka_roles_started.set()

    def _worker(
        self,
        name: str,
        group: str,
        topic: str,
        decode: Callable[[bytes | None], E],
        handler: Handler[E],
    ) -> ConsumerWorker[E]:
        k = self.settings.kafka
        return ConsumerWorker(
            name,
            self.bootstrap_servers,
            group,
            [topic],
            decode,
            handler,
            k.batch_size,
            instance_id=f"{k.instance_id}-{name}" if k.instance_id else "",
            session_timeout_ms=k.session_timeout_ms,
            # Besides what the events module calls unusable, only data the database
            # refused is dead-lettered; any other error is retried and shows in /ready.
            unusable=is_data_error,
            fetch_wait_ms=EMBEDDED_FETCH_WAIT_MS if self.embedded else FETCH_WAIT_MS,
        )

    def _requeue_lost(self) -> None:
        """The embedded cluster starts empty: every event of the last run that was not
        applied is gone. Queue them again now, not `redrive_after_seconds` later. No other
        process shares an embedded cluster, so the last run's relay claims are void too."""
        k, now = self.settings.kafka, datetime.timedelta(0)
        released = outbox.release_claims()
        orders_again = orders.redrive(k.order_created_topic, now, limit=None)
        alerts_again = alerts.redrive(k.notify_topic, now, limit=None)
        if released or orders_again or alerts_again:
            log.info(
                "embedded Kafka starts empty: %d pending orders and %d alerts queued again, "
                "%d unsent outbox rows released",
                orders_again,
                alerts_again,
                released,
            )

    def wake_relay(self) -> None:
        if self.relay is not None:
            self.relay.wake()

    def readiness(self) -> dict[str, bool]:
        """Each role: running and not failing again and again (not yet running while
        Kafka has not answered since the start)."""
        parts = {w.name: w.ready for w in self.workers}
        if self.relay is not None:
            parts["relay"] = self.relay.ready
        if self.settler is not None:
            parts["payments-settler"] = self.settler.ready
        return parts

    def roles_ready(self) -> dict[str, bool]:
        """`readiness()`, plus api (ready while it runs) in a process with the api role."""
        return {**({"api": True} if self.settings.roles.api else {}), **self.readiness()}

    def web_app(self, provider: Provider | None = None) -> Starlette:
        """The HTTP app; `provider`: the payment provider (default: the settings'), which
        tests replace."""
        return build_app(self._api(provider))

    def operations_app(self) -> Starlette:
        """What `[metrics] port` serves in any process: /metrics, /health, /ready."""
        return build_operations_app(self._api())

    def _api(self, provider: Provider | None = None) -> Api:
        return Api(
            self.settings,
            self.merchant_id,
            self.wake_relay,
            self.readiness,
            self.intake,
            self.key_uses,
            provider,
        )

    def stop(self) -> None:
        """Stop taking work, finish the batch in hand, close clients. Once: a second call
        (a test's clean-up after the test stopped it) does nothing."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
            started = self.kafka_roles_started.is_set()
        metrics.forget_roles(self)
        self.intake.stop()  # HTTP has stopped: save the orders still queued, answered or not
        if self.jobs is not None:
            self.jobs.shutdown(wait=True)
        if self.sender is not None:
            self.sender.stop(self.settings.mail.claim_seconds)  # a send is cut before that
        if self.settler is not None:
            self.settler.stop()
        if self.settings.roles.api:
            with contextlib.suppress(pw.DatabaseError):  # a last use is not worth a failed stop
                self.key_uses.flush()
        for worker in self.workers if started else []:
            worker.stop()
        if self.relay is not None and started:
            self.relay.stop()
        if self.embedded is not None:
            self.embedded.close()


def digest_rules(s: config.Settings) -> inventory.AlertRules:
    """What a digest needs of the settings: the default threshold and the forecast's."""
    return inventory.AlertRules(
        s.alerts.threshold_fraction,
        s.kafka.notify_topic,
        forecast.Rules(s.forecast.window_days, s.forecast.weekday_weeks),
    )


class StartupError(Exception):
    """Kitchen cannot start with these settings (the message names the setting)."""


def open_database(s: config.Settings) -> int:
    """Bind the database, bring its schema up to date (create missing tables, apply
    migrations), return the default merchant's id.

    An unreachable or unusable database is a StartupError naming the setting, with
    the password masked, so main() can say it in one line.
    """
    try:
        bind(s.database.url)
        migrations.upgrade(s.database.partitions)
        merchant = ensure_default_merchant(s.alerts.email)
    except pw.DatabaseError as exc:
        # The driver's first line says what failed (refused, no such file, bad
        # password); the rest is hints. Never the password itself.
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        password = urlsplit(s.database.url).password
        if password:
            reason = reason.replace(password, "***")
        url = config.mask_url(s.database.url)
        raise StartupError(f"database.url: cannot use {url}: {reason}") from None
    if merchant.alert_email != s.alerts.email:
        log.warning(
            "alerts.email %s is not used: the default merchant's alert address is "
            "already %s (the setting only seeds a new merchant)",
            s.alerts.email,
            merchant.alert_email,
        )
    return merchant.id


class Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after shutting down, which would kill the process before
    Kitchen stops its consumers; here a signal only ends `run`, and main() cleans up."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        signals = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--settings", help="settings file (default: ./settings.toml if it exists, else built-in)"
    )
    parser.add_argument("--roles", help="comma-separated: api,processing,notification,relay")
    digest.add_command(admin.add_commands(parser))
    args = parser.parse_args(argv)
    # Until the settings are read: the environment's format, if it names one.
    fmt = os.environ.get("KITCHEN_LOG_FORMAT", "text")
    fmt = fmt if fmt in logs.FORMATS else "text"
    logs.configure(fmt)
    try:
        # Without --settings, ./settings.toml when there is one (the built-in defaults are
        # the shipped file's values); a file named but missing is an error.
        path = args.settings
        if path is None and os.path.exists("settings.toml"):
            path = "settings.toml"
        settings = config.load(path)
        if args.roles is not None:
            settings = config.with_roles(settings, args.roles)
        fmt = settings.log.format
        logs.configure(fmt, config.secrets(settings))
        if args.command == "merchant":
            open_database(settings)
            return admin.run(args)
        if args.command == "digest":
            open_database(settings)
            mailer = make_mailer(settings.mail)
            return digest.run_command(
                args, mailer, settings.mail.claim_seconds, digest_rules(settings)
            )
        problem = config.serving_problem(settings)
        if problem:
            raise StartupError(problem)
        kitchen = Kitchen(settings).start()
    except (config.SettingsError, StartupError) as exc:
        # One line an operator can act on, exit code 2: a traceback would bury it.
        say(f"kitchen: cannot start: {exc}", fmt, logging.ERROR, sys.stderr)
        return 2

    try:
        operations = serve_operations(kitchen, fmt)
    except StartupError as exc:
        kitchen.stop()
        say(f"kitchen: cannot start: {exc}", fmt, logging.ERROR, sys.stderr)
        return 2

    try:
        if settings.roles.api:
            host, port = settings.http.host, settings.http.port
            say(f"Kitchen listening on http://{host}:{port}", fmt)
            server_config = uvicorn.Config(
                kitchen.web_app(),
                host=host,
                port=port,
                log_level="warning",
                # uvicorn's lines go through Kitchen's handler (and format), not its own.
                log_config=None,
                # After this, requests still open are cancelled and their connections
                # dropped: a client that never finishes its body cannot stall SIGTERM.
                timeout_graceful_shutdown=settings.http.shutdown_seconds,
            )
            Server(server_config).run()
        else:
            stopped = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stopped.set())
            say("Kitchen running without HTTP; Ctrl-C stops it", fmt)
            # Python runs a signal's handler in the main thread once that thread runs
            # again; the kernel may hand the signal to another thread (seen after a
            # SIGSTOP/SIGCONT), and a wait without timeout would then never end.
            while not stopped.wait(1):
                pass
    finally:
        if operations is not None:
            operations.stop()
        kitchen.stop()
        log.info("stopped")
    return 0


class OperationsServer:
    """`[metrics] port`: /metrics, /health and /ready served from a thread of their own
    (a uvicorn.Server outside the main thread installs no signal handlers: main() stops
    it), so that a process without the api role is scraped too."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level="warning", log_config=None)
        )
        self.thread = threading.Thread(target=self.server.run, name="operations", daemon=True)
        self.where = f"{host}:{port}"

    def start(self) -> None:
        """Listen, or raise StartupError (the port taken, say): uvicorn ends its thread."""
        self.thread.start()
        while not self.server.started and self.thread.is_alive():
            self.thread.join(0.02)
        if not self.server.started:
            raise StartupError(
                f"metrics.port: cannot listen on {self.where} (in use, or not an address "
                "of this machine); choose another KITCHEN_METRICS_HOST/PORT, or 0 for none"
            )

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def serve_operations(kitchen: Kitchen, fmt: str) -> OperationsServer | None:
    """Start the operations server when `[metrics] port` is set."""
    m = kitchen.settings.metrics
    if not m.port:
        return None
    server = OperationsServer(kitchen.operations_app(), m.host, m.port)
    server.start()
    say(f"Kitchen operations (/metrics, /health, /ready) on http://{m.host}:{m.port}", fmt)
    return server


def say(line: str, fmt: str, level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """A line for whoever started Kitchen: printed as it is for a terminal, a log line
    (so one JSON object) when the log format is json."""
    if fmt == "json":
        log.log(level, line)
    else:
        print(line, file=stream or sys.stdout, flush=True)


if __name__ == "__main__":
    sys.exit(main())
