"""The tables (peewee models): the same declarations on SQLite and PostgreSQL.

Every row belongs to a merchant, and every table that grows with orders has a
`merchant_id` column: on PostgreSQL those tables are partitioned by it (see
partitioning.py, the one place for their DDL); on SQLite they are plain tables.

Every model is declared against `db.database`, the binding's handle (peewee binds models
to a database at class creation); `db.bind(url)` points it at the real database.
"""

from __future__ import annotations

from typing import TypeVar

import peewee as pw

from kitchen.db import database, utcnow


class Base(pw.Model):
    """Models declare `<fk>_id: int` annotations: peewee provides those column values,
    and the annotations let the type checker see them.

    Every integer column is 64-bit on PostgreSQL (BIGSERIAL ids, and foreign keys follow
    their target's type): the ledger gets a row per ingredient per order, which would run
    through 32-bit ids in days. SQLite's integers are 64-bit anyway."""

    id = pw.BigAutoField()

    class Meta:
        database = database


class Merchant(Base):
    # Not unique: ids identify merchants, and a taken name would tell one merchant that
    # another exists. Its keys are ApiKey rows.
    name = pw.CharField()
    alert_email = pw.CharField()
    # Default alert threshold of its ingredients, an exact fraction ("1/2"); empty means
    # the `[alerts] threshold` setting.
    threshold = pw.CharField(null=True)
    # The default merchant (see ensure_default_merchant): found by this mark, not by its
    # name, which its owner may change.
    is_default = pw.BooleanField(default=False)
    # "required": an order is paid (held) before the kitchen cooks it (kitchen/payments.py);
    # "off": orders go to the kitchen at once, unpaid.
    payments = pw.CharField(default="off")
    currency = pw.CharField(default="EUR")  # ISO 4217 of its prices and payments
    # (Columns added by migration 0011 come last, as they do in an upgraded table.)
    # The local hour (0-23) of its morning digest email, in `timezone` (an IANA name);
    # none: no digest. `digest_since`: when it was first set, so that days due before
    # that are never sent as "missed" (kitchen/digest.py).
    digest_hour = pw.BigIntegerField(null=True)
    timezone = pw.CharField(default="UTC")
    digest_since = pw.DateTimeField(null=True)


# At most one default merchant: two processes starting at once cannot both make one.
Merchant.add_index(
    Merchant.index(Merchant.is_default, unique=True, name="merchant_one_default").where(
        Merchant.is_default == True  # noqa: E712 (SQL, not a Python comparison)
    )
)


class BigForeignKeyField(pw.ForeignKeyField):
    """A 64-bit reference, whatever the width of the id it names (ids become 64-bit in
    migration 0008; a new table starts so)."""

    field_type = "BIGINT"


class ApiKey(Base):
    """One named key of a merchant (a till, a screen): each can be revoked on its own."""

    PRIMARY = "primary"  # the key `merchant create` makes and `rotate-key` replaces

    id = pw.BigAutoField()
    merchant_id: int
    merchant = BigForeignKeyField(Merchant, backref="api_keys", index=False)
    name = pw.CharField()  # unique per merchant; the log and each order say which acted
    # SHA-256 of the key: the key itself is shown once, when made, and never stored.
    # (A key is 256 random bits, so a fast hash is enough: there is nothing to guess.)
    key_hash = pw.CharField(unique=True)
    created_at = pw.DateTimeField(default=utcnow)
    # When a request last used it, to about a minute (see merchants.KeyUses).
    last_used_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "api_key"
        indexes = ((("merchant", "name"), True),)


class Ingredient(Base):
    merchant_id: int
    merchant = pw.ForeignKeyField(Merchant, backref="ingredients")
    # What stock, par level, recipes and the ledger count in: "g", "ml" or "piece"
    # (domain.UNITS), chosen when the ingredient is made and never changed: every amount
    # of it stays an integer of this unit.
    G, ML, PIECE = "g", "ml", "piece"

    name = pw.CharField()
    unit = pw.CharField(default=G)
    stock = pw.BigIntegerField()  # in `unit`
    # The par level, in `unit`: 100% for the threshold. Set when the ingredient is created,
    # changed only by PATCH; restocks and counts may take the stock above it.
    full_stock = pw.BigIntegerField()
    alert_armed = pw.BooleanField(default=True)
    threshold = pw.CharField(null=True)  # exact fraction; empty means the merchant's
    # (Columns added by migration 0011 come last.) How many days a delivery takes, and
    # the size its supplier sells it in (a 5 kg sack: 5000), in `unit`; none: any amount.
    # The forecast's suggested order covers the lead time, rounded up to whole packs.
    lead_time_days = pw.BigIntegerField(default=2)
    pack_size = pw.BigIntegerField(null=True)

    class Meta:
        indexes = ((("merchant", "name"), True),)


