"""A database made by an older Kitchen gets the columns added since, data kept."""

from __future__ import annotations

from kitchen import db
from kitchen.db import Alert, Notification, session


def test_columns_added_since_are_added_to_an_existing_database(clean_database: str) -> None:
    with session():
        # As an older Kitchen left it: without the columns issue 8 added.
        db.database.execute_sql("ALTER TABLE notification DROP COLUMN failed_at")
        db.database.execute_sql("ALTER TABLE alert DROP COLUMN redrives")
        Notification.insert(
            dedup_key="alert-1",
            ingredient_id=1,
            email="a@b.c",
            subject="s",
            body="b",
            message_id="m",
        ).execute()

    db.create_tables()
    db.create_tables()  # and again: nothing left to add

    with session():
        columns = {c.name for c in db.database.get_columns("notification")}
        assert "failed_at" in columns
        assert "redrives" in {c.name for c in db.database.get_columns("alert")}
        [row] = Notification.select()
        assert (row.dedup_key, row.failed_at) == ("alert-1", None)
        assert Alert.select().count() == 0
