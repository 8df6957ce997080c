import dataclasses
import re
from pathlib import Path

import pytest

from kitchen import settings as config
from kitchen.kafka import copies

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_file_gives_the_embedded_defaults() -> None:
    s = config.load(ROOT / "settings.toml", env={})
    assert s.database.url == "sqlite:///kitchen.db"
    assert s.kafka.bootstrap_servers == "embedded" and s.kafka.embedded
    assert s.kafka.order_created_topic == "order_created" and s.kafka.notify_topic == "notify"
    assert s.roles.enabled() == ["api", "processing", "notification", "relay", "payments"]
    assert s.payments.provider == "fake" and s.kafka.order_events_topic == "order_events"
    assert s.mail.smtp_host == "" and s.alerts.threshold == 0.5
    assert s.log.format == "text"
    assert s.database.partitions == 8
    assert config.load(ROOT / "settings.toml", env={"KITCHEN_LOG_FORMAT": "json"}).log.format == (
        "json"
    )


def test_environment_overrides_the_file_with_types() -> None:
    env = {
        "KITCHEN_HTTP_PORT": "8081",
        "KITCHEN_MAIL_SMTP_HOST": "127.0.0.1",
        "KITCHEN_MAIL_STARTTLS": "yes",
        "KITCHEN_ROLES_RELAY": "false",
        "KITCHEN_ALERTS_THRESHOLD": "0.25",
    }
    s = config.load(ROOT / "settings.toml", env=env)
    assert s.http.port == 8081
    assert s.mail.smtp_host == "127.0.0.1" and s.mail.starttls is True
    assert s.roles.relay is False
    assert (
        s.alerts.threshold_fraction.numerator == 1 and s.alerts.threshold_fraction.denominator == 4
    )


def test_bad_values_and_unknown_keys_are_errors() -> None:
    with pytest.raises(config.SettingsError, match=r"http\.port"):
        config.load(None, env={"KITCHEN_HTTP_PORT": "eighty"})
    with pytest.raises(config.SettingsError, match="unknown keys"):
        config.load(None, env={}, overrides={"http": {"prot": 1}})