class Product(Base):
    merchant_id: int
    merchant = pw.ForeignKeyField(Merchant, backref="products")
    name = pw.CharField()
    # A deleted product stays for the orders that name it; new orders cannot.
    deleted_at = pw.DateTimeField(null=True)
    # In the merchant's currency's minor units (cents); none: not for sale where payments
    # are required.
    price = pw.BigIntegerField(null=True)


# A name is unique among a merchant's products that are not deleted (a partial index).
Product.add_index(
    Product.index(Product.merchant, Product.name, unique=True, name="product_live_name").where(
        Product.deleted_at.is_null()
    )
)


class RecipeLine(Base):
    product_id: int
    ingredient_id: int
    product = pw.ForeignKeyField(Product, backref="recipe")
    ingredient = pw.ForeignKeyField(Ingredient)
    grams = pw.BigIntegerField()  # per unit of product

    class Meta:
        table_name = "recipe_lines"
        indexes = ((("product", "ingredient"), True),)


class Order(Base):
    merchant_id: int
    PENDING, APPLIED, REJECTED = "pending", "applied", "rejected"
    # Paid orders wait for the hold before they are pending; any order not yet applied
    # can be cancelled (kitchen/payments.py).
    AWAITING_PAYMENT, CANCELLED = "awaiting_payment", "cancelled"

    merchant = pw.ForeignKeyField(Merchant, backref="orders")
    status = pw.CharField(default=PENDING, index=True)
    reason = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    # When ORDER_CREATED was last queued; the re-drive job queues it again if the
    # order is still pending long after (the embedded Kafka forgets on restart).
    emitted_at = pw.DateTimeField(default=utcnow)
    processed_at = pw.DateTimeField(null=True)
    # Idempotency-Key of the request that created it, and a hash of that request's lines:
    # a retried request finds its order instead of placing a second one.
    idempotency_key = pw.CharField(null=True)
    request_hash = pw.CharField(null=True)
    # The name of the API key that placed it (never the key); none without a key.
    key_name = pw.CharField(null=True)

    class Meta:
        table_name = "orders"


# A retried request finds its order by (merchant, Idempotency-Key). Partial: most orders
# have no key, and a full index of NULLs is one PostgreSQL's planner may choose for other
# lookups by merchant before it has statistics (measured in bench/intake.py on fresh
# tables: the foreign-key check of every order line read all of a merchant's orders).
Order.add_index(
    Order.index(
        Order.merchant,
        Order.idempotency_key,
        unique=True,
        where=Order.idempotency_key.is_null(False),
    )
)


class OrderLine(Base):
    merchant_id: int
    order_id: int
    product_id: int
    # The order's merchant, copied: on PostgreSQL the table is partitioned by it.
    merchant = pw.ForeignKeyField(Merchant, index=False)
    order = pw.ForeignKeyField(Order, backref="lines", on_delete="CASCADE")
    product = pw.ForeignKeyField(Product)
    quantity = pw.BigIntegerField()

    class Meta:
        table_name = "order_lines"


class Outbox(Base):
    """Events written in the same transaction as the change they announce."""

    # Whose event (also its key). Not a foreign key: the outbox is a queue of events whose
    # rows were checked where they were made, and a key is one more lookup per order.
    merchant_id = pw.BigIntegerField()
    topic = pw.CharField()
    key = pw.CharField(null=True)
    payload = pw.TextField()  # JSON
    # The row the event is about (the order of an ORDER_CREATED, the alert of a NOTIFY):
    # a re-drive does not queue an event again while an earlier copy is still unsent.
    ref_id = pw.BigIntegerField(null=True, index=True)
    created_at = pw.DateTimeField(default=utcnow)
    sent_at = pw.DateTimeField(null=True, index=True)
    # A relay owns the row until then (see outbox.Relay), so two relays never send it.
    claimed_until = pw.DateTimeField(null=True)
    claimed_by = pw.CharField(null=True)


