"""API role: the Starlette app. The whole HTTP surface is the `routes` list below.

Endpoints are thin: they find the calling merchant (`merchant_of`), parse the body into a
typed command (`kitchen.commands`), call the use case (`orders`, `seed`, `inventory`,
`menu`, `merchants`, `views`) and shape the answer; `build_app` gives each use-case error
(`kitchen.errors`) its status. What they need comes through `Api`'s constructor; the
database is reached through the one documented handle in `kitchen.db`. Database work
runs in Starlette's thread pool (`run_in_threadpool`): peewee and psycopg2 block, and
inside the event loop they would serialise every request. Errors are RFC 9457 problem
details (`application/problem+json`).

Every endpoint documents itself for `GET /openapi.json` (see `kitchen/openapi.py`): its
docstring is one line of prose for the reader, then a line `---`, then the YAML of its
OpenAPI operation. Refer to the shared parts with `$ref` (problem responses, request
bodies, shapes and query parameters are in `openapi.base`). The document adds what every
operation of a kind answers (`openapi.document`): path parameters such as `{id}`, 401
and 503 for each that takes a merchant's key, 400, 413, 415 and 422 for each that takes
a body; a docstring states only what is its own. For example:

    async def get_order(self, request: Request) -> Response:
        \"""One order of the calling merchant.
        ---
        summary: An order and its status
        responses:
          "200": {$ref: "#/components/responses/Order"}
          "404": {$ref: "#/components/responses/NotFound"}
        \"""

An endpoint open without a key says `security: []`. A test checks that every route (each
of its methods) is in the document and that the document is valid OpenAPI 3.
"""

from __future__ import annotations

import datetime
import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import peewee as pw
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kitchen import (
    commands,
    dashboard,
    db,
    forecast,
    inventory,
    logs,
    menu,
    merchants,
    metrics,
    models,
    openapi,
    orders,
    paid_orders,
    payments,
    reorder,
    reports,
    seed,
    spreadsheet,
    views,
    webhooks,
)
from kitchen.domain import MAX_GRAMS, MAX_ID, Line, is_id
from kitchen.errors import (
    Conflict,
    FieldError,
    Invalid,
    InvalidOrder,
    KeyReused,
    MalformedBody,
    NotFound,
)
from kitchen.fake_provider import FakeProvider
from kitchen.intake import Intake
from kitchen.models import LedgerEntry
from kitchen.providers import BadSignature, PaymentRefused, Provider, ProviderUnavailable
from kitchen.settings import Settings
from kitchen.single_flight import SingleFlight
from kitchen.validation import KEY_LENGTH, PAYMENTS_REQUIRED, decode_body, parse_order

log = logging.getLogger(__name__)

# An oversized body is still read (and dropped) up to this size before the 413 goes out.
# Answering at once and closing while the client is still sending resets the connection,
# and the client sees a reset instead of the 413. Past this size the answer goes out at
# once: reading on would let one client tie up the connection.
DRAIN_BYTES = 8 * 1024 * 1024

P = ParamSpec("P")
T = TypeVar("T")


# What restock, count and waste do, for their OpenAPI description.
STOCK_MOVES = {
    LedgerEntry.RESTOCK: (
        "Restock",
        "Add stock (the stock may stand above the par level, `full_stock`, which stays; "
        f"more than {MAX_GRAMS:,} in all, in the ingredient's unit, is a 422); at or above the "
        "threshold the alert re-arms.",
    ),
    LedgerEntry.COUNT: (
        "Count",
        "A physical count: the stock becomes the counted amount, above the par level too, "
        "which stays (may alert or re-arm).",
    ),
    LedgerEntry.WASTE: (
        "Waste",
        "Remove spoiled stock (may alert); more than is in stock is a 422.",
    ),
}


class Problem(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors = status, title, detail, errors
        self.headers = headers


def problem_response(p: Problem) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": p.title,
        "status": p.status,
        "detail": p.detail,
    }
    if p.errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in p.errors]
    return JSONResponse(
        body, status_code=p.status, media_type="application/problem+json", headers=p.headers
    )


UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="kitchen"'}