def test_roles_flag_turns_on_only_the_named_roles() -> None:
    s = config.with_roles(config.load(None, env={}), "api, processing")
    assert s.roles.enabled() == ["api", "processing"]
    with pytest.raises(config.SettingsError, match="unknown roles"):
        config.with_roles(s, "api,kitchen-sink")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("KITCHEN_ALERTS_THRESHOLD", "0", "alerts.threshold: must be between 0 and 1"),
        ("KITCHEN_ALERTS_THRESHOLD", "1", "alerts.threshold: must be between 0 and 1"),
        ("KITCHEN_ALERTS_THRESHOLD", "-0.5", "alerts.threshold: must be between 0 and 1"),
        ("KITCHEN_ALERTS_THRESHOLD", "nan", "alerts.threshold: must be between 0 and 1"),
        ("KITCHEN_ALERTS_THRESHOLD", "inf", "alerts.threshold: must be between 0 and 1"),
        # Kept to 6 decimal places, as every threshold: this would be 0, never alerting.
        ("KITCHEN_ALERTS_THRESHOLD", "1e-9", "alerts.threshold: must be between 0 and 1"),
        ("KITCHEN_ALERTS_THRESHOLD", "0.99999999", "alerts.threshold: must be between 0 and 1"),
        ("KITCHEN_HTTP_PORT", "0", "http.port: must be a port from 1 to 65535"),
        ("KITCHEN_HTTP_PORT", "65536", "http.port: must be a port from 1 to 65535"),
        ("KITCHEN_MAIL_SMTP_PORT", "-25", "mail.smtp_port: must be a port from 1 to 65535"),
        ("KITCHEN_HTTP_MAX_BODY_BYTES", "0", "http.max_body_bytes: must be greater than 0"),
        ("KITCHEN_HTTP_MAX_BODY_BYTES", "-1", "http.max_body_bytes: must be greater than 0"),
        ("KITCHEN_HTTP_SHUTDOWN_SECONDS", "0", "http.shutdown_seconds: must be greater than 0"),
        ("KITCHEN_KAFKA_BATCH_SIZE", "0", "kafka.batch_size: must be greater than 0"),
        ("KITCHEN_KAFKA_PARTITIONS", "0", "kafka.partitions: must be greater than 0"),
        ("KITCHEN_DATABASE_PARTITIONS", "0", "database.partitions: must be from 1 to 256"),
        ("KITCHEN_DATABASE_PARTITIONS", "257", "database.partitions: must be from 1 to 256"),
        ("KITCHEN_KAFKA_REPLICATION_FACTOR", "0", "kafka.replication_factor: must be greater"),
        ("KITCHEN_KAFKA_MIN_INSYNC_REPLICAS", "0", "kafka.min_insync_replicas: must be greater"),
        ("KITCHEN_KAFKA_MIN_INSYNC_REPLICAS", "4", "kafka.min_insync_replicas: must be at most"),
        ("KITCHEN_ORDERS_MAX_LINES", "0", "orders.max_lines: must be greater than 0"),
        ("KITCHEN_ORDERS_MAX_QUANTITY", "-3", "orders.max_quantity: must be greater than 0"),
        ("KITCHEN_SCHEDULER_MAIL_RETRY_SECONDS", "0", "scheduler.mail_retry_seconds: must be"),
        ("KITCHEN_ALERTS_EMAIL", "merchant", "alerts.email: must be an email address"),
        ("KITCHEN_ALERTS_EMAIL", "a@b, c@d", "alerts.email: must be an email address"),
        ("KITCHEN_ALERTS_EMAIL", "", "alerts.email: must be an email address"),
        ("KITCHEN_MAIL_SENDER", "Kitchen", "mail.sender: must be an email address"),
        ("KITCHEN_KAFKA_NOTIFY_TOPIC", "", "kafka.notify_topic: must be 1 to 245"),
        ("KITCHEN_KAFKA_ORDER_CREATED_TOPIC", "orders/new", "kafka.order_created_topic"),
        ("KITCHEN_KAFKA_BOOTSTRAP_SERVERS", " ", "kafka.bootstrap_servers: empty"),
        ("KITCHEN_DATABASE_URL", "sqlite://kitchen.db", "names a host, not a file"),
        ("KITCHEN_DATABASE_URL", "sqlite://", "names no file"),
        ("KITCHEN_DATABASE_URL", "mysql://root@db/kitchen", "unsupported scheme 'mysql'"),
        ("KITCHEN_DATABASE_URL", "kitchen.db", "unsupported scheme ''"),
        ("KITCHEN_DATABASE_URL", "postgresql://kitchen@db:5432/", "names no database"),
        ("KITCHEN_LOG_FORMAT", "JSON", "log.format: must be text or json, got 'JSON'"),
        ("KITCHEN_LOG_FORMAT", "", "log.format: must be text or json"),
    ],
)
def test_values_that_make_no_sense_are_refused(variable: str, value: str, message: str) -> None:
    with pytest.raises(config.SettingsError, match=re.escape(message)):
        config.load(ROOT / "settings.toml", env={variable: value})


def test_starttls_and_ssl_together_are_refused() -> None:
    env = {"KITCHEN_MAIL_STARTTLS": "true", "KITCHEN_MAIL_SSL": "true"}
    with pytest.raises(config.SettingsError, match=r"mail\.starttls, mail\.ssl: choose one"):
        config.load(None, env=env)
    assert config.load(None, env={"KITCHEN_MAIL_SSL": "true"}).mail.ssl


@pytest.mark.parametrize(
    "url",
    [
        "postgress://kitchen:S3cretPW@db/kitchen",  # unsupported scheme
        "postgresql://kitchen:S3cretPW@db:54x2/kitchen",  # bad port
        "postgresql://kitchen:S3cr/etPW@db/kitchen",  # unencoded '/' in the password
        "postgresql://kitchen:S3cretPW@db",  # no database
    ],
)
def test_a_refused_database_url_is_shown_without_its_password(url: str) -> None:
    with pytest.raises(config.SettingsError, match=r"^database\.url: ") as refused:
        config.load(None, env={"KITCHEN_DATABASE_URL": url})
    assert "kitchen:***@" in str(refused.value)
    assert "S3cr" not in str(refused.value)


def test_several_problems_are_named_in_one_message() -> None:
    env = {"KITCHEN_HTTP_PORT": "0", "KITCHEN_ALERTS_THRESHOLD": "2"}
    with pytest.raises(config.SettingsError) as refused:
        config.load(None, env=env)
    assert "http.port" in str(refused.value) and "alerts.threshold" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_sensible_edge_values_are_accepted() -> None:
    env = {
        "KITCHEN_ALERTS_THRESHOLD": "0.99",
        "KITCHEN_HTTP_PORT": "65535",
        "KITCHEN_HTTP_MAX_BODY_BYTES": "1",
        "KITCHEN_DATABASE_URL": "postgres://db/kitchen",
        "KITCHEN_ALERTS_EMAIL": "alerts+kitchen@example.co.uk",
    }
    s = config.load(None, env=env)
    assert s.alerts.threshold == 0.99 and s.http.port == 65535
    assert config.load(None, env={"KITCHEN_DATABASE_URL": "sqlite:////tmp/k.db"}).database.url


