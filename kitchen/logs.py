"""Log lines: text for a terminal, or one JSON object per line for a log collector.

    [log] format = "json"    (KITCHEN_LOG_FORMAT=json)

    {"time": "2026-01-02T03:04:05.678Z", "level": "info", "role": "processing",
     "logger": "kitchen.processing", "message": "alert 3: onion fell to 480 g, below ...",
     "alert_id": 3, "order_id": 26, "merchant_id": 1}

`role` is the role whose work wrote the line: `processing`, `notification` and `relay`
(their threads, and the periodic jobs each owns), `api` (requests), else `main` (start,
stop, the CLI). A line about one order, alert or merchant carries its id: the call site
passes it, `log.info(..., extra={"order_id": order.id})`. A line written for a request
made with an API key carries `key`: that key's name (never the key); text lines end
with `[key 'till-1']`.

No secret is logged: the code never formats an API key or a password into a line, and
as a second line of defence both formats replace with `***` anything shaped like an API
key, any password where it sits as one (a URL's `user:password@`, a connection string's
`password=`), whatever its length, and the configured passwords of 8 characters or more
wherever they appear.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from kitchen.settings import ROLES

FORMATS = ("text", "json")
IDS = ("order_id", "alert_id", "merchant_id")  # `extra` keys a JSON line carries
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# merchants.new_key(): "kitchen_" + 43 URL-safe characters.
API_KEY = re.compile(r"kitchen_[A-Za-z0-9_-]{40,}")
# A password is masked wherever it appears only from this length: masking a short one
# (CI's and compose's is "kitchen") everywhere would mangle ordinary words (the logger
# "kitchen.processing", the key prefix), and a word masked on every line gives the password
# away. Shorter ones are masked where they sit as a password (below), which is how a
# password reaches a line: in a database URL or a connection string quoted by an error.
MIN_SECRET = 8
# "scheme://user:password@": up to the last "@" of the word, as settings.mask_url does.
URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*:)\S*@")
# libpq's "password=secret" (or "password='se cret'") in a connection string.
DSN_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.IGNORECASE)

_role: contextvars.ContextVar[str | None] = contextvars.ContextVar("kitchen_role", default=None)
_key: contextvars.ContextVar[str | None] = contextvars.ContextVar("kitchen_key", default=None)

T = TypeVar("T")


@contextlib.contextmanager
def role(name: str) -> Iterator[None]:
    """Lines logged inside are `name`'s (for work that runs on a shared thread)."""
    token = _role.set(name)
    try:
        yield
    finally:
        _role.reset(token)


def acting_key(name: str | None) -> None:
    """The lines logged from here on in this context (one request, and the thread-pool
    work it starts) name the API key that acts: its name, never the key."""
    _key.set(name)


def in_role(name: str, job: Callable[[], T]) -> Callable[[], T]:
    """`job`, logging as `name` (a periodic job runs on the scheduler's threads)."""

    def run() -> T:
        with role(name):
            return job()

    return run


def role_of(record: logging.LogRecord) -> str:
    """Which role wrote `record`: set explicitly, else known from the thread or logger."""
    explicit = _role.get()
    if explicit is not None:
        return explicit
    thread = record.threadName or ""
    if thread in ROLES:  # the consumer and relay threads are named after their role
        return thread
    if thread.startswith("AnyIO worker") or record.name.startswith(("uvicorn", "kitchen.http")):
        return "api"  # request work: the event loop's own lines and its thread pool
    return "main"


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = DSN_PASSWORD.sub(r"\1***", URL_PASSWORD.sub(r"\1***@", text))
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return API_KEY.sub("kitchen_***", text)


# Written as escapes in a text line: C0 and C1 controls (a line break, ESC, CSI) and the
# Unicode line and paragraph separators. Raw, user text (an ingredient's name, a note)
# could start a fake line or drive the terminal that shows the log.
_ESCAPES = {
    **{c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]},
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def escape(text: str) -> str:
    """`text` on one line, its control characters written as escapes (`\\n`, `\\x1b`)."""
    return text if text.isprintable() else text.translate(_ESCAPES)


class TextFormatter(logging.Formatter):
    """One line per record (its message and arguments escaped), then the traceback, if
    any, on the lines after it as Python prints it."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__(TEXT_FORMAT)
        self.redact = redact

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(_with_key(super().format(record)))


def _with_key(text: str) -> str:
    """The line, then the name of the API key that acts, if any (before a traceback)."""
    key = _key.get()
    if key is None:
        return text
    line, newline, rest = text.partition("\n")
    return f"{line} [key {key!r}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, role, logger, message, the ids the
    line is about, and the traceback as `exception` when there is one."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        entry: dict[str, Any] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "role": role_of(record),
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        for key in IDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if (acting := _key.get()) is not None:
            entry["key"] = acting  # the name of the API key that acts
        if record.exc_info:
            entry["exception"] = self.redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = self.redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    """Send every log line (Kitchen's, uvicorn's, librdkafka's) to stderr in `fmt`,
    replacing what a previous call set up."""
    redact = Redactor(secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redact) if fmt == "json" else TextFormatter(redact))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # Exceptions escaping a thread: a JSON line too, not a bare traceback on stderr.
    threading.excepthook = _log_thread_exception


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("kitchen").error(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
    )
