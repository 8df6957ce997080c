"""The OpenAPI 3.1 document of the HTTP API (`GET /openapi.json`), built from the routes.

Each endpoint's docstring ends with `---` and the YAML of its OpenAPI operation
(summary, requestBody, responses); Starlette's SchemaGenerator collects them (see the
top of `kitchen/http.py` for the format). The shared parts live in `BASE` below and are
referred to with `$ref`: the `Problem` schema and the problem responses, the request
bodies, the shapes of orders, ingredients and products. A path parameter such as
`{id}` is declared here, from the path, so docstrings never repeat it.
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

from kitchen.domain import MAX_GRAMS, MAX_ID, THRESHOLD_PLACES


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


# Each limit is what the (64-bit) column holds, or less: see domain.MAX_GRAMS.
ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
GRAMS = {"type": "integer", "minimum": 0, "maximum": MAX_GRAMS, "description": "grams"}
# The par level: 100 % for the threshold. Set when the ingredient is made (default: its
# stock), changed only by PATCH; restocks and counts may take the stock above it.
PAR = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_GRAMS,
    "description": "the par level, in grams: 100 % for the threshold; the stock may stand above it",
}
THRESHOLD = {
    "type": "number",
    "minimum": 1 / 10**THRESHOLD_PLACES,
    "maximum": 1 - 1 / 10**THRESHOLD_PLACES,
    "description": f"a fraction of the par level, kept to {THRESHOLD_PLACES} decimal places "
    "(what is checked is what is stored)",
}
TIME = {"type": "string", "format": "date-time"}
# What a request may name things with (kitchen.validation: name_problem, note_problem,
# email_problem); anything else is a 422.
NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 100,
    "description": "one line of readable text: no control character, lone surrogate or "
    "line separator",
}
NOTE = {
    "type": "string",
    "minLength": 1,
    "maxLength": 500,
    "description": "readable text: newlines and tabs, but no other control character",
}
EMAIL = {
    "type": "string",
    "format": "email",
    "maxLength": 254,
    "description": "one address in ASCII, like name@example.com (no display name)",
}

SCHEMAS: dict[str, Any] = {
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
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
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
                "description": "at most the [orders] max_quantity setting (10000 by default)",
            },
        },
    },
    "NewOrder": {
        "type": "object",
        "required": ["products"],
        "additionalProperties": False,
        "properties": {"products": {"type": "array", "minItems": 1, "items": _ref("OrderLine")}},
    },
    "Order": {
        "type": "object",
        "required": ["id", "status", "lines", "created_at", "processed_at"],
        "properties": {
            "id": ID,
            "status": {"enum": ["pending", "applied", "rejected"]},
            "lines": {"type": "array", "items": _ref("OrderLine")},
            "created_at": TIME,
            "processed_at": {"oneOf": [TIME, {"type": "null"}]},
            "key": {
                "type": ["string", "null"],
                "description": "the name of the API key that placed it (null: no key)",
            },
            "reason": {"type": "string", "description": "why it was rejected"},
        },
    },
    "Merchant": {
        "type": "object",
        "required": ["id", "name", "alert_email", "threshold"],
        "properties": {
            "id": ID,
            "name": {"type": "string"},
            "alert_email": {"type": "string", "format": "email"},
            "threshold": THRESHOLD,
        },
    },
    "MerchantChange": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": NAME,
            "alert_email": EMAIL,
            "threshold": THRESHOLD,
        },
    },
    "Ingredient": {
        "type": "object",
        "required": ["id", "name", "stock", "full_stock", "threshold", "low", "alert_armed"],
        "properties": {
            "id": ID,
            "name": {"type": "string"},
            "stock": GRAMS,
            "full_stock": PAR,
            "threshold": THRESHOLD,
            "low": {"type": "boolean", "description": "below its threshold"},
            "alert_armed": {"type": "boolean"},
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
        },
    },
    "IngredientChange": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"name": NAME, "full_stock": PAR, "threshold": THRESHOLD},
    },
    "StockMove": {
        "type": "object",
        "required": ["grams"],
        "additionalProperties": False,
        "properties": {
            "grams": {
                **GRAMS,
                "description": "grams; a restock that would take the stock above "
                f"{MAX_GRAMS} g is a 422",
            },
            "note": NOTE,
        },
    },
    "LedgerEntry": {
        "type": "object",
        "required": ["id", "grams", "reason", "order_id", "note", "stock_after", "at"],
        "properties": {
            "id": ID,
            "grams": {
                "type": "integer",
                "minimum": -MAX_GRAMS,
                "maximum": MAX_GRAMS,
                "description": "signed: added (+) or taken (-)",
            },
            "reason": {"enum": ["initial", "order", "restock", "count", "waste"]},
            "order_id": {"oneOf": [ID, {"type": "null"}]},
            "note": {"type": ["string", "null"]},
            "stock_after": GRAMS,
            "at": TIME,
        },
    },
    "RecipeLine": {
        "type": "object",
        "required": ["ingredient_id", "grams"],
        "additionalProperties": False,
        "properties": {
            "ingredient_id": ID,
            "grams": {"type": "integer", "minimum": 1, "maximum": MAX_GRAMS},
        },
    },
    "Product": {
        "type": "object",
        "required": ["id", "name", "recipe"],
        "properties": {
            "id": ID,
            "name": {"type": "string"},
            "recipe": {"type": "array", "items": _ref("RecipeLine")},
            "can_make": {"type": "integer", "minimum": 0},
            "deleted_at": TIME,
        },
    },
    "NewProduct": {
        "type": "object",
        "required": ["name", "recipe"],
        "additionalProperties": False,
        "properties": {
            "name": NAME,
            "recipe": {"type": "array", "minItems": 1, "items": _ref("RecipeLine")},
        },
    },
    "ProductChange": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": NAME,
            "recipe": {"type": "array", "minItems": 1, "items": _ref("RecipeLine")},
        },
    },
    "Seeded": {
        "type": "object",
        "required": ["products", "ingredients"],
        "properties": {
            "products": {"type": "array", "items": _ref("Product")},
            "ingredients": {"type": "array", "items": {"type": "object"}},
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
}

BASE: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Kitchen",
        "version": "1",
        "description": "Restaurant orders in, ingredient stock and low-stock alert emails out. "
        "Quantities of stock are integer grams; thresholds are fractions between 0 and 1.",
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
        "schemas": SCHEMAS,
        "parameters": {
            "id": {"name": "id", "in": "path", "required": True, "schema": ID},
        },
        "requestBodies": {
            name: {"required": True, **_json(_ref(name))}
            for name in (
                "NewOrder",
                "MerchantChange",
                "NewIngredient",
                "IngredientChange",
                "StockMove",
                "NewProduct",
                "ProductChange",
            )
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
            "Order": _json(_ref("Order"), "The order."),
            "Merchant": _json(_ref("Merchant"), "The calling merchant."),
            "Ingredient": _json(_ref("Ingredient"), "The ingredient."),
            "Ingredients": _json(
                {"type": "array", "items": _ref("Ingredient")}, "The merchant's ingredients."
            ),
            "Ledger": _json(
                {"type": "array", "items": _ref("LedgerEntry")}, "Ledger entries, newest first."
            ),
            "Product": _json(_ref("Product"), "The product."),
            "Products": _json(
                {"type": "array", "items": _ref("Product")}, "The merchant's products."
            ),
        },
    },
}


class Generator(SchemaGenerator):
    """Starlette's generator, naming the endpoint whose docstring is not valid YAML."""

    def parse_docstring(self, func_or_method: Callable[..., Any]) -> dict[str, Any]:
        try:
            return super().parse_docstring(func_or_method)
        except yaml.YAMLError as exc:
            name = getattr(func_or_method, "__qualname__", repr(func_or_method))
            raise ValueError(f"the OpenAPI YAML in the docstring of {name}: {exc}") from None


def document(routes: list[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document of `routes`, as JSON-ready data (status codes as strings)."""
    schema = Generator(copy.deepcopy(BASE)).get_schema(routes)
    for path, item in schema["paths"].items():
        names = re.findall(r"{(\w+)}", path)
        if names:
            item["parameters"] = [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                if n != "id"
                else {"$ref": "#/components/parameters/id"}
                for n in names
            ]
    data: dict[str, Any] = json.loads(json.dumps(schema))
    return data