def test_mask_url_hides_only_the_password() -> None:
    assert config.mask_url("postgresql://kitchen:S3cretPW@db/kitchen") == (
        "postgresql://kitchen:***@db/kitchen"
    )
    assert config.mask_url("postgresql://db:5432/kitchen") == "postgresql://db:5432/kitchen"
    assert config.mask_url("sqlite:///kitchen.db") == "sqlite:///kitchen.db"


def test_topics_get_three_copies_two_in_sync_and_fewer_on_a_smaller_cluster() -> None:
    s = config.load(ROOT / "settings.toml", env={})
    assert (s.kafka.replication_factor, s.kafka.min_insync_replicas) == (3, 2)
    # (replication factor, min.insync.replicas) by the number of brokers: a broker may
    # always be lost without refusing writes.
    assert [copies(3, 2, brokers) for brokers in (1, 2, 3, 5)] == [(1, 1), (2, 1), (3, 2), (3, 2)]
    # What is configured holds when the cluster is big enough, even min.insync = copies.
    assert copies(3, 3, 5) == (3, 3) and copies(5, 3, 5) == (5, 3) and copies(5, 3, 4) == (4, 3)


@pytest.mark.parametrize(
    ("variable", "nearest"),
    [
        ("KITCHEN_APP_ENVIRONMENT", "KITCHEN_APP_ENV"),
        ("KITCHEN_HTTP_PROT", "KITCHEN_HTTP_PORT"),
        ("KITCHEN_METRIC_TOKEN", "KITCHEN_METRICS_TOKEN"),
    ],
)
def test_an_unknown_kitchen_variable_is_refused_naming_the_nearest(
    variable: str, nearest: str
) -> None:
    with pytest.raises(config.SettingsError) as refused:
        config.load(ROOT / "settings.toml", env={variable: "production"})
    message = str(refused.value)
    assert message.startswith(f"unknown variable {variable}: did you mean {nearest}?")
    assert "\n" not in message


def test_a_kitchen_variable_like_no_setting_is_refused_without_a_guess() -> None:
    with pytest.raises(config.SettingsError, match="unknown variable KITCHEN_FOO: no setting"):
        config.load(None, env={"KITCHEN_FOO": "1", "OTHER_VARIABLE": "1"})


def test_kubernetes_service_variables_are_not_taken_for_typos() -> None:
    """A Service named kitchen or kitchen-api in the pod's namespace."""
    env = {
        "KITCHEN_SERVICE_HOST": "10.0.0.7",
        "KITCHEN_SERVICE_PORT": "8000",
        "KITCHEN_SERVICE_PORT_HTTP": "8000",
        "KITCHEN_PORT": "tcp://10.0.0.7:8000",
        "KITCHEN_PORT_8000_TCP": "tcp://10.0.0.7:8000",
        "KITCHEN_PORT_8000_TCP_PROTO": "tcp",
        "KITCHEN_PORT_8000_TCP_PORT": "8000",
        "KITCHEN_PORT_8000_TCP_ADDR": "10.0.0.7",
        "KITCHEN_API_SERVICE_HOST": "10.0.0.8",
        "KITCHEN_API_PORT": "tcp://10.0.0.8:8000",
    }
    assert config.load(ROOT / "settings.toml", env=env).http.port == 8000
    # A misspelt setting that merely ends in _PORT is still one.
    with pytest.raises(config.SettingsError, match="unknown variable KITCHEN_SMTP_PORT"):
        config.load(None, env={"KITCHEN_SMTP_PORT": "587"})


def test_the_test_suites_variables_are_never_settings() -> None:
    """KITCHEN_TEST_* belong to the suite, the benchmark and CI: settings neither refuse
    nor read them, so no section may ever be named "test"."""
    env = {
        "KITCHEN_TEST_DATABASE_URL": "postgresql://kitchen:kitchen@127.0.0.1:5432/kitchen_test",
        "KITCHEN_TEST_KAFKA": "127.0.0.1:9092",
        "KITCHEN_TEST_KAFKA_DIR": "/tmp/k",
        "KITCHEN_TEST_KAFKA_CLUSTER_DIR": "/tmp/k3",
        "KITCHEN_TEST_REPORT": "/tmp/r.jsonl",
        "KITCHEN_TEST_SCREENSHOTS": "docs",
    }
    assert config.load(ROOT / "settings.toml", env=env) == config.load(
        ROOT / "settings.toml", env={}
    )
    assert "test" not in {f.name for f in dataclasses.fields(config.Settings)}
    assert not [v for v in config.variables() if v.startswith(config.RESERVED_PREFIX)]
    # Every variable the suite, the benchmark and CI read or set for themselves carries
    # the reserved prefix (so a new one cannot be mistaken for a setting, or refused).
    read = set()
    for path in [*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]:
        read |= set(re.findall(r'environ(?:\.get\(|\[)\s*"(KITCHEN_\w+)"', path.read_text()))
    ci = (ROOT / ".ci" / "run").read_text()
    read |= set(re.findall(r"^\s*(?:export\s+)?(KITCHEN_\w+)=", ci, re.MULTILINE))
    assert read >= set(env), read
    assert all(v.startswith(config.RESERVED_PREFIX) for v in read), read