class Alert(Base):
    """One threshold crossing of one ingredient."""

    merchant_id: int
    ingredient_id: int
    order_id: int

    merchant = pw.ForeignKeyField(Merchant)
    ingredient = pw.ForeignKeyField(Ingredient, backref="alerts")
    order = pw.ForeignKeyField(Order, null=True)
    email = pw.CharField()
    stock = pw.BigIntegerField()  # grams just after the crossing
    full_stock = pw.BigIntegerField()
    threshold = pw.CharField()  # exact fraction, e.g. "1/2"
    created_at = pw.DateTimeField(default=utcnow)
    emitted_at = pw.DateTimeField(default=utcnow)  # when NOTIFY was last queued
    redrives = pw.BigIntegerField(default=0)  # times NOTIFY was queued again (bounded)
    # (Columns added by migration 0010 come last, as they do in an upgraded table.)
    # What took the stock below: a ledger reason (order, count, waste, initial), or
    # "levels" for a new par level or threshold.
    cause = pw.CharField(null=True)
    # When the stock climbed back to its threshold (the alert re-armed), and by what (a
    # ledger reason: restock, count, refund, compensation; or "levels"); null: still open.
    resolved_at = pw.DateTimeField(null=True)
    resolved_by = pw.CharField(null=True)
    # (Migration 0011.) The ingredient's forecast when it crossed (kitchen/forecast.py,
    # JSON of its view), computed in the transaction that raised the alert: the email
    # says what was true then, never what a later read would find.
    forecast = pw.TextField(null=True)


class Notification(Base):
    """An alert email to send: one row per alert, so a redelivered NOTIFY sends nothing."""

    merchant_id: int
    alert_id: int | None
    merchant = pw.ForeignKeyField(Merchant, index=False)  # whose ingredient
    # "alert-<id>", or where it was read (kafka.source); unique per merchant (partitions).
    dedup_key = pw.CharField()
    alert = pw.ForeignKeyField(Alert, null=True)
    # None for a mail about no one ingredient (a digest: dedup_key "digest-<local date>").
    ingredient_id = pw.BigIntegerField(null=True)
    email = pw.CharField()
    subject = pw.CharField()
    body = pw.TextField()
    message_id = pw.CharField()
    created_at = pw.DateTimeField(default=utcnow)
    sent_at = pw.DateTimeField(null=True, index=True)
    attempts = pw.BigIntegerField(default=0)
    next_attempt_at = pw.DateTimeField(default=utcnow)
    # A sender owns the row until then, so two senders never mail the same alert.
    claimed_until = pw.DateTimeField(null=True)
    # A mail that can never be sent (refused address, permanent 5xx): never tried again;
    # the reason is in last_error.
    failed_at = pw.DateTimeField(null=True)
    last_error = pw.TextField(null=True)

    class Meta:
        indexes = ((("merchant", "dedup_key"), True),)


F = TypeVar("F", bound=pw.ForeignKeyField)


def unconstrained(field: F) -> F:
    """A reference that peewee joins and names like any foreign key, but for which
    create_table writes no FOREIGN KEY constraint (peewee skips "deferred" foreign keys,
    which is what a DeferredForeignKey resolves to)."""
    field.deferred = True
    return field