class Api:
    """Endpoints, given what they need by the constructor."""

    def __init__(
        self,
        settings: Settings,
        merchant_id: int,
        on_commit: Callable[[], None] = lambda: None,
        readiness: Callable[[], dict[str, Any]] = lambda: {},
        intake: Intake | None = None,
        key_uses: merchants.KeyUses | None = None,
        provider: Provider | None = None,
    ) -> None:
        self.settings = settings
        # The payment cycle (kitchen/payments.py) and the provider that holds the money.
        self.cycle = payments.Cycle.of(settings)
        self.provider = provider or payments.provider_for(settings.payments)
        self.payment_modes = paid_orders.PaymentModes()  # which merchants require payments
        self.webhooks = webhooks.Webhooks(settings, self.cycle)  # POST /payments/webhook
        self.intake = intake or Intake(settings.kafka.order_created_topic, on_commit=on_commit)
        self.default_merchant_id = merchant_id  # who a keyless request is, in development
        self._keyless = merchants.Caller(merchant_id)
        self.known_keys = merchants.KnownKeys(key_uses)
        self.lookups: SingleFlight[Any] = SingleFlight()  # one database lookup per cache miss
        self.on_commit = on_commit
        self.readiness = readiness
        self.rules = inventory.AlertRules(
            settings.alerts.threshold_fraction,
            settings.kafka.notify_topic,
            forecast.Rules(settings.forecast.window_days, settings.forecast.weekday_weeks),
        )

    # -- plumbing ------------------------------------------------------------------------

    async def merchant_of(self, request: Request) -> int:
        """The calling merchant's id (see `caller`)."""
        return (await self.caller(request)).merchant_id

    async def caller(self, request: Request) -> merchants.Caller:
        """The calling merchant and key: the one in `Authorization: Bearer <key>`.
        Without a key: the default merchant in development, 401 in production. A wrong
        key is a 401 everywhere. Log lines of the request name the key (`logs.acting_key`)."""
        header = request.headers.get("authorization")
        if header is None:
            if self.settings.app.production:
                raise Problem(
                    401, "Unauthorized", "send Authorization: Bearer <key>", None, UNAUTHORIZED
                )
            return self._keyless
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer":
            # Never echo the header: without the scheme, it is the key itself.
            detail = "the Authorization scheme must be Bearer: send Authorization: Bearer <key>"
            raise Problem(401, "Unauthorized", detail, None, UNAUTHORIZED)
        if not key:
            detail = "Authorization: Bearer needs the key after it"
            raise Problem(401, "Unauthorized", detail, None, UNAUTHORIZED)
        known = self.known_keys.get(key)
        if known is None:
            hashed = ("key", merchants.hash_key(key))  # the key itself is kept nowhere
            known = await self.lookups.do(hashed, lambda: self._run(merchants.by_key, key))
            if known is None:
                raise Problem(401, "Unauthorized", "the API key is not valid", None, UNAUTHORIZED)
            self.known_keys.remember(key, known)
        logs.acting_key(known.key_name)
        return known

    async def _body(self, request: Request) -> bytes:
        limit = self.settings.http.max_body_bytes
        too_big = Problem(413, "Payload too large", f"the body must be at most {limit} bytes")
        length = request.headers.get("content-length", "")
        if length.isdigit() and (len(length) > 19 or int(length) > DRAIN_BYTES):
            raise too_big  # not worth reading: answer now, whatever the client then sees
        body = bytearray()
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received <= limit:
                body += chunk
            elif received > DRAIN_BYTES:
                break
        if received > limit:
            raise too_big
        return bytes(body)

    async def _json(self, request: Request) -> Any:
        # Read first: answering before the body is read can reset the connection.
        body = await self._body(request)
        kind = request.headers.get("content-type")
        if not is_json(kind):
            # A web page may post text/plain or a form to another origin without asking
            # first (no CORS preflight); application/json needs the preflight, which
            # Kitchen never grants.
            got = f"got {kind[:100]!r}" if kind else "none was given"
            raise Problem(
                415,
                "Unsupported media type",
                f"the body must be JSON, sent with Content-Type: application/json ({got})",
                headers={f"Accept-{request.method.capitalize()}": "application/json"},
            )
        return decode_body(body)

    @staticmethod
    async def _run(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await run_in_threadpool(work, *args, **kwargs)

    @staticmethod
    def _id(request: Request, what: str) -> int:
        raw = request.path_params["id"]
        found = path_id(raw)
        if found is None:
            raise NotFound(what, raw)
        return found

    # -- orders --------------------------------------------------------------------------

    async def create_order(self, request: Request) -> Response:
        """Place an order: saved with its ORDER_CREATED event in one transaction; for a
        merchant that requires payments, saved awaiting its payment's hold.
        ---
        summary: Place an order
        description: >-
          The stock changes a moment later, when the processing role applies it. For a
          merchant whose `payments` is `required`, the order is `awaiting_payment` and its
          `payment` (amount: the products' prices times the quantities, computed by
          Kitchen) is held at the provider before the answer; the till confirms the card
          with the payment's `client_secret`, and once the provider reports the hold the
          order becomes `pending` and goes to the kitchen. Every product must have a
          price (422). When the provider is down (503) or refuses (402), nothing was
          charged, the order is cancelled and the Idempotency-Key is free again: a retry
          with it places a new order.
        parameters: [{$ref: "#/components/parameters/idempotency_key"}]
        requestBody: {$ref: "#/components/requestBodies/NewOrder"}
        responses:
          "201": {$ref: "#/components/responses/Order"}
          "402": {$ref: "#/components/responses/PaymentRefused"}
          "503": {$ref: "#/components/responses/OrderUnavailable"}
        """
        caller = await self.caller(request)
        merchant_id = caller.merchant_id
        key = request.headers.get("idempotency-key")
        if key is not None and not 1 <= len(key) <= KEY_LENGTH:
            field = FieldError("Idempotency-Key", f"must be 1 to {KEY_LENGTH} characters")
            raise Problem(422, "Invalid Idempotency-Key", str(field), [field])
        lines = parse_order(
            await self._json(request),
            self.settings.orders.max_lines,
            self.settings.orders.max_quantity,
        )
        if await self._requires_payments(merchant_id):
            return await self._paid_order(caller, lines, key)
        order: orders.Placed | models.Order
        if key is None:
            # The hot path: saved in a group with other requests (see kitchen.intake).
            new = orders.NewOrder(merchant_id, lines, key_name=caller.key_name)
            order, created = await self.intake.place(new), True
        else:
            order, created = await self._run(
                orders.place_order,
                merchant_id,
                lines,
                self.settings.kafka.order_created_topic,
                key,
                caller.key_name,
            )
        headers = {"Location": f"/order/{order.id}"}
        if created:
            metrics.order_accepted()
            if key is not None:
                self.on_commit()
        else:
            headers["Idempotent-Replayed"] = "true"
        # A replayed order may have a payment (its merchant required payments then).
        paid = None if created else await self._run(paid_orders.payment_of, merchant_id, order.id)
        # A replay's lines are the first request's: the same key needs the same lines.
        return JSONResponse(views.order(order, lines, paid), status_code=201, headers=headers)

    async def _requires_payments(self, merchant_id: int) -> bool:
        required = self.payment_modes.get(merchant_id)
        if required is None:
            required = await self.lookups.do(
                ("payments", merchant_id),
                lambda: self._run(paid_orders.requires_payments, merchant_id),
            )
            self.payment_modes.remember(merchant_id, required)
        return required

    async def _paid_order(
        self, caller: merchants.Caller, lines: list[Line], key: str | None
    ) -> Response:
        """POST /order for a merchant that requires payments (kitchen/paid_orders.py):
        the order and its payment saved, then the hold asked of the provider (it blocks:
        in the thread pool, as the database work)."""
        merchant_id = caller.merchant_id
        placed = await self._run(
            paid_orders.place,
            self.cycle,
            self.provider.name,
            self.settings.payments.hold_minutes,
            merchant_id,
            lines,
            key,
            caller.key_name,
        )
        if placed.needs_hold:
            try:
                await self._run(paid_orders.hold, self.cycle, self.provider, placed)
            except (ProviderUnavailable, PaymentRefused) as exc:
                log.warning("order %d: no hold made: %s", placed.order.id, exc)
                self.on_commit()  # the order's cancellation is in the outbox
                retry = self.settings.payments.retry_seconds
                raise hold_problem(exc, placed.created, retry) from None
        order, payment = await self._run(paid_orders.current, merchant_id, placed.order.id)
        headers = {"Location": f"/order/{order.id}"}
        if placed.created:
            metrics.order_accepted()
        else:
            headers["Idempotent-Replayed"] = "true"
        # A replay's lines are the first request's: the same key needs the same lines.
        return JSONResponse(views.order(order, lines, payment), status_code=201, headers=headers)

    async def get_order(self, request: Request) -> Response:
        """One order of the calling merchant.
        ---
        summary: An order and its status
        responses:
          "200": {$ref: "#/components/responses/Order"}
          "404": {$ref: "#/components/responses/NotFound"}
        """
        merchant_id = await self.merchant_of(request)
        order_id = self._id(request, "order")
        view = await self._run(views.order_by_id, order_id, merchant_id)
        if view is None:
            raise NotFound("order", order_id)
        return JSONResponse(view)

    async def recent_orders(self, request: Request) -> Response:
        """The calling merchant's latest orders, newest first (the dashboard lists them).
        ---
        summary: Latest orders
        description: Another query parameter, or one given twice, is a 422.
        parameters:
          - {$ref: "#/components/parameters/limit"}
          - {$ref: "#/components/parameters/before"}
          - {$ref: "#/components/parameters/order_status"}
        responses:
          "200": {$ref: "#/components/responses/Orders"}
          "422": {$ref: "#/components/responses/Invalid"}
        """
        merchant_id = await self.merchant_of(request)
        limit, before = page(request, views.PAGE, "status")
        status = query_choice(request, "status", views.ORDER_STATUSES)
        orders_ = await self._run(views.recent_orders, merchant_id, limit, before, status)
        return JSONResponse(orders_)

    async def seed(self, request: Request) -> Response:
        """The reference kitchen (a burger of beef, cheese and onion) for the caller.
        ---
        summary: Seed the reference kitchen (development only)
        responses:
          "200":
            description: It was there already; nothing changed.
            content: {application/json: {schema: {$ref: "#/components/schemas/Seeded"}}}
          "201":
            description: Created.
            content: {application/json: {schema: {$ref: "#/components/schemas/Seeded"}}}
          "403": {$ref: "#/components/responses/Forbidden"}
        """
        merchant_id = await self.merchant_of(request)
        if self.settings.app.production:
            raise Problem(403, "Forbidden", "the reference kitchen is for development only")
        created, view = await self._run(seed.seed, merchant_id, self.rules)
        return JSONResponse(view, status_code=201 if created else 200)

    # -- cancel and refund (issue 18) ----------------------------------------------------

    async def cancel_order(self, request: Request) -> Response:
        """Cancel an order the kitchen has not applied yet; its hold, if any, is voided.
        ---
        summary: Cancel an order
        description: >-
          An order still awaiting payment or pending becomes `cancelled` (with `reason`
          "cancelled" or "cancelled: <the reason given>"), and processing skips it; the
          payments role voids its hold, if it has one, so nothing is charged. Cancelling
          it again answers the same. Works for merchants without payments too. Whichever of
          the cancel and the kitchen commits first wins: an order the kitchen applied
          already is a 409 (refund it instead). The body is optional.
        requestBody:
          required: false
          content: {application/json: {schema: {$ref: "#/components/schemas/OrderCancel"}}}
        responses:
          "200": {$ref: "#/components/responses/Order"}
          "404": {$ref: "#/components/responses/NotFound"}
          "409":
            description: 'The order is applied already ("already applied: refund it") or rejected.'
            content:
              application/problem+json: {schema: {$ref: "#/components/schemas/Problem"}}
        """
        merchant_id = await self.merchant_of(request)
        order_id = self._id(request, "order")
        empty = (
            request.headers.get("content-length", "0") == "0"
            and "transfer-encoding" not in request.headers
        )
        cancel = commands.CancelOrder.parse(None if empty else await self._json(request))

        def work() -> dict[str, Any] | None:
            self.cycle.cancel(merchant_id, order_id, cancel.reason)
            return views.order_by_id(order_id, merchant_id)

        view = await self._run(work)
        self.on_commit()  # ORDER_CANCELLED went to the outbox
        return JSONResponse(view)

    async def refund_order(self, request: Request) -> Response:
        """Refund an order's captured payment, in full or in part; the payments role has the
        provider make it.
        ---
        summary: Refund an order
        description: >-
          Records the refund (`requested`) and answers at once; the payment shows it as
          `refunded_amount` (status `partially_refunded` or `refunded`) once the provider
          made it. Up to what was captured and is not refunded or being refunded already
          (more is a 422 that says how much is left); without `amount`, all of that.
          `restock` (with a full refund only) gives the order's ingredients back now: ledger
          reason `refund`, and an alert re-arms as after a restock. Send `{}` for a full
          refund.
        requestBody:
          required: true
          content: {application/json: {schema: {$ref: "#/components/schemas/RefundRequest"}}}
        responses:
          "202":
            description: The refund, requested.
            content: {application/json: {schema: {$ref: "#/components/schemas/Refund"}}}
          "404": {$ref: "#/components/responses/NotFound"}
          "409":
            description: The order has no payment, or its payment is not captured.
            content:
              application/problem+json: {schema: {$ref: "#/components/schemas/Problem"}}
        """
        caller = await self.caller(request)
        merchant_id = caller.merchant_id
        order_id = self._id(request, "order")
        ask = commands.RefundOrder.parse(await self._json(request), caller.key_name)
        refund = await self._run(
            self.cycle.request_refund,
            merchant_id,
            order_id,
            ask.amount,
            ask.restock,
            ask.reason,
            ask.key_name,
        )
        return JSONResponse(views.refund(refund), status_code=202)

    # -- the merchant --------------------------------------------------------------------

    async def get_merchant(self, request: Request) -> Response:
        """The calling merchant.
        ---
        summary: The calling merchant
        responses:
          "200": {$ref: "#/components/responses/Merchant"}
        """
        merchant_id = await self.merchant_of(request)
        default = self.rules.default_threshold
        return JSONResponse(await self._run(merchants.get, merchant_id, default))

    async def patch_merchant(self, request: Request) -> Response:
        """Change the calling merchant's name, alert address, default threshold, whether
        its orders must be paid (`payments`) or its currency.
        ---
        summary: Change the calling merchant
        requestBody: {$ref: "#/components/requestBodies/MerchantChange"}
        responses:
          "200": {$ref: "#/components/responses/Merchant"}
          "409": {$ref: "#/components/responses/Conflict"}
        """
        merchant_id = await self.merchant_of(request)
        change = commands.PatchMerchant.parse(await self._json(request))
        if change.payments == PAYMENTS_REQUIRED and self.settings.payments.provider == "none":
            raise Invalid(
                [
                    FieldError(
                        "payments", "this Kitchen takes no payments ([payments] provider = none)"
                    )
                ]
            )
        view = await self._run(merchants.update, merchant_id, change, self.rules)
        self.payment_modes.forget(merchant_id)  # its next order takes the new path
        return JSONResponse(view)

    # -- ingredients and their stock -----------------------------------------------------

    async def ingredients(self, request: Request) -> Response:
        """The calling merchant's ingredients.
        ---
        summary: List ingredients
        description: It takes no query parameters; any is a 422.
        responses:
          "200": {$ref: "#/components/responses/Ingredients"}
          "422": {$ref: "#/components/responses/Invalid"}
        """
        merchant_id = await self.merchant_of(request)
        known_query(request)
        return JSONResponse(await self._run(inventory.all_of, merchant_id, self.rules))

    async def create_ingredient(self, request: Request) -> Response:
        """Add an ingredient; `full_stock`, its par level, defaults to its stock. Created
        below its threshold, it alerts once, as a crossing does.
        ---
        summary: Add an ingredient
        requestBody: {$ref: "#/components/requestBodies/NewIngredient"}
        responses:
          "201": {$ref: "#/components/responses/Ingredient"}
          "409": {$ref: "#/components/responses/Conflict"}
        """
        caller = await self.caller(request)
        merchant_id = caller.merchant_id
        new = commands.CreateIngredient.parse(await self._json(request))
        view = await self._run(inventory.create, merchant_id, new, self.rules, caller.key_name)
        self.on_commit()  # it may have raised an alert
        return JSONResponse(view, 201, {"Location": f"/ingredients/{view['id']}"})

    async def get_ingredient(self, request: Request) -> Response:
        """One ingredient of the calling merchant.
        ---
        summary: An ingredient
        responses:
          "200": {$ref: "#/components/responses/Ingredient"}
          "404": {$ref: "#/components/responses/NotFound"}
        """
        merchant_id = await self.merchant_of(request)
        ingredient_id = self._id(request, "ingredient")
        return JSONResponse(await self._run(inventory.one, merchant_id, ingredient_id, self.rules))

    async def patch_ingredient(self, request: Request) -> Response:
        """Rename an ingredient, or change its par level (`full_stock`) or threshold (may
        alert or re-arm). The par level changes only here.
        ---
        summary: Change an ingredient
        requestBody: {$ref: "#/components/requestBodies/IngredientChange"}
        responses:
          "200": {$ref: "#/components/responses/Ingredient"}
          "404": {$ref: "#/components/responses/NotFound"}
          "409": {$ref: "#/components/responses/Conflict"}
        """
        merchant_id = await self.merchant_of(request)
        ingredient_id = self._id(request, "ingredient")
        change = commands.PatchIngredient.parse(await self._json(request))
        view = await self._run(inventory.update, merchant_id, ingredient_id, change, self.rules)
        self.on_commit()  # it may have raised an alert
        return JSONResponse(view)

    def stock_move(self, kind: str) -> Callable[[Request], Awaitable[Response]]:
        """POST /ingredients/{id}/restock, /count, /waste (documented per kind below)."""

        async def endpoint(request: Request) -> Response:
            caller = await self.caller(request)
            merchant_id = caller.merchant_id
            ingredient_id = self._id(request, "ingredient")
            move = commands.StockMove.parse(kind, await self._json(request))
            view = await self._run(
                inventory.move, merchant_id, ingredient_id, move, self.rules, caller.key_name
            )
            self.on_commit()  # a count or waste may have raised an alert
            return JSONResponse(view)

        title, description = STOCK_MOVES[kind]
        # A count may find nothing (0 g); a restock or waste of nothing is refused.
        body = "StockCount" if kind == LedgerEntry.COUNT else "StockMove"
        endpoint.__doc__ = f"""{description}
        ---
        summary: {title} an ingredient
        description: {json.dumps(description)}
        requestBody: {{$ref: "#/components/requestBodies/{body}"}}
        responses:
          "200": {{$ref: "#/components/responses/Ingredient"}}
          "404": {{$ref: "#/components/responses/NotFound"}}
        """
        return endpoint

    async def ledger(self, request: Request) -> Response:
        """Every change of an ingredient's stock, newest first.
        ---
        summary: The ledger of an ingredient
        description: Another query parameter, or one given twice, is a 422.
        parameters:
          - {$ref: "#/components/parameters/ledger_limit"}
          - {$ref: "#/components/parameters/before"}
        responses:
          "200": {$ref: "#/components/responses/Ledger"}
          "404": {$ref: "#/components/responses/NotFound"}
          "422": {$ref: "#/components/responses/Invalid"}
        """
        merchant_id = await self.merchant_of(request)
        ingredient_id = self._id(request, "ingredient")
        limit, before = page(request, views.LEDGER_PAGE)
        rows = await self._run(inventory.ledger, merchant_id, ingredient_id, limit, before)
        return JSONResponse(rows)

    # -- what to order from suppliers ---------------------------------------------------

    async def reorder(self, request: Request) -> Response:
        """The supplier orders to place now (not customer orders): each ingredient whose
        forecast suggests ordering, the one that runs out first first. JSON, or CSV on
        `Accept: text/csv` (one row per line, the same field names).
        ---
        summary: What to order from suppliers
        description: >-
          Supplier orders, not customer orders (those are /order and /orders). Each
          ingredient whose `forecast.suggested_order` is above 0: what brings its stock
          back to its par level after the use expected while a delivery takes
          `lead_time_days`, in whole packs. Most urgent first (earliest `runs_out_at`;
          those that never run out last; then by name). With `Accept: text/csv`, the
          lines as CSV with a header row of the same field names. It takes no query
          parameters; any is a 422.
        responses:
          "200":
            description: The lines, and when they were computed.
            content:
              application/json: {schema: {$ref: "#/components/schemas/Reorder"}}
              text/csv:
                schema: {type: string}
          "422": {$ref: "#/components/responses/Invalid"}
        """
        merchant_id = await self.merchant_of(request)
        known_query(request)
        now = datetime.datetime.now(datetime.UTC)
        body = await self._run(reorder.view, merchant_id, self.rules.forecast, now)
        return spreadsheet.respond(request, body, body["lines"], reorder.COLUMNS, "reorder.csv")

    # -- alerts and the dashboard ---------------------------------------------------------

    async def alerts(self, request: Request) -> Response:
        """The calling merchant's alerts, newest first, with the state of their email.
        ---
        summary: Latest alerts
        description: Another query parameter, or one given twice, is a 422.
        parameters:
          - {$ref: "#/components/parameters/limit"}
          - {$ref: "#/components/parameters/before"}
        responses:
          "200": {$ref: "#/components/responses/Alerts"}
          "422": {$ref: "#/components/responses/Invalid"}
        """
        merchant_id = await self.merchant_of(request)
        limit, before = page(request, views.PAGE)
        return JSONResponse(await self._run(views.recent_alerts, merchant_id, limit, before))

    async def page(self, request: Request) -> Response:
        """The dashboard page; it holds no data, so it needs no key (see kitchen.dashboard).
        ---
        summary: The live stock dashboard (HTML)
        security: []
        responses:
          "200":
            description: The page; its script polls GET /dashboard with the key it is given.
            content: {text/html: {schema: {type: string}}}
        """
        html = dashboard.page(self.settings.app.production)
        return HTMLResponse(html, headers=dashboard.HEADERS)

    async def dashboard(self, request: Request) -> Response:
        """What the dashboard page polls: the merchant, ingredients, products, orders, alerts.
        ---
        summary: Dashboard data
        responses:
          "200":
            description: The merchant and its four lists, in one answer.
            content: {application/json: {schema: {$ref: "#/components/schemas/Dashboard"}}}
        """
        merchant_id = await self.merchant_of(request)
        view = await self._run(dashboard.data, merchant_id, self.rules)
        return JSONResponse(view, headers={"Cache-Control": "no-store"})

    # -- the usage report (issue 20) -----------------------------------------------------

    async def usage_report(self, request: Request) -> Response:
        """What each ingredient did and each product sold over the merchant's local days.
        ---
        summary: Usage report (JSON, or CSV with Accept text/csv)
        description: >-
          `from` and `to` are local dates in the merchant's time zone, both included,
          at most 366 days. Amounts are integers of each ingredient's unit: `used` by
          orders, `wasted`, `restocked` and `refunded` (given back by refunds and failed
          payments) are positive, `counted` is the counts' signed variance. With
          `Accept: text/csv` the answer is one CSV row per ingredient (the JSON's field
          names as its header), or per product with `rows=products`. Another query
          parameter, or one given twice, is a 422.
        parameters:
          - {name: from, in: query, required: true, schema: {type: string, format: date}}
          - {name: to, in: query, required: true, schema: {type: string, format: date}}
          - name: rows
            in: query
            description: What the CSV lists (JSON always has both).
            schema: {enum: [ingredients, products], default: ingredients}
        responses:
          "200":
            description: The report.
            content:
              application/json:
                schema:
                  type: object
                  required: [from, to, timezone, ingredients, products]
                  properties:
                    from: {type: string, format: date}
                    to: {type: string, format: date}
                    timezone: {type: string}
                    ingredients:
                      type: array
                      items:
                        type: object
                        required: [ingredient_id, name, unit, used, wasted, restocked,
                                   counted, refunded]
                        properties:
                          ingredient_id: {type: integer}
                          name: {type: string}
                          unit: {type: string}
                          used: {type: integer, minimum: 0}
                          wasted: {type: integer, minimum: 0}
                          restocked: {type: integer, minimum: 0}
                          counted: {type: integer}
                          refunded: {type: integer, minimum: 0}
                    products:
                      type: array
                      items:
                        type: object
                        required: [product_id, name, orders, quantity]
                        properties:
                          product_id: {type: integer}
                          name: {type: string}
                          orders: {type: integer, minimum: 0}
                          quantity: {type: integer, minimum: 0}
              text/csv:
                schema: {type: string}
          "422": {$ref: "#/components/responses/Invalid"}
        """
        merchant_id = await self.merchant_of(request)
        known_query(request, "from", "to", "rows")
        period = reports.Period.parse(
            request.query_params.get("from"), request.query_params.get("to")
        )
        rows = query_choice(request, "rows", ("ingredients", "products")) or "ingredients"
        report = await self._run(reports.usage_report, merchant_id, period)
        columns = reports.PRODUCT_COLUMNS if rows == "products" else reports.INGREDIENT_COLUMNS
        name = f"usage-{rows}-{report['from']}-{report['to']}.csv"
        return spreadsheet.respond(request, report, report[rows], columns, name)

    # -- products ------------------------------------------------------------------------

    async def products(self, request: Request) -> Response:
        """The calling merchant's products, each with how many more the stock can make.
        ---
        summary: List products
        description: It takes no query parameters; any is a 422.
        responses:
          "200": {$ref: "#/components/responses/Products"}
          "422": {$ref: "#/components/responses/Invalid"}
        """
        merchant_id = await self.merchant_of(request)
        known_query(request)
        return JSONResponse(await self._run(menu.all_of, merchant_id))

    async def create_product(self, request: Request) -> Response:
        """Add a product and its recipe.
        ---
        summary: Add a product
        requestBody: {$ref: "#/components/requestBodies/NewProduct"}
        responses:
          "201": {$ref: "#/components/responses/Product"}
          "409": {$ref: "#/components/responses/Conflict"}
        """
        merchant_id = await self.merchant_of(request)
        new = commands.CreateProduct.parse(await self._json(request))
        view = await self._run(menu.create, merchant_id, new)
        return JSONResponse(view, 201, {"Location": f"/products/{view['id']}"})

    async def get_product(self, request: Request) -> Response:
        """One product of the calling merchant.
        ---
        summary: A product
        responses:
          "200": {$ref: "#/components/responses/Product"}
          "404": {$ref: "#/components/responses/NotFound"}
        """
        merchant_id = await self.merchant_of(request)
        product_id = self._id(request, "product")
        return JSONResponse(await self._run(menu.one, merchant_id, product_id))

    async def patch_product(self, request: Request) -> Response:
        """Rename a product or replace its whole recipe.
        ---
        summary: Change a product
        requestBody: {$ref: "#/components/requestBodies/ProductChange"}
        responses:
          "200": {$ref: "#/components/responses/Product"}
          "404": {$ref: "#/components/responses/NotFound"}
          "409": {$ref: "#/components/responses/Conflict"}
        """
        merchant_id = await self.merchant_of(request)
        product_id = self._id(request, "product")
        change = commands.PatchProduct.parse(await self._json(request))
        return JSONResponse(await self._run(menu.update, merchant_id, product_id, change))

    async def delete_product(self, request: Request) -> Response:
        """Delete a product: past orders keep it, new orders naming it get 422.
        ---
        summary: Delete a product
        responses:
          "204": {description: Deleted.}
          "404": {$ref: "#/components/responses/NotFound"}
        """
        merchant_id = await self.merchant_of(request)
        product_id = self._id(request, "product")
        await self._run(menu.delete, merchant_id, product_id)
        return Response(status_code=204)

    # -- payments: the provider's webhooks, development's fake card -----------------------

    async def payment_webhook(self, request: Request) -> Response:
        """What the payment provider tells Kitchen (Stripe-shaped events), signed with the
        `[payments] webhook_secret` instead of a merchant's key.
        ---
        summary: Receive a payment provider's webhook (its signature, no key)
        description: >-
          Verified by the `Stripe-Signature` header (`t=<unix seconds>,v1=<hex
          HMAC-SHA256 of "<t>.<raw body>">`, at most 300 s old; several `v1=` while the
          secret rotates). The payment is found by the PaymentIntent's id and its
          `metadata.merchant_id`. The types that move a payment:
          `payment_intent.amount_capturable_updated` (authorized: the order goes to the
          kitchen), `payment_intent.payment_failed` (declined: the order is cancelled),
          `payment_intent.succeeded` (captured), `payment_intent.canceled` (voided) and
          `charge.refunded`. A payment only moves forward: an event that arrives late
          changes nothing. An event id already applied, another type, or a payment
          Kitchen does not know are answered 200 all the same, and change nothing.
          Answered once the change is committed.
        security: []
        parameters:
          - name: Stripe-Signature
            in: header
            required: true
            schema: {type: string}
            description: "t=<unix seconds>,v1=<hex signature>[,v1=...]"
        requestBody:
          required: true
          content:
            application/json:
              schema:
                type: object
                required: [id, type, data]
                properties:
                  id: {type: string, description: "the event's id (evt_...)"}
                  type: {type: string}
                  data:
                    type: object
                    required: [object]
                    properties:
                      object:
                        type: object
                        description: the PaymentIntent (a Charge for charge.refunded)
        responses:
          "200":
            description: Received (applied, or nothing to change).
            content:
              application/json:
                schema:
                  type: object
                  required: [received]
                  properties: {received: {const: true}}
          "400": {$ref: "#/components/responses/BadRequest"}
          "413": {$ref: "#/components/responses/TooLarge"}
        """
        raw = await self._body(request)
        signature = request.headers.get("stripe-signature")
        try:
            delivery = await self._run(self.webhooks.deliver, raw, signature)
        except BadSignature as exc:
            raise Problem(400, "Bad webhook", f"the webhook is refused: {exc}") from None
        if delivery.moved:
            self.on_commit()  # events went to the outbox: wake the relay
        return JSONResponse({"received": True})

    def fake_card(self, action: str) -> Callable[[Request], Awaitable[Response]]:
        """POST /payments/fake/{payment_id}/authorize and /decline (development only)."""

        async def endpoint(request: Request) -> Response:
            intent_id = request.path_params["payment_id"]
            fake = self.settings.payments.provider == "fake"
            if (
                self.settings.app.production
                or not fake
                or not isinstance(self.provider, FakeProvider)
            ):
                detail = 'the fake card is for development with [payments] provider = "fake"'
                raise Problem(404, "Not found", detail)
            merchant_id = await self.merchant_of(request)
            card = webhooks.FakeCard(self.provider, self.webhooks)
            delivery, view = await self._run(card.use, merchant_id, intent_id, action)
            if delivery.moved:
                self.on_commit()
            return JSONResponse(view)

        what = "authorizes" if action == "authorize" else "declines"
        endpoint.__doc__ = f"""The fake provider's card {what} the payment.
        ---
        summary: The fake card {what} a payment (development only)
        description: >-
          Development, with the fake provider, only (404 otherwise). `payment_id` is the
          payment's `id` as the order shows it (pi_fake_...). The fake provider sends
          Kitchen the signed webhook Stripe would send, through the same verification as
          POST /payments/webhook; the answer is the order after it.
        responses:
          "200": {{$ref: "#/components/responses/Order"}}
          "404": {{$ref: "#/components/responses/NotFound"}}
          "409": {{$ref: "#/components/responses/Conflict"}}
        """
        return endpoint

    # -- operations ----------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        """Liveness: the process answers.
        ---
        summary: Liveness (no key needed)
        security: []
        responses:
          "200":
            description: The process answers.
            content: {application/json: {schema: {$ref: "#/components/schemas/Health"}}}
        """
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        """Readiness: the database answers and every role is working (its thread alive,
        and not failing the same work again and again).
        ---
        summary: Readiness (no key needed)
        security: []
        responses:
          "200":
            description: The database answers and every role of this process works.
            content: {application/json: {schema: {$ref: "#/components/schemas/Readiness"}}}
          "503":
            description: >-
              A role is not working (`roles` says which; then the body is JSON), or the
              database does not answer (a problem document).
            content:
              application/json: {schema: {$ref: "#/components/schemas/Readiness"}}
              application/problem+json: {schema: {$ref: "#/components/schemas/Problem"}}
        """

        def check() -> dict[str, Any]:
            db.ping()
            return self.readiness()

        try:
            parts = await run_in_threadpool(check)
        except pw.DatabaseError as exc:
            # The driver's message names the host, port and user: for the log, not for
            # whoever can reach /ready.
            log.warning("not ready: database unavailable: %s", exc)
            raise Problem(503, "Not ready", "database unavailable") from None
        dead = [name for name, ok in parts.items() if not ok]
        status = 503 if dead else 200
        return JSONResponse({"status": "ok" if not dead else "degraded", "roles": parts}, status)

    async def metrics(self, request: Request) -> Response:
        """Prometheus metrics of this process (the README lists them), for the scraper that
        sends the `[metrics] token`. Without a token set, open in development and closed
        (401) in production. No name, key, email address or password in it.
        ---
        summary: Prometheus metrics (the metrics token, not a merchant's key)
        security: [{metrics_token: []}]
        responses:
          "200":
            description: The Prometheus text format.
            content: {text/plain: {schema: {type: string}}}
          "401": {$ref: "#/components/responses/Unauthorized"}
        """
        self.check_metrics_token(request)
        # Scrape-time collectors query the database: off the event loop.
        body = await run_in_threadpool(metrics.exposition, self.settings.metrics.stock_gauges)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    def check_metrics_token(self, request: Request) -> None:
        """Raise a 401 unless `Authorization: Bearer` holds the metrics token (compared in
        constant time). With no token set, development lets everyone in, production no one."""
        token = self.settings.metrics.token
        if not token and not self.settings.app.production:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # Starlette decodes headers as latin-1: bytes back, so any header compares.
        given_bytes = given.strip().encode("latin-1")
        if (
            token
            and scheme.lower() == "bearer"
            and hmac.compare_digest(given_bytes, token.encode())
        ):
            return
        detail = (
            "send Authorization: Bearer <token> with the [metrics] token (KITCHEN_METRICS_TOKEN)"
        )
        raise Problem(401, "Unauthorized", detail, None, UNAUTHORIZED)

    async def openapi(self, request: Request) -> Response:
        """This API's OpenAPI 3.1 document, made from the routes.
        ---
        summary: The OpenAPI document (no key needed)
        security: []
        responses:
          "200":
            description: OpenAPI 3.1, as JSON.
            content: {application/json: {schema: {type: object}}}
        """
        return JSONResponse(openapi.document(request.app.routes, self.settings.orders))


def hold_problem(exc: Exception, cancelled: bool, retry_after: int) -> Problem:
    """The answer when the provider could not make an order's hold: 503 (down: retry
    later) or 402 (refused for good, as Stripe answers a valid request that failed).
    `cancelled`: the request placed the order, and it is cancelled now; otherwise it
    is a retry, and the order still waits for its hold."""
    outcome = "the order is cancelled" if cancelled else "the order waits for its payment"
    if isinstance(exc, ProviderUnavailable):
        detail = f"payment provider unavailable: {exc}; nothing was charged, {outcome}"
        headers = {"Retry-After": str(max(1, retry_after))}
        return Problem(503, "Payment provider unavailable", detail, None, headers)
    detail = f"the payment provider refused the payment: {exc}; nothing was charged, {outcome}"
    return Problem(402, "Payment refused", detail)


def path_id(raw: str) -> int | None:
    """A path segment that names a row: at most 19 digits, so that a long one never reaches
    int() (which refuses over 4300 digits) or the database (64-bit ids)."""
    if not re.fullmatch("[0-9]{1,19}", raw):
        return None
    value = int(raw)
    return value if is_id(value) else None


def is_json(content_type: str | None) -> bool:
    """`application/json`, with parameters or not (`; charset=utf-8`), in any case."""
    return (
        content_type is not None
        and content_type.partition(";")[0].strip().lower() == "application/json"
    )


def known_query(request: Request, *names: str) -> None:
    """422 for a query parameter the endpoint does not take, or one given twice: a
    mistyped filter (`?stauts=rejected`) would otherwise list everything."""
    params = request.query_params
    errors = [
        FieldError(name, "is not a known query parameter")
        for name in sorted(set(params.keys()) - set(names))
    ]
    errors += [
        FieldError(name, "is given more than once")
        for name in names
        if len(params.getlist(name)) > 1
    ]
    if errors:
        raise Invalid(errors)


def query_choice(request: Request, name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.query_params.get(name)
    if raw is not None and raw not in choices:
        raise Invalid([FieldError(name, f"must be one of {', '.join(choices)}")])
    return raw


def page(request: Request, default_limit: int, *filters: str) -> tuple[int, int | None]:
    """A list endpoint's `limit` (1 to views.MAX_PAGE, else `default_limit`) and `before`
    (an id: only older rows), after refusing any query parameter but those and `filters`."""
    known_query(request, "limit", "before", *filters)
    limit = query_int(request, "limit", default_limit, 1, views.MAX_PAGE)
    return limit, query_int(request, "before", None, 1, MAX_ID)


def query_int(request: Request, name: str, default: int | None, low: int, high: int) -> Any:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not re.fullmatch("[0-9]{1,19}", raw) or not low <= int(raw) <= high:
        field = FieldError(name, f"must be a whole number from {low} to {high}")
        raise Invalid([field])
    return int(raw)


def answer(status: int, title: str) -> Callable[[Request, Exception], Awaitable[Response]]:
    """The exception handler that answers a use-case error with `status`: a problem
    document titled `title` (NotFound's `{what}`: what was not found), the error's message
    as its detail, and Invalid's field errors."""

    async def handler(request: Request, exc: Exception) -> Response:
        what = exc.what.capitalize() if isinstance(exc, NotFound) else ""
        errors = exc.errors if isinstance(exc, Invalid) else None
        return problem_response(Problem(status, title.format(what=what), str(exc), errors))

    return handler


def build_app(api: Api) -> Starlette:
    routes = [
        Route("/", api.page, methods=["GET"]),
        Route("/dashboard", api.dashboard, methods=["GET"]),
        Mount("/static", StaticFiles(directory=dashboard.STATIC), name="static"),
        Route("/order", api.create_order, methods=["POST"]),
        Route("/order/seed", api.seed, methods=["POST"]),
        Route("/order/{id}", api.get_order, methods=["GET"]),
        Route("/orders", api.recent_orders, methods=["GET"]),
        Route("/order/{id}/cancel", api.cancel_order, methods=["POST"]),
        Route("/order/{id}/refund", api.refund_order, methods=["POST"]),
        Route("/alerts", api.alerts, methods=["GET"]),
        Route("/merchant", api.get_merchant, methods=["GET"]),
        Route("/merchant", api.patch_merchant, methods=["PATCH"]),
        Route("/ingredients", api.ingredients, methods=["GET"]),
        Route("/ingredients", api.create_ingredient, methods=["POST"]),
        Route("/ingredients/{id}", api.get_ingredient, methods=["GET"]),
        Route("/ingredients/{id}", api.patch_ingredient, methods=["PATCH"]),
        Route("/ingredients/{id}/restock", api.stock_move(LedgerEntry.RESTOCK), methods=["POST"]),
        Route("/ingredients/{id}/count", api.stock_move(LedgerEntry.COUNT), methods=["POST"]),
        Route("/ingredients/{id}/waste", api.stock_move(LedgerEntry.WASTE), methods=["POST"]),
        Route("/ingredients/{id}/ledger", api.ledger, methods=["GET"]),
        Route("/reorder", api.reorder, methods=["GET"]),
        Route("/reports/usage", api.usage_report, methods=["GET"]),
        Route("/products", api.products, methods=["GET"]),
        Route("/products", api.create_product, methods=["POST"]),
        Route("/products/{id}", api.get_product, methods=["GET"]),
        Route("/products/{id}", api.patch_product, methods=["PATCH"]),
        Route("/products/{id}", api.delete_product, methods=["DELETE"]),
        # Payments: the provider's webhooks; the fake card (development only).
        Route("/payments/webhook", api.payment_webhook, methods=["POST"]),
        Route(
            "/payments/fake/{payment_id}/authorize", api.fake_card("authorize"), methods=["POST"]
        ),
        Route("/payments/fake/{payment_id}/decline", api.fake_card("decline"), methods=["POST"]),
        *operations_routes(api),
        Route("/openapi.json", api.openapi, methods=["GET"]),
    ]
    return _starlette(routes)


def build_operations_app(api: Api) -> Starlette:
    """The operations server of `[metrics] port`: the api's own /health, /ready and
    /metrics handlers (same token rule, same problem documents), in any process."""
    return _starlette(operations_routes(api))


def operations_routes(api: Api) -> list[Route]:
    """/health, /ready and /metrics: on the API's port, and on the operations port."""
    return [
        Route("/health", api.health, methods=["GET"]),
        Route("/ready", api.ready, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
    ]


def _starlette(routes: Sequence[BaseRoute]) -> Starlette:
    """A Kitchen app: its requests counted, its errors answered as problem documents."""
    return Starlette(
        routes=routes,
        middleware=[Middleware(HttpMetrics)],
        exception_handlers=exception_handlers(),
    )


def exception_handlers() -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    """How errors become answers: RFC 9457 problem documents, never a 500 for a known one."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return problem_response(Problem(exc.status_code, str(exc.detail), str(exc.detail)))

    async def on_disconnect(request: Request, exc: Exception) -> Response:
        # The client went away mid-body (a timeout, a closed tab): nothing was saved and
        # nobody reads an answer. Not an error of Kitchen's: no traceback, no 500.
        log.info(
            "%s %s: the client disconnected before sending its body",
            request.method,
            request.url.path,
        )
        return Response(status_code=400)

    async def on_database(request: Request, exc: Exception) -> Response:
        log.warning("database unavailable: %s", exc)
        detail = "the database is unavailable; nothing was saved, retry later"
        response = problem_response(Problem(503, "Service unavailable", detail))
        response.headers["Retry-After"] = "5"
        return response

    return {
        Problem: on_problem,
        # The use cases' errors (kitchen.errors) carry no HTTP: their status and title
        # are here, and only here. A subclass is looked up before its base.
        MalformedBody: answer(400, "Malformed JSON"),
        InvalidOrder: answer(422, "Invalid order"),
        Invalid: answer(422, "Invalid request"),
        KeyReused: answer(422, "Idempotency-Key reused"),
        NotFound: answer(404, "{what} not found"),
        Conflict: answer(409, "Conflict"),
        HTTPException: on_http,
        ClientDisconnect: on_disconnect,
        pw.OperationalError: on_database,
        pw.InterfaceError: on_database,
    }


class HttpMetrics:
    """ASGI middleware: count each request by method, route template and status, and
    time it until its last byte. The template (`/order/{id}`) comes from the route that
    matched, so raw paths (ids, probes of random URLs) never become label values."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an error the app did not answer

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # The router records the route it matched in the scope (also for a 405).
            route = getattr(scope.get("route"), "path", None) or metrics.UNMATCHED
            metrics.http_request(scope["method"], route, status, time.perf_counter() - started)
