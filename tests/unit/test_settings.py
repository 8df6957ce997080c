from pathlib import Path

import pytest

from kitchen import settings as config

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_file_gives_the_embedded_defaults() -> None:
    s = config.load(ROOT / "settings.toml", env={})
    assert s.database.url == "sqlite:///kitchen.db"
    assert s.kafka.bootstrap_servers == "embedded" and s.kafka.embedded
    assert s.kafka.order_created_topic == "order_created" and s.kafka.notify_topic == "notify"
    assert s.roles.enabled() == ["api", "processing", "notification", "relay"]
    assert s.mail.smtp_host == "" and s.alerts.threshold == 0.5


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