class LedgerEntry(Base):
    """One change of one ingredient's stock, written in the transaction of the change:
    an ingredient's stock is the sum of its ledger."""

    ORDER, RESTOCK, COUNT, WASTE, INITIAL = "order", "restock", "count", "waste", "initial"
    # An applied order's ingredients given back: its payment could not be captured, or
    # it was refunded with restock.
    COMPENSATION, REFUND = "compensation", "refund"

    merchant_id: int
    ingredient_id: int
    order_id: int | None
    # One index only, (ingredient, id), which the ledger's pages read: every index is paid
    # for on each of a processing batch's ledger rows (three more halved its PostgreSQL
    # speed), and nothing looks ledger rows up by merchant or order.
    # For the same reason no foreign-key constraint (see `unconstrained`; migration 0004
    # drops the old ones): checking three references on each ledger
    # row took 45 % of PostgreSQL's processing time (9,700 against 17,700 orders/s in
    # batches of 1,000, measured). They guarded nothing Kitchen does: a ledger row is
    # written only in the transaction that holds the rows it names locked, and Kitchen
    # never deletes a merchant, an ingredient or an order.
    merchant = unconstrained(pw.ForeignKeyField(Merchant, index=False))
    ingredient = unconstrained(pw.ForeignKeyField(Ingredient, backref="ledger", index=False))
    grams = pw.BigIntegerField()  # signed: what the change added (+) or took (-)
    reason = pw.CharField()
    order = unconstrained(pw.ForeignKeyField(Order, null=True, index=False))
    note = pw.TextField(null=True)
    stock_after = pw.BigIntegerField()
    created_at = pw.DateTimeField(default=utcnow)
    # The name of the API key of the person who made the change (a restock, a count);
    # null for what processing did, and without a key.
    key_name = pw.CharField(null=True)

    class Meta:
        table_name = "ledger"
        indexes = ((("ingredient", "id"), False),)


class UsageHour(Base):
    """The ledger summed per ingredient, UTC hour and reason: what forecasts, digests and
    usage reports read, so that a year of a busy kitchen is thousands of rows, not
    millions. Written in the transaction of each ledger row (kitchen/usage.py), with the
    same sign: an order's use is negative, a restock positive."""

    merchant_id: int
    ingredient_id: int
    merchant = unconstrained(pw.ForeignKeyField(Merchant, index=False))
    ingredient = unconstrained(pw.ForeignKeyField(Ingredient, index=False))
    hour = pw.DateTimeField()  # UTC, on the hour
    reason = pw.CharField()  # a ledger reason
    amount = pw.BigIntegerField()  # the sum of the ledger rows' amounts, signed
    entries = pw.BigIntegerField()  # how many ledger rows

    class Meta:
        table_name = "usage_hour"
        indexes = ((("merchant", "ingredient", "hour", "reason"), True),)


class SalesHour(Base):
    """Applied orders summed per product and UTC hour (kitchen/usage.py): the usage
    report's orders and quantity per product."""

    merchant_id: int
    product_id: int
    merchant = unconstrained(pw.ForeignKeyField(Merchant, index=False))
    product = unconstrained(pw.ForeignKeyField(Product, index=False))
    hour = pw.DateTimeField()
    orders = pw.BigIntegerField()  # orders with the product
    quantity = pw.BigIntegerField()

    class Meta:
        table_name = "sales_hour"
        indexes = ((("merchant", "product", "hour"), True),)


class Payment(Base):
    """The payment of one order of a merchant that requires payments: a hold on the card
    at the provider, captured once the kitchen applied the order (kitchen/payments.py
    has the states and who moves them)."""

    REQUIRES_PAYMENT, AUTHORIZED, CAPTURED = "requires_payment", "authorized", "captured"
    PARTIALLY_REFUNDED, REFUNDED = "partially_refunded", "refunded"
    VOIDED, FAILED, EXPIRED = "voided", "failed", "expired"
    # What the payments role still has to ask of the provider (`action`).
    CAPTURE, VOID, EXPIRE = "capture", "void", "expire"

    merchant_id: int
    order_id: int
    merchant = pw.ForeignKeyField(Merchant, index=False)
    order = pw.ForeignKeyField(Order, index=False)
    provider = pw.CharField()  # "fake" or "stripe"
    provider_id = pw.CharField(null=True)  # the provider's id (pi_...), once it answered
    client_secret = pw.CharField(null=True)  # for the till to confirm the card
    status = pw.CharField(default=REQUIRES_PAYMENT)
    amount = pw.BigIntegerField()  # minor units, computed from the prices
    currency = pw.CharField()
    captured_amount = pw.BigIntegerField(default=0)
    refunded_amount = pw.BigIntegerField(default=0)
    failure = pw.TextField(null=True)  # why it failed, expired or was voided
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)
    # The hold must be authorized by then, or the payment expires.
    expires_at = pw.DateTimeField()
    # The provider call the payments role owes (CAPTURE, VOID, EXPIRE), retried with
    # back-off until the provider answers; a worker owns the row until claimed_until.
    action = pw.CharField(null=True)
    attempts = pw.BigIntegerField(default=0)
    next_attempt_at = pw.DateTimeField(null=True)
    claimed_until = pw.DateTimeField(null=True)
    last_error = pw.TextField(null=True)

    class Meta:
        indexes = (
            (("merchant", "order"), True),
            (("merchant", "provider_id"), True),
            (("action", "next_attempt_at"), False),
            (("status", "expires_at"), False),
        )


