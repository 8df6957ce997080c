"""Settings: `settings.toml`, overridden by `KITCHEN_<SECTION>_<KEY>` variables, read once.

Each section is a frozen dataclass whose field defaults are the built-in defaults, so a
missing key in the file is never an error and a typo'd key is one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from kitchen import domain
from kitchen.validation import email_problem

ROLES = ("api", "processing", "notification", "relay", "payments")


@dataclasses.dataclass(frozen=True)
class App:
    # development: a request without a key acts as the default merchant, and POST
    # /order/seed works. production: every endpoint needs a merchant's key but /health,
    # /ready, /openapi.json, the dashboard page (/) and its files (/static/...), which
    # need none, and /metrics, which needs the [metrics] token instead, and POST
    # /payments/webhook, which needs the payment provider's signature.
    env: str = "development"

    @property
    def production(self) -> bool:
        return self.env == "production"


@dataclasses.dataclass(frozen=True)
class Roles:
    api: bool = True
    processing: bool = True
    notification: bool = True
    relay: bool = True
    payments: bool = True

    def enabled(self) -> list[str]:
        return [role for role in ROLES if getattr(self, role)]


@dataclasses.dataclass(frozen=True)
class Http:
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 65536
    # SIGTERM waits this long for open requests, then drops the connections left (one
    # client that never finishes its body must not hold the process forever).
    shutdown_seconds: int = 10


@dataclasses.dataclass(frozen=True)
class Database:
    url: str = "sqlite:///kitchen.db"
    # PostgreSQL only: hash partitions of each table that grows with orders, fixed when
    # those tables are created (see kitchen/partitioning.py); later changes do nothing.
    partitions: int = 8


@dataclasses.dataclass(frozen=True)
class Kafka:
    bootstrap_servers: str = "embedded"
    order_created_topic: str = "order_created"
    notify_topic: str = "notify"
    processing_group: str = "kitchen-processing"
    notification_group: str = "kitchen-notification"
    # ORDER_APPLIED, PAYMENT_AUTHORIZED, ... (kitchen/events.py), keyed by merchant.
    order_events_topic: str = "order_events"
    payments_group: str = "kitchen-payments"
    partitions: int = 6
    # Copies of each partition of the topics Kitchen creates (at most one per broker),
    # and how many must have a write before it is acknowledged: a broker may be lost.
    replication_factor: int = 3
    min_insync_replicas: int = 2
    batch_size: int = 500
    # Static group membership: a restarted process with the same id takes its partitions
    # back at once instead of waiting for the group to expire the old member. Give each
    # pod its own stable id (e.g. the pod name); empty means dynamic membership.
    instance_id: str = ""
    session_timeout_ms: int = 10000

    @property
    def embedded(self) -> bool:
        return self.bootstrap_servers == "embedded"


@dataclasses.dataclass(frozen=True)
class Mail:
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    starttls: bool = False
    ssl: bool = False
    # A PEM file of CAs to trust besides the system's (e.g. a company's internal CA).
    ca_file: str = ""
    sender: str = "kitchen@localhost"
    folder: str = "mail"
    timeout_seconds: int = 10

    @property
    def send_deadline_seconds(self) -> int:
        """The longest one send may take (one attempt): Kitchen cuts the connection then."""
        return 3 * self.timeout_seconds

    @property
    def claim_seconds(self) -> int:
        """How long a sender owns a mail it is sending: one send, cut at its deadline,
        plus room to record the outcome. Only then may another sender take it."""
        return self.send_deadline_seconds + 15


@dataclasses.dataclass(frozen=True)
class Alerts:
    threshold: float = 0.5
    email: str = "merchant@example.com"

    @property
    def threshold_fraction(self) -> Fraction:
        # Exact arithmetic: "below 50%" must not depend on float rounding. Kept to the
        # decimal places thresholds have everywhere; `check` refused one out of range.
        return domain.threshold(self.threshold) or Fraction(str(self.threshold))


@dataclasses.dataclass(frozen=True)
class Orders:
    max_lines: int = 100
    max_quantity: int = 10000


@dataclasses.dataclass(frozen=True)
class Scheduler:
    redrive_after_seconds: int = 30
    mail_retry_seconds: int = 5


@dataclasses.dataclass(frozen=True)
class Forecast:
    # Daily use is averaged over this many days of the ledger (or the history there is).
    window_days: int = 7
    # With at least two full weeks of history, each weekday's own average over up to
    # this many weeks forecasts the days ahead (kitchen/forecast.py).
    weekday_weeks: int = 4


@dataclasses.dataclass(frozen=True)
class Payments:
    # "fake": the embedded provider, its payments in Kitchen's database, for development
    # only (POST /payments/fake/{id}/authorize and /decline stand in for a card);
    # "stripe": Stripe's API; "none": no merchant can require payments.
    provider: str = "fake"
    # A hold not authorized within this many minutes is cancelled, the order with it.
    hold_minutes: int = 15
    # The secret webhooks are signed with (Stripe's whsec_...): POST /payments/webhook
    # refuses every event (400) without it. Better set by KITCHEN_PAYMENTS_WEBHOOK_SECRET.
    webhook_secret: str = ""
    stripe_api_key: str = ""
    # Where the Stripe client sends its calls (a test points it at localstripe).
    stripe_api_base: str = "https://api.stripe.com"
    # A provider call that could not be answered is tried again after this many seconds,
    # doubled each time up to retry_max_seconds.
    retry_seconds: int = 2
    retry_max_seconds: int = 300


@dataclasses.dataclass(frozen=True)
class Log:
    # "text" for a terminal; "json": one JSON object per line, for a log collector.
    format: str = "text"


@dataclasses.dataclass(frozen=True)
class Metrics:
    # GET /metrics needs `Authorization: Bearer <token>` when a token is set; without one
    # it is open in development and closed to everyone (401) in production.
    token: str = ""
    # Per-ingredient stock gauges, labelled by ids: each scrape then reads every
    # ingredient of every merchant, so they are off unless asked for.
    stock_gauges: bool = False
    # port > 0: this process also serves GET /metrics, /health and /ready on host:port,
    # whatever its roles (a process without the api role is scraped there); 0: none.
    host: str = "127.0.0.1"
    port: int = 0


@dataclasses.dataclass(frozen=True)
class Settings:
    app: App = App()
    roles: Roles = Roles()
    http: Http = Http()
    database: Database = Database()
    kafka: Kafka = Kafka()
    mail: Mail = Mail()
    alerts: Alerts = Alerts()
    orders: Orders = Orders()
    scheduler: Scheduler = Scheduler()
    log: Log = Log()
    metrics: Metrics = Metrics()
    payments: Payments = Payments()
    forecast: Forecast = Forecast()


# Variables the test suite (and the benchmark, CI) read: settings never take them, so no
# section may ever be named "test" (a unit test checks that).
RESERVED_PREFIX = "KITCHEN_TEST_"


class SettingsError(ValueError):
    pass


def _coerce(value: Any, to: type, where: str) -> Any:
    """Turn a TOML value or an environment string into the field's type."""
    if to is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{where}: expected true or false, got {value!r}")
    try:
        return to(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{where}: expected {to.__name__}, got {value!r}") from None


def load(
    path: str | Path | None = "settings.toml",
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Read settings: file, then environment, then explicit overrides (tests, CLI).

    A file named but missing, or a `KITCHEN_` variable that names no setting, is an
    error: either would start Kitchen on settings nobody chose (development mode, say).
    """
    env = os.environ if env is None else env
    layers = {} if path is None else _read_file(path)
    unknown_variables = _unknown_variables(env)
    if unknown_variables:
        raise SettingsError("; ".join(unknown_variables))

    sections = {}
    for section in dataclasses.fields(Settings):
        cls = _section_class(section)
        values = dict(layers.pop(section.name, {}))
        for field in dataclasses.fields(cls):
            name = f"KITCHEN_{section.name}_{field.name}".upper()
            if name in env:
                values[field.name] = env[name]
        values.update((overrides or {}).get(section.name, {}))
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise SettingsError(f"[{section.name}]: unknown keys {sorted(unknown)}")
        typed = {}
        for key, value in values.items():
            default = getattr(cls(), key)
            typed[key] = _coerce(value, type(default), f"{section.name}.{key}")
        sections[section.name] = cls(**typed)
    if layers:
        raise SettingsError(f"unknown sections {sorted(layers)}")
    settings = Settings(**sections)
    problems = check(settings)
    if problems:
        raise SettingsError("; ".join(problems))
    return settings


def _section_class(section: dataclasses.Field[Any]) -> type:
    return section.type if isinstance(section.type, type) else globals()[str(section.type)]


def _read_file(path: str | Path) -> dict[str, dict[str, Any]]:
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except FileNotFoundError:
        raise SettingsError(
            f"settings file {path}: no such file; name an existing file (such as the "
            "settings.toml shipped with Kitchen)"
        ) from None
    except OSError as exc:
        raise SettingsError(f"settings file {path}: cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path}: not valid TOML: {exc}") from None
    loose = sorted(k for k, v in document.items() if not isinstance(v, dict))
    if loose:
        raise SettingsError(f"settings file {path}: {loose} must be inside a [section]")
    return {k: dict(v) for k, v in document.items()}


def variables() -> list[str]:
    """Every environment variable Kitchen's settings read: KITCHEN_<SECTION>_<KEY>."""
    return [
        f"KITCHEN_{section.name}_{field.name}".upper()
        for section in dataclasses.fields(Settings)
        for field in dataclasses.fields(_section_class(section))
    ]


# Kubernetes gives each pod variables for every Service of its namespace: a Service named
# "kitchen-api" gives KITCHEN_API_SERVICE_HOST, KITCHEN_API_PORT=tcp://10.0.0.7:8000,
# KITCHEN_API_PORT_8000_TCP_ADDR... The platform's, not misspelt settings.
SERVICE_LINK = re.compile(
    r"KITCHEN(_\w+)?_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)"
)
SERVICE_LINK_URL = re.compile(r"(tcp|udp|sctp)://")


def _service_link(name: str, value: str) -> bool:
    if SERVICE_LINK.fullmatch(name):
        return True
    return name.endswith("_PORT") and SERVICE_LINK_URL.match(value) is not None


def _unknown_variables(env: Mapping[str, str]) -> list[str]:
    """One message per `KITCHEN_` variable that no setting reads (a typo would otherwise
    be ignored in silence), naming the nearest known one."""
    known = variables()
    problems = []
    for name in sorted(env):
        if not name.startswith("KITCHEN_") or name.startswith(RESERVED_PREFIX) or name in known:
            continue
        if _service_link(name, env[name]):
            continue
        # Compared without the prefix every name shares, which would make all look alike.
        near = difflib.get_close_matches(name[8:], [k[8:] for k in known], n=1)
        hint = f"did you mean KITCHEN_{near[0]}?" if near else "no setting has that name."
        problems.append(
            f"unknown variable {name}: {hint} Rename or unset it (Kitchen reads "
            f"KITCHEN_<SECTION>_<KEY> for the keys of settings.toml; {RESERVED_PREFIX}* are "
            "the test suite's)"
        )
    return problems


# Values that parse but make no sense are refused at start, here, in one place: a service
# that starts with them fails later, further from the cause (or silently does the wrong
# thing, as sqlite://kitchen.db did: an in-memory database that forgets every order).
POSITIVE = (
    "http.max_body_bytes",
    "http.shutdown_seconds",
    "kafka.partitions",
    "kafka.replication_factor",
    "kafka.min_insync_replicas",
    "kafka.batch_size",
    "kafka.session_timeout_ms",
    "mail.timeout_seconds",
    "orders.max_lines",
    "orders.max_quantity",
    "scheduler.redrive_after_seconds",
    "scheduler.mail_retry_seconds",
    "payments.hold_minutes",
    "payments.retry_seconds",
    "payments.retry_max_seconds",
    "forecast.window_days",
    "forecast.weekday_weeks",
)
PORTS = ("http.port", "mail.smtp_port")
# Each partition is a table PostgreSQL plans and vacuums on its own: beyond a few hundred,
# planning every statement costs more than partitioning saves.
MAX_PARTITIONS = 256
ADDRESSES = ("alerts.email", "mail.sender")
TOPICS = ("kafka.order_created_topic", "kafka.notify_topic", "kafka.order_events_topic")
# Kafka's legal topic characters; Kitchen appends ".dlq" to each topic's name.
TOPIC = re.compile(r"[A-Za-z0-9._-]{1,245}")


def check(s: Settings) -> list[str]:
    """What is wrong with these settings, one message per problem naming the setting."""

    def value(name: str) -> Any:
        section, key = name.split(".")
        return getattr(getattr(s, section), key)

    problems = [f"{n}: must be greater than 0, got {value(n)}" for n in POSITIVE if value(n) <= 0]
    problems += [
        f"{n}: must be a port from 1 to 65535, got {value(n)}"
        for n in PORTS
        if not 1 <= value(n) <= 65535
    ]
    # The rule the API, the CLI and the mailer use too (validation.email_problem).
    problems += [
        f"{n}: {problem}, got {value(n)!r}"
        for n in ADDRESSES
        if (problem := email_problem(value(n))) is not None
    ]
    problems += [
        f"{n}: must be 1 to 245 letters, digits, '.', '_' or '-', got {value(n)!r}"
        for n in TOPICS
        if not TOPIC.fullmatch(value(n))
    ]
    if not 0 <= s.metrics.port <= 65535:
        problems.append(
            f"metrics.port: must be 0 (no operations server) or a port from 1 to 65535, "
            f"got {s.metrics.port}"
        )
    if s.metrics.port and not s.metrics.host.strip():
        problems.append("metrics.host: empty; use 127.0.0.1, or 0.0.0.0 for every interface")
    if not 1 <= s.database.partitions <= MAX_PARTITIONS:
        problems.append(
            f"database.partitions: must be from 1 to {MAX_PARTITIONS}, got {s.database.partitions}"
        )
    threshold = s.alerts.threshold
    if domain.threshold(threshold) is None:
        problems.append(
            f"alerts.threshold: must be between 0 and 1 (exclusive) once rounded to "
            f"{domain.THRESHOLD_PLACES} decimal places, got {threshold}"
        )
    if s.payments.provider not in PROVIDERS:
        problems.append(
            f"payments.provider: must be one of {', '.join(PROVIDERS)}, got {s.payments.provider!r}"
        )
    if s.payments.provider == "stripe" and not s.payments.stripe_api_key:
        problems.append("payments.stripe_api_key: needed with payments.provider = stripe")
    if s.log.format not in ("text", "json"):
        problems.append(f"log.format: must be text or json, got {s.log.format!r}")
    if s.app.env not in ("development", "production"):
        problems.append(f"app.env: must be development or production, got {s.app.env!r}")
    if s.mail.starttls and s.mail.ssl:
        problems.append("mail.starttls, mail.ssl: choose one (STARTTLS on a plain port, or SSL)")
    if s.kafka.min_insync_replicas > s.kafka.replication_factor:
        problems.append(
            f"kafka.min_insync_replicas: must be at most kafka.replication_factor "
            f"({s.kafka.replication_factor}), got {s.kafka.min_insync_replicas}; "
            "otherwise no write could ever be acknowledged"
        )
    if not s.kafka.bootstrap_servers.strip():
        problems.append("kafka.bootstrap_servers: empty; use host:9092,... or embedded")
    problem = database_url_problem(s.database.url)
    if problem:
        problems.append(f"database.url: {problem}")
    token = s.metrics.token
    if token and not METRICS_TOKEN.fullmatch(token):
        # Short tokens are guessable, and the log formatter masks only secrets of 8+
        # characters; a space or a non-ASCII character cannot travel in the header.
        problems.append(
            f"metrics.token: must be at least {MIN_TOKEN} visible ASCII characters without "
            "spaces (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return problems


# The payment providers (kitchen/payments.py provider_for); "fake" in development only.
PROVIDERS = ("fake", "stripe", "none")

# [metrics] token: visible ASCII, no spaces (it travels in a header), 16 or more.
MIN_TOKEN = 16
METRICS_TOKEN = re.compile(rf"[!-~]{{{MIN_TOKEN},}}")


def is_loopback(host: str) -> bool:
    """Only this machine can reach `host`: localhost, 127.0.0.0/8 or ::1."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost, "", or a wildcard such as 0.0.0.0


def same_host(a: str, b: str) -> bool:
    """Whether servers bound to `a` and `b` would want the same address: the same host, or
    either a wildcard (0.0.0.0, ::), which takes the port on every interface."""
    a, b = a.strip().strip("[]").lower(), b.strip().strip("[]").lower()
    return a == b or bool({a, b} & {"0.0.0.0", "::", ""})


def serving_problem(s: Settings) -> str | None:
    """Why this process must not serve with these settings, or None. Development mode
    answers a request without a key as the default merchant: it listens only where no
    other machine can reach it. Production takes no fake payments."""
    if s.app.production and s.payments.provider == "fake":
        # Its cards are rows: an order "paid" so took no money.
        return (
            "payments.provider: fake is for development only (its cards are not real); set "
            "KITCHEN_PAYMENTS_PROVIDER=stripe (with KITCHEN_PAYMENTS_STRIPE_API_KEY) or none"
        )
    if s.roles.api and s.metrics.port == s.http.port and same_host(s.metrics.host, s.http.host):
        return (
            f"metrics.port: {s.metrics.port} is http.port on the same host; choose another "
            "port (KITCHEN_METRICS_PORT), or 0 to serve /metrics on the HTTP port only"
        )
    if not s.roles.api or s.app.production or is_loopback(s.http.host):
        return None
    return (
        f"http.host: development mode on {s.http.host}, which other machines can reach, "
        "would serve every request without a key as the default merchant; set "
        "KITCHEN_APP_ENV=production (every request needs a merchant's key: python app.py "
        "merchant create ...) or KITCHEN_HTTP_HOST=127.0.0.1"
    )


def database_url_problem(url: str) -> str | None:
    """Why `url` names no database Kitchen can open, or None. Never shows the password."""
    shown = mask_url(url).replace("\0", "%00")
    usage = "use sqlite:///relative.db, sqlite:////absolute.db or postgresql://user:pass@host/db"
    try:
        parsed = urlsplit(url)
        parsed.port  # noqa: B018 (parses the port, raising ValueError on a bad one)
    except ValueError:
        # Not the parser's message: it can quote part of the password.
        return f"{shown} is not a valid URL (a bad port, or an unencoded character); {usage}"
    if "\0" in url:  # only from a file ("\u0000"): no file name or password holds one
        return f"{shown} holds a NUL character; {usage}"
    if parsed.scheme == "sqlite":
        if parsed.netloc:
            # sqlite://kitchen.db parses as host "kitchen.db" and no path: an in-memory
            # database that would forget everything at every restart.
            return f"{shown} names a host, not a file (two slashes); {usage}"
        if parsed.path in ("", "/"):
            return f"{shown} names no file; {usage}"
        return None
    if parsed.scheme in ("postgres", "postgresql"):
        if not parsed.path.strip("/"):
            return f"{shown} names no database; {usage}"
        # The user name and password are percent-decoded: %00 becomes a NUL, which no
        # connection string can carry (the driver raises ValueError, not a DatabaseError).
        if any("\0" in unquote(part or "") for part in (parsed.username, parsed.password)):
            return (
                f"{shown} holds a NUL character (%00) in its user name or password, which no "
                "database accepts; set the real ones, percent-encoded"
            )
        return None
    return f"unsupported scheme {parsed.scheme!r} in {shown}; {usage}"


def mask_url(url: str) -> str:
    """`url` with its password replaced by ***, fit for a log line or an error message.

    Masks up to the last '@', so a password with an unencoded '@' or '/' is still hidden.
    """
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:@/]*):.*@", r"\1:***@", url, count=1)


def secrets(s: Settings) -> list[str]:
    """The passwords and tokens among the settings, for the log formatter to mask should
    one ever reach a line (the code never logs them)."""
    found = [
        s.mail.smtp_password,
        s.metrics.token,
        s.payments.webhook_secret,
        s.payments.stripe_api_key,
    ]
    with contextlib.suppress(ValueError):
        password = urlsplit(s.database.url).password
        if password:
            found += [password, unquote(password)]
    return [p for p in found if p]


def with_roles(settings: Settings, roles: str) -> Settings:
    """Apply a `--roles api,processing` list: the named roles on, all others off."""
    names = [r.strip() for r in roles.split(",") if r.strip()]
    bad = [r for r in names if r not in ROLES]
    if bad:
        raise SettingsError(f"unknown roles {bad}; choose from {', '.join(ROLES)}")
    return dataclasses.replace(settings, roles=Roles(**{r: r in names for r in ROLES}))
