"""The OpenAPI 3.1 document of the HTTP API (`GET /openapi.json`), built from the routes.

Each endpoint's docstring ends with `---` and the YAML of its OpenAPI operation
(summary, requestBody, responses); Starlette's SchemaGenerator collects them (see the
top of `kitchen/http.py` for the format). The shared parts are written once, in `base`
below, and referred to with `$ref`: the `Problem` schema and the problem responses, the
request bodies, one schema per resource (each as `kitchen.views` shapes it), the query
parameters of the lists. Limits and enums come from the constants that validation and
the models use (and from the `[orders]` settings), never from numbers written here.

`document` adds what every operation of a kind answers, so that docstrings never repeat
it: the path parameters (`{id}`); 401 and 503 to each operation that takes a merchant's
key (one without a `security` of its own); 400, 413, 415 and 422 to each of those that
takes a body.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import yaml
from starlette.routing import BaseRoute
from starlette.schemas import SchemaGenerator

from kitchen import views
from kitchen.commands import MAX_AMOUNT
from kitchen.domain import MAX_GRAMS, MAX_ID, MAX_ORDER_AMOUNT, MAX_PRICE, THRESHOLD_PLACES, UNITS
from kitchen.models import Refund
from kitchen.payments import STATES as PAYMENT_STATES
from kitchen.reorder import COLUMNS as REORDER_COLUMNS
from kitchen.settings import Orders
from kitchen.validation import (
    EMAIL_LENGTH,
    KEY_LENGTH,
    MAX_DAYS,
    MAX_RECIPE_LINES,
    NAME_LENGTH,
    NOTE_LENGTH,
    PAYMENT_MODES,
)
from kitchen.views import LEDGER_PAGE, LEDGER_REASONS, MAIL_STATES, MAX_PAGE, ORDER_STATUSES, PAGE


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _json(schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"content": {"application/json": {"schema": schema}}}
    if description:
        body["description"] = description
    return body


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


# Each limit is what the (64-bit) column holds, or less: see domain.MAX_GRAMS.
ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
NULLABLE_ID = {"oneOf": [ID, {"type": "null"}]}
# Issue 19: every amount of an ingredient is an integer of its unit; `grams` is the older
# name of `amount` (requests take either, or both when equal; answers give both).
IN_UNIT = "in the ingredient's unit (g, ml or piece)"
OLDER_NAME = "the older name of `amount`, kept for the clients that send or read it"
UNIT = {
    "enum": list(UNITS),
    "description": "what the ingredient's amounts are counted in: g (grams), ml or piece; "
    "chosen when it is made, never changed",
}
GRAMS = {"type": "integer", "minimum": 0, "maximum": MAX_GRAMS, "description": IN_UNIT}
# The par level: 100 % for the threshold. Set when the ingredient is made (default: its
# stock), changed only by PATCH; restocks and counts may take the stock above it.
PAR = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_GRAMS,
    "description": f"the par level, {IN_UNIT}: 100 % for the threshold; the stock may stand "
    "above it",
}
# A request's amount: `amount` or `grams`, exactly one of them.
AMOUNT_OR_GRAMS = [{"required": ["amount"]}, {"required": ["grams"]}]
THRESHOLD = {
    "type": "number",
    "minimum": 1 / 10**THRESHOLD_PLACES,
    "maximum": 1 - 1 / 10**THRESHOLD_PLACES,
    "description": f"a fraction of the par level, kept to {THRESHOLD_PLACES} decimal places "
    "(what is checked is what is stored)",
}
TIME = {"type": "string", "format": "date-time"}
NULLABLE_TIME = {"oneOf": [TIME, {"type": "null"}]}
# What a request may name things with (kitchen.validation: name_problem, note_problem,
# email_problem); anything else is a 422.
NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": NAME_LENGTH,
    "description": "one line of readable text: no control character, lone surrogate or "
    "line separator",
}
NOTE = {
    "type": "string",
    "minLength": 1,
    "maxLength": NOTE_LENGTH,
    "description": "readable text: newlines and tabs, but no other control character",
}
EMAIL = {
    "type": "string",
    "format": "email",
    "minLength": 3,  # a@b: an address needs a part before @ and a domain
    "maxLength": EMAIL_LENGTH,
    "description": "one address in ASCII, like name@example.com (no display name)",
}

# Issue 20: forecasts and what to order from suppliers (kitchen/forecast.py, reorder.py).
LEAD_DAYS = "how many days a delivery of it takes"
LEAD_TIME = {"type": "integer", "minimum": 0, "maximum": MAX_DAYS, "description": LEAD_DAYS}
PACK_SIZE = {
    "oneOf": [
        {**GRAMS, "minimum": 1, "description": f"what its supplier sells it by, {IN_UNIT}"},
        {"type": "null"},
    ],
    "description": "the supplier's pack (a 5 kg sack: 5000); null: any amount (the default)",
}
# Forecast.view: to the minute, in UTC ("2026-12-03T16:00Z"; ISO 8601, no seconds).
MINUTE = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\dZ$"}
RATE = {"type": ["number", "null"], "minimum": 0}
FORECAST_FIELDS: dict[str, Any] = {
    "daily_use": {
        **RATE,
        "description": f"{IN_UNIT} a day, to one decimal; null: never used by an order",
    },
    "days_left": {
        **RATE,
        "description": "days until the stock runs out at that pace, to one decimal; null: "
        "nothing used, or (by the weekday method) it does not run out within a year",
    },
    "runs_out_at": {
        "oneOf": [MINUTE, {"type": "null"}],
        "description": "when it runs out, UTC to the minute; null: nothing used, or not "
        "within a year",
    },
    "suggested_order": {
        "type": "integer",
        "minimum": 0,
        "description": f"what to order now, {IN_UNIT}, in whole packs: back to the par level "
        "after the use expected during the lead time; 0: nothing",
    },
}
FORECAST_SCHEMAS: dict[str, Any] = {
    "Forecast": {
        "type": "object",
        "description": "How long the stock lasts at the pace of orders, and what to order. "
        "`recent`: the use of the last [forecast] window_days (or since the first order, "
        "at least an hour); `weekday`: with two full weeks of history or more, each "
        "weekday's own average in the merchant's time zone. A new dish has no history and "
        "a holiday is not known.",
        "required": ["method", "daily_use", "days_left", "runs_out_at", "suggested_order"],
        "additionalProperties": False,
        "properties": {"method": {"enum": ["recent", "weekday"]}, **FORECAST_FIELDS},
    },
    "ReorderLine": {
        "type": "object",
        "description": "An ingredient to order from its supplier (not a customer order).",
        "required": list(REORDER_COLUMNS),
        "additionalProperties": False,
        "properties": {
            "ingredient_id": ID,
            "name": {"type": "string"},
            "unit": UNIT,
            "stock": GRAMS,
            "par_level": PAR,
            "lead_time_days": LEAD_TIME,
            "pack_size": PACK_SIZE,
            **FORECAST_FIELDS,
            "runs_out_before_delivery": {
                "type": "boolean",
                "description": "days_left < lead_time_days: it runs out before a delivery "
                "ordered now arrives",
            },
            "suggested_order": {**FORECAST_FIELDS["suggested_order"], "minimum": 1},
            "packs": {
                "oneOf": [{"type": "integer", "minimum": 1}, {"type": "null"}],
                "description": "suggested_order / pack_size; null: no pack size",
            },
        },
    },
    "Reorder": {
        "type": "object",
        "description": "Supplier orders to place (GET /reorder), not customer orders.",
        "required": ["lines", "generated_at"],
        "additionalProperties": False,
        "properties": {
            "lines": {
                "type": "array",
                "items": _ref("ReorderLine"),
                "description": "most urgent first: earliest runs_out_at, those that never "
                "run out last, then by name",
            },
            "generated_at": {**TIME, "description": "the instant the forecasts are for"},
        },
    },
}

# Payments (issue 18): prices and amounts are integers of the currency's minor units.
PRICE = {
    "type": "integer",
    "minimum": 0,
    "maximum": MAX_PRICE,
    "description": "minor units (cents) of the merchant's currency",
}
# In requests a price may be null: no price (PATCH: the price is removed).
PRICE_OR_NULL = {
    "oneOf": [PRICE, {"type": "null"}],
    "description": "minor units (cents) of the merchant's currency; null: no price (a "
    "merchant that requires payments cannot sell the product)",
}
AMOUNT = {
    "type": "integer",
    "minimum": 0,
    "maximum": MAX_ORDER_AMOUNT,
    "description": "minor units (cents)",
}
CURRENCY = {
    "type": "string",
    "pattern": "^[A-Z]{3}$",
    "minLength": 3,
    "maxLength": 3,
    "examples": ["EUR"],
    "description": "an ISO 4217 code, upper case",
}
# The morning digest (kitchen/digest.py): its local hour and the merchant's time zone.
DIGEST_HOUR = {
    "oneOf": [
        {
            "type": "integer",
            "minimum": 0,
            "maximum": 23,
            "description": "the local hour (in `timezone`) of the morning digest email",
        },
        {"type": "null"},
    ],
    "description": "null: no morning digest",
}
TIMEZONE = {
    "type": "string",
    "pattern": "^[A-Za-z0-9_+/-]+$",
    "minLength": 1,
    "maxLength": 64,
    "examples": ["Europe/Paris"],
    "description": "an IANA time zone name: the merchant's local days (digest, reports)",
}
PAYMENTS = {
    "enum": list(PAYMENT_MODES),
    "description": "required: an order is held at the payment provider before it goes to "
    "the kitchen, and every product needs a price; off: orders go to the kitchen at once",
}


def schemas(orders: Orders) -> dict[str, Any]:
    """components/schemas: requests as validation takes them, answers as `kitchen.views`
    shapes them; `orders` (the `[orders]` settings) limits an order's lines."""
    recipe = {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_RECIPE_LINES,
        "items": _ref("NewRecipeLine"),
    }
    return {
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details.",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string", "example": "about:blank"},
                "title": {"type": "string", "example": "Invalid order"},
                "status": {"type": "integer", "example": 422},
                "detail": {
                    "type": "string",
                    "example": "products[0].quantity: must be a positive integer",
                },
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "message"],
                        "properties": {
                            "field": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        },
        "OrderLine": {
            "type": "object",
            "required": ["product_id", "quantity"],
            "additionalProperties": False,
            "properties": {
                "product_id": ID,
                "quantity": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": orders.max_quantity,
                    "description": "at most the [orders] max_quantity setting",
                },
            },
        },
        "NewOrder": {
            "type": "object",
            "required": ["products"],
            "additionalProperties": False,
            "properties": {
                "products": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": orders.max_lines,
                    "description": "at most the [orders] max_lines setting",
                    "items": _ref("OrderLine"),
                }
            },
        },
        "Order": {
            "type": "object",
            "required": ["id", "status", "lines", "created_at", "processed_at", "payment"],
            "properties": {
                "id": ID,
                "status": {"enum": list(ORDER_STATUSES)},
                "lines": {"type": "array", "items": _ref("OrderLine")},
                "created_at": TIME,
                "processed_at": NULLABLE_TIME,
                "key": {
                    "type": ["string", "null"],
                    "description": "the name of the API key that placed it (null: no key)",
                },
                "reason": {"type": "string", "description": "why it was rejected or cancelled"},
                "payment": {
                    "oneOf": [_ref("Payment"), {"type": "null"}],
                    "description": "null: the order needs no payment (its merchant's "
                    "payments were off)",
                },
            },
        },
        "Payment": {
            "type": "object",
            "description": "An order's payment: a hold on the card, captured once the kitchen "
            "applied the order, voided when stock is short.",
            "required": [
                "id",
                "provider",
                "status",
                "amount",
                "currency",
                "refunded_amount",
                "client_secret",
            ],
            "properties": {
                "id": {
                    "type": ["string", "null"],
                    "description": "the provider's id (pi_...); null until the provider answered",
                },
                "provider": {"type": "string", "description": "fake or stripe"},
                "status": {"enum": list(PAYMENT_STATES)},
                "amount": {
                    **AMOUNT,
                    "description": "the products' prices times the quantities, computed by "
                    "Kitchen, in minor units",
                },
                "currency": CURRENCY,
                "refunded_amount": AMOUNT,
                "client_secret": {
                    "type": ["string", "null"],
                    "description": "what the till confirms the card with; only while the "
                    "status is requires_payment",
                },
            },
        },
        "Merchant": {
            "type": "object",
            "required": [
                "id",
                "name",
                "alert_email",
                "threshold",
                "payments",
                "currency",
                "digest_hour",
                "timezone",
            ],
            "properties": {
                "id": ID,
                "name": {"type": "string"},
                "alert_email": {"type": "string", "format": "email"},
                "threshold": THRESHOLD,
                "payments": PAYMENTS,
                "currency": CURRENCY,
                "digest_hour": DIGEST_HOUR,
                "timezone": TIMEZONE,
            },
        },
        "MerchantChange": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "name": NAME,
                "alert_email": EMAIL,
                "threshold": THRESHOLD,
                "payments": PAYMENTS,
                "currency": {
                    **CURRENCY,
                    "description": "an ISO 4217 code, upper case: of the prices and of the "
                    "payments opened from then on",
                },
                "digest_hour": DIGEST_HOUR,
                "timezone": TIMEZONE,
            },
        },
        "Ingredient": {
            "type": "object",
            "required": [
                "id",
                "name",
                "stock",
                "full_stock",
                "threshold",
                "low",
                "alert_armed",
                "unit",
                "lead_time_days",
                "pack_size",
                "forecast",
            ],
            "properties": {
                "id": ID,
                "name": {"type": "string"},
                "stock": GRAMS,
                "full_stock": PAR,
                "threshold": THRESHOLD,
                "low": {"type": "boolean", "description": "below its threshold"},
                "alert_armed": {"type": "boolean"},
                "unit": UNIT,
                "lead_time_days": LEAD_TIME,
                "pack_size": PACK_SIZE,
                "forecast": _ref("Forecast"),
                "change": {
                    "$ref": "#/components/schemas/LedgerEntry",
                    "description": "only in the answer of a restock, count or waste: the "
                    "ledger row it wrote (a count's `amount` is the difference it found)",
                },
            },
        },
        "NewIngredient": {
            "type": "object",
            "required": ["name", "stock"],
            "additionalProperties": False,
            "properties": {
                "name": NAME,
                "stock": GRAMS,
                "full_stock": PAR,
                "threshold": THRESHOLD,
                "unit": {**UNIT, "description": f"{UNIT['description']} (default: g)"},
                "lead_time_days": {**LEAD_TIME, "description": f"{LEAD_DAYS} (default: 2)"},
                "pack_size": PACK_SIZE,
            },
        },
        "IngredientChange": {
            "type": "object",
            "description": "The unit is not among them: it is chosen when the ingredient is "
            "made (a PATCH naming it is a 422).",
            "additionalProperties": False,
            "properties": {
                "name": NAME,
                "full_stock": PAR,
                "threshold": THRESHOLD,
                "lead_time_days": LEAD_TIME,
                "pack_size": PACK_SIZE,
            },
        },
        **FORECAST_SCHEMAS,
        "StockMove": {
            "type": "object",
            "description": "A restock or waste: `amount`, or `grams` (its older name), not both.",
            "oneOf": AMOUNT_OR_GRAMS,
            "additionalProperties": False,
            "properties": {
                "amount": {
                    **GRAMS,
                    "minimum": 1,
                    "description": f"{IN_UNIT}; a restock that would take the stock above "
                    f"{MAX_GRAMS}, or waste of more than is in stock, is a 422",
                },
                "grams": {**GRAMS, "minimum": 1, "description": OLDER_NAME},
                "note": NOTE,
            },
        },
        "StockCount": {
            "type": "object",
            "description": "A physical count: `amount`, or `grams` (its older name), not both.",
            "oneOf": AMOUNT_OR_GRAMS,
            "additionalProperties": False,
            "properties": {
                "amount": {**GRAMS, "description": f"what was counted, {IN_UNIT}"},
                "grams": {**GRAMS, "description": OLDER_NAME},
                "note": NOTE,
            },
        },
        "LedgerEntry": {
            "type": "object",
            "required": [
                "id",
                "grams",
                "amount",
                "unit",
                "reason",
                "order_id",
                "note",
                "stock_after",
                "at",
                "key",
            ],
            "properties": {
                "id": ID,
                "grams": {
                    "type": "integer",
                    "minimum": -MAX_GRAMS,
                    "maximum": MAX_GRAMS,
                    "description": f"signed: added (+) or taken (-); {OLDER_NAME}",
                },
                "amount": {
                    "type": "integer",
                    "minimum": -MAX_GRAMS,
                    "maximum": MAX_GRAMS,
                    "description": f"signed: added (+) or taken (-), {IN_UNIT}",
                },
                "unit": UNIT,
                "reason": {"enum": list(LEDGER_REASONS)},
                "order_id": NULLABLE_ID,
                "note": {"type": ["string", "null"]},
                "stock_after": GRAMS,
                "at": TIME,
                "key": {
                    "type": ["string", "null"],
                    "description": "the name of the API key that made the change (a restock, "
                    "a count, a refund with restock); null for what processing did, and "
                    "without a key",
                },
            },
        },
        "Alert": {
            "type": "object",
            "required": [
                "id",
                "ingredient_id",
                "ingredient",
                "unit",
                "order_id",
                "stock",
                "full_stock",
                "threshold",
                "email",
                "created_at",
                "mail",
                "mail_sent_at",
                "cause",
                "status",
                "resolved_at",
                "resolved_by",
            ],
            "properties": {
                "id": ID,
                "ingredient_id": ID,
                "ingredient": {"type": "string", "description": "the ingredient's name"},
                "unit": UNIT,
                "order_id": {
                    **NULLABLE_ID,
                    "description": "the order that took the stock below (null: another change)",
                },
                "stock": {**GRAMS, "description": f"just after the crossing, {IN_UNIT}"},
                "full_stock": GRAMS,
                "threshold": THRESHOLD,
                "email": {"type": "string", "format": "email"},
                "created_at": TIME,
                "mail": {
                    "enum": list(MAIL_STATES),
                    "description": "sent; failed (never to be sent: a refused address); "
                    "waiting (not sent yet)",
                },
                "mail_sent_at": NULLABLE_TIME,
                "cause": {
                    "enum": [*views.ALERT_CAUSES, None],
                    "description": "what took the stock below: an order (see order_id), a "
                    "count, waste, an ingredient made below its line (initial), or a new par "
                    "level or threshold (levels); null for alerts made before it was recorded",
                },
                "status": {
                    "enum": list(views.ALERT_STATES),
                    "description": "open until the stock is back at or above its threshold "
                    "(the alert re-armed), then resolved",
                },
                "resolved_at": {
                    **NULLABLE_TIME,
                    "description": "when it was resolved; null while open",
                },
                "resolved_by": {
                    "enum": [*views.ALERT_RESOLUTIONS, None],
                    "description": "what brought the stock back: a restock, a count, a "
                    "refund with restock, a compensation (a payment that failed after the "
                    "kitchen used the stock) or a new par level or threshold (levels); null "
                    "while open, and for an alert resolved before the upgrade that recorded "
                    "it",
                },
            },
        },
        "RecipeLine": {
            "type": "object",
            "required": ["ingredient_id", "grams", "amount", "unit", "ingredient"],
            "properties": {
                "ingredient_id": ID,
                "grams": {"type": "integer", "minimum": 1, "maximum": MAX_GRAMS},
                "amount": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_GRAMS,
                    "description": f"of the ingredient in one product, {IN_UNIT}",
                },
                "unit": UNIT,
                "ingredient": {"type": "string", "description": "the ingredient's name"},
            },
        },
        "NewRecipeLine": {
            "type": "object",
            "description": "`amount`, or `grams` (its older name). A line sent back as GET "
            "shows it (both names, equal; `unit`, `ingredient`) is taken if its unit and name "
            "still fit the ingredient; otherwise a 422 says which does not.",
            "oneOf": AMOUNT_OR_GRAMS,
            "additionalProperties": False,
            "properties": {
                "ingredient_id": ID,
                # What GET shows, sent back: not for a client to write, checked if sent.
                "unit": {**UNIT, "readOnly": True, "description": "if sent: the ingredient's"},
                "ingredient": {
                    "type": "string",
                    "readOnly": True,
                    "description": "if sent: the ingredient's name",
                },
                "amount": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_GRAMS,
                    "description": f"of the ingredient in one product, {IN_UNIT}",
                },
                "grams": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_GRAMS,
                    "description": OLDER_NAME,
                },
            },
            "required": ["ingredient_id"],
        },
        "Product": {
            "type": "object",
            "required": ["id", "name", "recipe", "price"],
            "properties": {
                "id": ID,
                "name": {"type": "string"},
                "recipe": _list("RecipeLine"),
                "price": {"oneOf": [PRICE, {"type": "null"}], "description": "null: no price"},
                "can_make": {"type": "integer", "minimum": 0},
                "limited_by": {
                    **NULLABLE_ID,
                    "description": "the ingredient that limits can_make: the recipe line "
                    "whose stock makes the fewest (the first in recipe order of equals); null "
                    "without a recipe",
                },
                "deleted_at": TIME,
            },
        },
        "NewProduct": {
            "type": "object",
            "required": ["name", "recipe"],
            "additionalProperties": False,
            "properties": {"name": NAME, "recipe": recipe, "price": PRICE_OR_NULL},
        },
        "ProductChange": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"name": NAME, "recipe": recipe, "price": PRICE_OR_NULL},
        },
        "Seeded": {
            "type": "object",
            "description": "The reference kitchen, as GET /products and GET /ingredients show it.",
            "required": ["products", "ingredients"],
            "properties": {"products": _list("Product"), "ingredients": _list("Ingredient")},
        },
        "Dashboard": {
            "type": "object",
            "required": ["merchant", "ingredients", "products", "orders", "alerts"],
            "properties": {
                "merchant": {
                    "type": "object",
                    "required": ["id", "name"],
                    "properties": {"id": ID, "name": {"type": "string"}},
                },
                "ingredients": _list("Ingredient"),
                "products": _list("Product"),
                "orders": _list("Order"),
                "alerts": _list("Alert"),
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ok"}},
        },
        "Readiness": {
            "type": "object",
            "required": ["status", "roles"],
            "properties": {
                "status": {"enum": ["ok", "degraded"]},
                "roles": {
                    "type": "object",
                    "description": "each role of this process: true when it works",
                    "additionalProperties": {"type": "boolean"},
                },
            },
        },
        # Cancel and refund (issue 18).
        "OrderCancel": {
            "type": "object",
            "description": "Optional: the body may be left out.",
            "additionalProperties": False,
            "properties": {"reason": {**NOTE, "description": "why; the order's reason says it"}},
        },
        "RefundRequest": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "amount": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_AMOUNT,
                    "description": "cents; at most what was captured and is not refunded or "
                    "being refunded (more is a 422 saying how much is left); default: all of it",
                },
                "restock": {
                    "enum": [True, False],
                    "default": False,
                    "description": "give the order's ingredients back (ledger reason `refund`); "
                    "with a full refund only",
                },
                "reason": NOTE,
            },
        },
        "Refund": {
            "type": "object",
            "required": ["id", "order_id", "amount", "restock", "status", "reason"],
            "properties": {
                "id": ID,
                "order_id": ID,
                "amount": {"type": "integer", "minimum": 1, "maximum": MAX_AMOUNT},
                "restock": {"type": "boolean"},
                "status": {
                    "enum": [Refund.REQUESTED, Refund.SUCCEEDED, Refund.FAILED],
                    "description": "requested until the provider has made it",
                },
                "reason": {"type": ["string", "null"]},
            },
        },
    }