class Refund(Base):
    """One refund asked of a captured payment (POST /order/{id}/refund)."""

    REQUESTED, SUCCEEDED, FAILED = "requested", "succeeded", "failed"

    merchant_id: int
    payment_id: int
    order_id: int
    merchant = pw.ForeignKeyField(Merchant, index=False)
    payment = pw.ForeignKeyField(Payment, index=False)
    order = pw.ForeignKeyField(Order, index=False)
    amount = pw.BigIntegerField()
    restock = pw.BooleanField(default=False)
    reason = pw.TextField(null=True)
    status = pw.CharField(default=REQUESTED)
    provider_id = pw.CharField(null=True)  # re_..., once the provider answered
    created_at = pw.DateTimeField(default=utcnow)
    done_at = pw.DateTimeField(null=True)
    # As Payment's: the provider call, retried with back-off, owned by one worker.
    attempts = pw.BigIntegerField(default=0)
    next_attempt_at = pw.DateTimeField(null=True)
    claimed_until = pw.DateTimeField(null=True)
    last_error = pw.TextField(null=True)

    class Meta:
        indexes = (
            (("merchant", "payment"), False),
            (("status", "next_attempt_at"), False),
        )


class PaymentEvent(Base):
    """A provider webhook event already applied: written in the transaction of the change
    it made, so the same event delivered again changes nothing."""

    merchant_id: int
    payment_id: int
    merchant = pw.ForeignKeyField(Merchant, index=False)
    event_id = pw.CharField()  # evt_...
    type = pw.CharField()
    payment = pw.ForeignKeyField(Payment, index=False)
    received_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "payment_event"
        indexes = ((("merchant", "event_id"), True),)


class FakeIntent(Base):
    """The fake provider's own record of a payment (kitchen/fake_provider.py): kept in
    Kitchen's database so that every role, in any process, sees the same payments."""

    intent_id = pw.CharField(unique=True)  # pi_fake_...
    merchant_id = pw.BigIntegerField()
    order_id = pw.BigIntegerField()
    status = pw.CharField()  # as Stripe's PaymentIntent
    amount = pw.BigIntegerField()
    currency = pw.CharField()
    amount_received = pw.BigIntegerField(default=0)
    amount_refunded = pw.BigIntegerField(default=0)
    client_secret = pw.CharField()
    failure = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "fake_intent"


class FakeRequest(Base):
    """A call the fake provider answered, by its idempotency key: the same key answers
    the same, as Stripe does, so a retry never charges twice."""

    key = pw.CharField(unique=True)
    answer = pw.TextField()  # JSON of the first answer
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "fake_request"


class SchemaMigration(Base):
    """One row per schema migration applied to this database (see migrations.py)."""

    name = pw.CharField(unique=True)
    applied_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "schema_migrations"


class DatabaseId(Base):
    """One row: a random id made when the tables are, so that names Kitchen gives out
    (Message-IDs, mail files) never repeat those of an earlier database (a reset, another
    deployment), where ids start at 1 again."""

    value = pw.CharField()


TABLES: list[type[Base]] = [
    SchemaMigration,
    DatabaseId,
    Merchant,
    ApiKey,
    Ingredient,
    Product,
    RecipeLine,
    Order,
    OrderLine,
    Outbox,
    Alert,
    Notification,
    LedgerEntry,
    Payment,
    Refund,
    PaymentEvent,
    FakeIntent,
    FakeRequest,
    UsageHour,
    SalesHour,
]


def database_id() -> str:
    """This database's random id (see DatabaseId; made by migrations.upgrade)."""
    return str(DatabaseId.get_by_id(1).value)