def test_a_settings_file_that_is_missing_or_broken_is_refused(tmp_path: Path) -> None:
    with pytest.raises(config.SettingsError, match=r"settings file .*nope\.toml: no such file"):
        config.load(tmp_path / "nope.toml", env={})
    broken = tmp_path / "broken.toml"
    broken.write_text("[app\nenv = 'production'\n")
    with pytest.raises(config.SettingsError, match=r"broken\.toml: not valid TOML"):
        config.load(broken, env={})
    loose = tmp_path / "loose.toml"
    loose.write_text("env = 'production'\n")
    with pytest.raises(config.SettingsError, match=r"\['env'\] must be inside a \[section\]"):
        config.load(loose, env={})


def test_a_nul_in_the_database_password_is_refused_masked() -> None:
    for url in (
        "postgresql://kitchen:pa%00ss@127.0.0.1/db",
        "postgresql://kit%00chen:pass@127.0.0.1/db",
    ):
        with pytest.raises(config.SettingsError, match="holds a NUL character") as refused:
            config.load(None, env={"KITCHEN_DATABASE_URL": url})
        assert "pa%00ss" not in str(refused.value) and ":***@127.0.0.1/db" in str(refused.value)
    with pytest.raises(config.SettingsError, match="holds a NUL character"):
        config.load(None, env={}, overrides={"database": {"url": "sqlite:///kit\0chen.db"}})


def test_the_metrics_token_is_a_secret_of_16_visible_characters() -> None:
    for bad in ("short-token", "x" * 15, "a token with spaces", "é" * 20):
        with pytest.raises(config.SettingsError, match=r"metrics\.token: must be at least 16"):
            config.load(None, env={"KITCHEN_METRICS_TOKEN": bad})
    s = config.load(
        ROOT / "settings.toml",
        env={
            "KITCHEN_METRICS_TOKEN": "scrape-0123456789abcdef",
            "KITCHEN_METRICS_STOCK_GAUGES": "1",
        },
    )
    assert s.metrics.token == "scrape-0123456789abcdef" and s.metrics.stock_gauges
    assert "scrape-0123456789abcdef" in config.secrets(s)
    defaults = config.load(ROOT / "settings.toml", env={}).metrics
    assert defaults.token == "" and defaults.stock_gauges is False


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("kitchen.example.com", False),
        ("", False),
    ],
)
def test_development_mode_serves_only_on_loopback(host: str, loopback: bool) -> None:
    dev = config.load(None, env={"KITCHEN_HTTP_HOST": host})
    problem = config.serving_problem(dev)
    assert (problem is None) == loopback
    if problem:
        assert problem.startswith(f"http.host: development mode on {host}")
        assert "KITCHEN_APP_ENV=production" in problem and "KITCHEN_HTTP_HOST=127.0.0.1" in problem
    prod = config.load(
        None,
        env={
            "KITCHEN_HTTP_HOST": host,
            "KITCHEN_APP_ENV": "production",
            "KITCHEN_PAYMENTS_PROVIDER": "none",
        },
    )
    assert config.serving_problem(prod) is None
    # A process that serves no HTTP listens nowhere.
    assert config.serving_problem(config.with_roles(dev, "processing")) is None


@pytest.mark.parametrize("provider", ["fake", "stripe", "none"])
def test_production_takes_no_fake_payments(provider: str) -> None:
    env = {
        "KITCHEN_APP_ENV": "production",
        "KITCHEN_PAYMENTS_PROVIDER": provider,
        "KITCHEN_PAYMENTS_STRIPE_API_KEY": "sk_test_x",
    }
    problem = config.serving_problem(config.load(None, env=env))
    assert (problem is not None) == (provider == "fake")
    if problem:
        assert problem.startswith("payments.provider: fake is for development only")
    dev = config.load(None, env={**env, "KITCHEN_APP_ENV": "development"})
    assert config.serving_problem(dev) is None