def _limit(default: int) -> dict[str, Any]:
    return {
        "name": "limit",
        "in": "query",
        "description": "how many to list at most",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": default},
    }


# The request bodies, each a schema of the same name.
REQUEST_BODIES = (
    "NewOrder",
    "MerchantChange",
    "NewIngredient",
    "IngredientChange",
    "StockMove",
    "StockCount",
    "NewProduct",
    "ProductChange",
)


def base(orders: Orders) -> dict[str, Any]:
    """The document before the routes' operations are added."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kitchen",
            "version": "1",
            "description": "Restaurant orders in, ingredient stock and low-stock alert emails "
            "out. Quantities of stock are integers of each ingredient's unit (g, ml or "
            "piece); thresholds are fractions between 0 and 1.",
        },
        # Development accepts requests without a key (they act as the default merchant).
        "security": [{"bearer": []}],
        "paths": {},
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A merchant's API key (python app.py merchant create ...).",
                },
                "metrics_token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The scrape token of GET /metrics ([metrics] token).",
                },
            },
            "schemas": schemas(orders),
            "parameters": {
                "id": {"name": "id", "in": "path", "required": True, "schema": ID},
                "limit": _limit(PAGE),
                "ledger_limit": _limit(LEDGER_PAGE),
                "before": {
                    "name": "before",
                    "in": "query",
                    "description": "an id of the list: only older ones are listed (paging)",
                    "schema": ID,
                },
                "order_status": {
                    "name": "status",
                    "in": "query",
                    "description": "only orders in this status",
                    "schema": {"enum": list(ORDER_STATUSES)},
                },
                "idempotency_key": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "description": "A retry with the same key returns the first order and "
                    "places nothing.",
                    "schema": {"type": "string", "minLength": 1, "maxLength": KEY_LENGTH},
                },
            },
            "requestBodies": {
                name: {"required": True, **_json(_ref(name))} for name in REQUEST_BODIES
            },
            "responses": {
                "BadRequest": _problem("The body is not JSON."),
                "Unauthorized": _problem(
                    "No valid API key (production needs one), or no `Bearer` scheme before it."
                ),
                "Forbidden": _problem("Not allowed here."),
                "NotFound": _problem("No such row for this merchant."),
                "Conflict": _problem("The name is taken."),
                "TooLarge": _problem("The body is larger than http.max_body_bytes."),
                "UnsupportedMediaType": _problem(
                    "The body is not sent as Content-Type: application/json; nothing was saved."
                ),
                "Invalid": _problem("JSON of the wrong shape; `errors` names each field."),
                "Unavailable": _problem("The database is unavailable; nothing was saved, retry."),
                "OrderUnavailable": {
                    **_problem(
                        "The database is unavailable (nothing was saved), or, for a merchant "
                        "that requires payments, the payment provider is: nothing was "
                        "charged, the order is cancelled; retry (the same Idempotency-Key "
                        "places a new order) after Retry-After seconds. (A retry of an order "
                        "placed already leaves it waiting for its hold.)"
                    ),
                    "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}},
                },
                "PaymentRefused": _problem(
                    "The payment provider refused the payment (a merchant that requires "
                    "payments): nothing was charged, the order is cancelled."
                ),
                "Order": _json(_ref("Order"), "The order."),
                "Orders": _json(_list("Order"), "Orders, newest first."),
                "Alerts": _json(
                    _list("Alert"),
                    "Alerts with their ingredient, stock, threshold and mail state, newest first.",
                ),
                "Merchant": _json(_ref("Merchant"), "The calling merchant."),
                "Ingredient": _json(_ref("Ingredient"), "The ingredient."),
                "Ingredients": _json(_list("Ingredient"), "The merchant's ingredients."),
                "Ledger": _json(_list("LedgerEntry"), "Ledger entries, newest first."),
                "Product": _json(_ref("Product"), "The product."),
                "Products": _json(_list("Product"), "The merchant's products."),
            },
        },
    }


def _shared(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


# What each operation that takes a merchant's key may answer, and each that takes a body.
KEYED = {"401": _shared("Unauthorized"), "503": _shared("Unavailable")}
WITH_BODY = {
    "400": _shared("BadRequest"),
    "413": _shared("TooLarge"),
    "415": _shared("UnsupportedMediaType"),
    "422": _shared("Invalid"),
}


class Generator(SchemaGenerator):
    """Starlette's generator, naming the endpoint whose docstring is not valid YAML."""

    def parse_docstring(self, func_or_method: Callable[..., Any]) -> dict[str, Any]:
        try:
            return super().parse_docstring(func_or_method)
        except yaml.YAMLError as exc:
            name = getattr(func_or_method, "__qualname__", repr(func_or_method))
            raise ValueError(f"the OpenAPI YAML in the docstring of {name}: {exc}") from None


def document(routes: list[BaseRoute], orders: Orders | None = None) -> dict[str, Any]:
    """The OpenAPI document of `routes`, as JSON-ready data (status codes as strings);
    `orders`: the `[orders]` settings the server runs with (default: the defaults)."""
    schema = Generator(base(orders or Orders())).get_schema(routes)
    for path, item in schema["paths"].items():
        names = re.findall(r"{(\w+)}", path)
        if names:
            item["parameters"] = [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                if n != "id"
                else {"$ref": "#/components/parameters/id"}
                for n in names
            ]
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = {str(k): v for k, v in operation["responses"].items()}
            if "security" not in operation:
                responses = {**KEYED, **responses}
            if "requestBody" in operation and "security" not in operation:
                # The JSON bodies of the merchant's endpoints (Api._json). The webhook's
                # raw, signed body states its own.
                responses = {**WITH_BODY, **responses}
            operation["responses"] = dict(sorted(copy.deepcopy(responses).items()))
    data: dict[str, Any] = json.loads(json.dumps(schema))
    return data
