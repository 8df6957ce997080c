"""Message-IDs and deduplication survive a database reset and a new Kafka cluster: a new
alert is never mistaken for an old one."""

from __future__ import annotations

import dataclasses
import email
import json
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from starlette.testclient import TestClient

from app import Kitchen
from kitchen import db, models
from kitchen import settings as config
from kitchen.db import session
from kitchen.kafka import producer_config
from kitchen.models import Ingredient
from tests.helpers import REAL_DATABASE, REAL_KAFKA, SmtpServer, eventually, raise_onion_alert


def start(settings: config.Settings, **sections: dict[str, Any]) -> Kitchen:
    for name, values in sections.items():
        part = dataclasses.replace(getattr(settings, name), **values)
        settings = dataclasses.replace(settings, **{name: part})
    return Kitchen(settings).start()


def reset_database(url: str, tmp_path: Path) -> str:
    """What an operator does to start over: a new SQLite file, or the tables dropped."""
    if not REAL_DATABASE:
        return f"sqlite:///{tmp_path}/kitchen-after-reset.db"
    with session():
        db.database.drop_tables(models.TABLES, cascade=True)
    return url


def test_after_a_database_reset_a_new_alert_is_a_new_message(
    test_settings: config.Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "mail"
    mail = {"smtp_host": "", "folder": str(folder)}  # the folder mailer, as by default
    url = test_settings.database.url
    message_ids: list[str] = []
    for run in range(2):
        if run:
            url = reset_database(url, tmp_path)
        kitchen = start(test_settings, mail=mail, database={"url": url})
        try:
            raise_onion_alert(kitchen)  # alert 1 of its database, both times
            eventually(lambda: len(list(folder.glob("*.eml"))) > len(message_ids))
        finally:
            kitchen.stop()
        with session():
            message_ids.append(models.Notification.get().message_id)

    assert message_ids[0] != message_ids[1]
    kept = sorted(email.message_from_string(f.read_text())["Message-ID"] for f in folder.iterdir())
    assert kept == sorted(message_ids)


@pytest.mark.skipif(
    bool(REAL_KAFKA), reason="a real broker keeps its offsets: this is about the embedded one"
)
def test_a_bare_notify_after_kafka_restarted_is_mailed_again(
    test_settings: config.Settings, smtp: SmtpServer
) -> None:
    # Same database, a new embedded cluster at each start: both events are at offset 0
    # of the same partition.
    mailed: list[str] = []
    for run in range(2):
        kitchen = start(test_settings)
        try:
            if run == 0:
                with TestClient(kitchen.web_app()) as api:
                    assert api.post("/order/seed").status_code == 201
            with session():
                onion = Ingredient.get(Ingredient.name == "onion")
            producer = Producer(producer_config(kitchen.bootstrap_servers))
            bare = json.dumps({"id": onion.id, "email": "chef@example.com"}).encode()
            producer.produce(kitchen.settings.kafka.notify_topic, bare, key=b"1")
            assert producer.flush(10) == 0
            eventually(lambda: len(smtp.messages) > len(mailed))
            mailed.append(str(smtp.messages[-1]["Message-ID"]))
        finally:
            kitchen.stop()

    assert len(smtp.messages) == 2 and mailed[0] != mailed[1]
