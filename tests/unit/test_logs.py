"""Log lines: the JSON fields, the role of a line, masking of what must never be logged."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading

from kitchen import logs
from kitchen import settings as config

KEY = "kitchen_" + "A" * 43


def record(
    message: str, *args: object, thread: str = "MainThread", **extra: object
) -> logging.LogRecord:
    r = logging.LogRecord("kitchen.processing", logging.INFO, __file__, 1, message, args, None)
    r.threadName = thread
    r.__dict__.update(extra)
    return r


def test_a_json_line_has_the_fields_and_the_ids_it_is_about() -> None:
    r = record("order %d rejected", 7, thread="processing", order_id=7, merchant_id=2)
    line = logs.JsonFormatter(logs.Redactor()).format(r)
    entry = json.loads(line)
    assert entry == {
        "time": entry["time"],
        "level": "info",
        "role": "processing",
        "logger": "kitchen.processing",
        "message": "order 7 rejected",
        "order_id": 7,
        "merchant_id": 2,
    }
    assert entry["time"].endswith("Z") and "T" in entry["time"]
    assert "\n" not in line


def test_a_traceback_stays_in_its_one_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        r = record("failed")
        r.exc_info = sys.exc_info()
    line = logs.JsonFormatter(logs.Redactor()).format(r)
    assert "\n" not in line
    assert "RuntimeError: boom" in json.loads(line)["exception"]


def test_the_role_comes_from_the_thread_the_job_or_the_logger() -> None:
    assert logs.role_of(record("x", thread="relay")) == "relay"
    assert logs.role_of(record("x", thread="notification")) == "notification"
    assert logs.role_of(record("x", thread="AnyIO worker thread")) == "api"
    assert logs.role_of(record("x", thread="MainThread")) == "main"
    uvicorn = record("x")
    uvicorn.name = "uvicorn.error"
    assert logs.role_of(uvicorn) == "api"
    seen: list[str] = []
    job = logs.in_role("relay", lambda: seen.append(logs.role_of(record("x"))))
    thread = threading.Thread(target=job, name="ThreadPoolExecutor-0_0")
    thread.start()
    thread.join()
    assert seen == ["relay"]
    assert logs.role_of(record("x")) == "main"  # the role ends with the job


def test_a_short_password_is_masked_where_it_sits_as_a_password() -> None:
    """CI's database password is "kitchen" (7 characters): too short to mask in every word,
    it is masked where an error would quote it, in a URL or a connection string."""
    s = config.load(
        None, env={"KITCHEN_DATABASE_URL": "postgresql://kitchen:kitchen@127.0.0.1:5432/k"}
    )
    redact = logs.Redactor(config.secrets(s))
    r = record(
        "connect failed: %s; dsn %s",
        "postgresql://kitchen:kitchen@127.0.0.1:5432/kitchen_test",
        "host=db user=kitchen password=kitchen dbname=k",
    )
    for formatter in (logs.TextFormatter(redact), logs.JsonFormatter(redact)):
        line = formatter.format(r)
        assert "postgresql://kitchen:***@127.0.0.1:5432/kitchen_test" in line, line
        assert "user=kitchen password=*** dbname=k" in line, line
        assert ":kitchen@" not in line and "password=kitchen" not in line, line
    # Any URL's password, configured or not, and a quoted one with a space in it.
    assert redact("smtp://a:b@c:25 and password='p w' x") == "smtp://a:***@c:25 and password=*** x"
    # Where it is no password it stays: a line is not mangled, nor the password given away.
    assert redact("kitchen.processing: http://127.0.0.1:8000/order") == (
        "kitchen.processing: http://127.0.0.1:8000/order"
    )


def test_passwords_and_keys_are_masked_in_both_formats() -> None:
    s = config.load(
        None,
        env={
            "KITCHEN_MAIL_SMTP_PASSWORD": "smtp-secret-1",
            "KITCHEN_DATABASE_URL": "postgresql://kitchen:db%2Fsecret-2@db/kitchen",
            "KITCHEN_METRICS_TOKEN": "scrape-secret-3-0123456789",
        },
    )
    redact = logs.Redactor(config.secrets(s))
    r = record(
        "%s %s %s %s %s",
        "smtp-secret-1",
        "db%2Fsecret-2",
        "db/secret-2",
        KEY,
        "Bearer scrape-secret-3-0123456789",
    )
    for formatter in (logs.TextFormatter(redact), logs.JsonFormatter(redact)):
        line = formatter.format(r)
        assert "secret" not in line and KEY not in line, line
        assert "kitchen_***" in line
    # Too short to mask without mangling ordinary words (compose's password is "kitchen").
    assert logs.Redactor(["kitchen"])("kitchen.processing") == "kitchen.processing"


def test_user_text_cannot_forge_a_text_line_or_drive_the_terminal() -> None:
    name = "onion\n2026-01-02 03:04:05,678 ERROR kitchen: forged\r\x1b[31mred\u2028\x9b2J"
    r = record("alert 3: %s fell to %d g", name, 480)
    line = logs.TextFormatter(logs.Redactor()).format(r)
    assert line.endswith(
        "kitchen.processing: alert 3: onion\\n2026-01-02 03:04:05,678 ERROR kitchen: forged"
        "\\r\\x1b[31mred\\u2028\\x9b2J fell to 480 g"
    )
    assert line.isprintable()  # one line, no control character left
    # The message itself (a format string holding user text) is escaped too.
    assert "\n" not in logs.TextFormatter(logs.Redactor()).format(record(name))


def test_a_text_traceback_keeps_its_lines() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        r = record("failed for %s", "a\nb")
        r.exc_info = sys.exc_info()
    lines = logs.TextFormatter(logs.Redactor()).format(r).splitlines()
    assert lines[0].endswith("kitchen.processing: failed for a\\nb")
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: boom"


def test_a_line_written_for_a_key_names_the_key() -> None:
    """Issue 16 item 24: lines of a request made with a key carry the key's name."""

    def lines() -> tuple[str, str]:
        logs.acting_key("till-1")
        r = record("merchant %d changed its threshold", 2)
        return logs.TextFormatter(logs.Redactor()).format(r), logs.JsonFormatter(
            logs.Redactor()
        ).format(r)

    text, line = contextvars.copy_context().run(lines)  # as each request has its own
    assert text.endswith("merchant 2 changed its threshold [key 'till-1']")
    assert json.loads(line)["key"] == "till-1"
    assert "key" not in json.loads(logs.JsonFormatter(logs.Redactor()).format(record("x")))
