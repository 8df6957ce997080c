"""API role: the Starlette app. The whole HTTP surface is the `routes` list below.

Endpoints are thin: they find the calling merchant (`merchant_of`), validate, call the
use case (`orders`, `catalogue`, `inventory`, `menu`, `merchants`, `views`) and shape the
answer. What they need comes through `Api`'s constructor; the database is reached
through the one documented handle in `kitchen.db`. Database work runs in Starlette's
thread pool (`run_in_threadpool`): peewee and psycopg2 block, and inside the event loop
they would serialise every request. Errors are RFC 9457 problem details
(`application/problem+json`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import peewee as pw
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kitchen import catalogue, dashboard, db, inventory, menu, merchants, orders, views
from kitchen.db import LedgerEntry
from kitchen.domain import is_id
from kitchen.settings import Settings
from kitchen.validation import (
    Conflict,
    FieldError,
    Invalid,
    NotFound,
    decode_body,
    parse_order,
)

log = logging.getLogger(__name__)

# An oversized body is still read (and dropped) up to this size before the 413 goes out.
# Answering at once and closing while the client is still sending resets the connection,
# and the client sees a reset instead of the 413. Past this size the answer goes out at
# once: reading on would let one client tie up the connection.
DRAIN_BYTES = 8 * 1024 * 1024

P = ParamSpec("P")
T = TypeVar("T")


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
    ) -> None:
        self.settings = settings
        self.default_merchant_id = merchant_id  # who a keyless request is, in development
        self.on_commit = on_commit
        self.readiness = readiness
        self.rules = inventory.AlertRules(
            settings.alerts.threshold_fraction, settings.kafka.notify_topic
        )

    # -- plumbing ------------------------------------------------------------------------

    async def merchant_of(self, request: Request) -> int:
        """The calling merchant: the one whose key is in `Authorization: Bearer <key>`.
        Without a key: the default merchant in development, 401 in production. A wrong
        key is a 401 everywhere."""
        header = request.headers.get("authorization")
        if header is None:
            if self.settings.app.production:
                raise Problem(
                    401, "Unauthorized", "send Authorization: Bearer <key>", None, UNAUTHORIZED
                )
            return self.default_merchant_id
        scheme, _, key = header.partition(" ")
        merchant = None
        if scheme.lower() == "bearer" and key.strip():
            merchant = await run_in_threadpool(merchants.by_key, key.strip())
        if merchant is None:
            raise Problem(401, "Unauthorized", "the API key is not valid", None, UNAUTHORIZED)
        return int(merchant.id)

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
        return decode_body(await self._body(request))

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
        merchant_id = await self.merchant_of(request)
        key = request.headers.get("idempotency-key")
        if key is not None and not 1 <= len(key) <= 255:
            field = FieldError("Idempotency-Key", "must be 1 to 255 characters")
            raise Problem(422, "Invalid Idempotency-Key", str(field), [field])
        lines = parse_order(
            await self._json(request),
            self.settings.orders.max_lines,
            self.settings.orders.max_quantity,
        )
        try:
            order, created = await self._run(
                orders.place_order,
                merchant_id,
                lines,
                self.settings.kafka.order_created_topic,
                key,
            )
        except orders.KeyReused:
            detail = f"Idempotency-Key {key!r} was already used for a different order"
            raise Problem(422, "Idempotency-Key reused", detail) from None
        headers = {"Location": f"/order/{order.id}"}
        if created:
            self.on_commit()
        else:
            headers["Idempotent-Replayed"] = "true"
        # A replay's lines are the first request's: the same key needs the same lines.
        return JSONResponse(views.order(order, lines), status_code=201, headers=headers)

    async def get_order(self, request: Request) -> Response:
        merchant_id = await self.merchant_of(request)
        order_id = self._id(request, "order")
        view = await self._run(views.order_by_id, order_id, merchant_id)
        if view is None:
            raise NotFound("order", order_id)
        return JSONResponse(view)

    async def recent_orders(self, request: Request) -> Response:
        merchant_id = await self.merchant_of(request)
        limit = query_int(request, "limit", 20, 1, 500)
        before = query_int(request, "before", None, 1, 2**63 - 1)
        return JSONResponse(await self._run(views.recent_orders, merchant_id, limit, before))

    async def seed(self, request: Request) -> Response:
        merchant_id = await self.merchant_of(request)
        if self.settings.app.production:
            raise Problem(403, "Forbidden", "the reference kitchen is for development only")
        created, view = await self._run(catalogue.seed, merchant_id)
        return JSONResponse(view, status_code=201 if created else 200)

    # -- the merchant --------------------------------------------------------------------

    async def get_merchant(self, request: Request) -> Response:
        merchant_id = await self.merchant_of(request)
        default = self.rules.default_threshold
        return JSONResponse(await self._run(merchants.get, merchant_id, default))

    async def patch_merchant(self, request: Request) -> Response:
        merchant_id = await self.merchant_of(request)
        data = await self._json(request)
        return JSONResponse(await self._run(merchants.update, merchant_id, data, self.rules))

    # -- ingredients and their stock -----------------------------------------------------

    async def ingredients(self, request: Request) -> Response:
        merchant_id = await self.merchant_of(request)
        default = self.rules.default_threshold
        return JSONResponse(await self._run(inventory.all_of, merchant_id, default))

    async def create_ingredient(self, request: Request) -> Response:
        merchant_id = await self.merchant_of(request)
        data = await self._json(request)
        view = await self._run(inventory.create, merchant_id, data, self.rules)
        return JSONResponse(view, 201, {"Location": f"/ingredients/{view['id']}"})

    async def get_ingredient(self, request: Request) -> Response:
        merchant_id = await self.merchant_of(request)
        ingredient_id = self._id(request, "ingredient")
        default = self.rules.default_threshold
        return JSONResponse(await self._run(inventory.one, merchant_id, ingredient_id, default))

    async def patch_ingredient(self, request: Request) -> Response:
        merchant_id = await self.merchant_of(request)
        ingredient_id = self._id(request, "ingredient")
        data = await self._json(request)
        view = await self._run(inventory.update, merchant_id, ingredient_id, data, self.rules)
        self.on_commit()  # it may have raised an alert
        return JSONResponse(view)

    def stock_move(self, kind: str) -> Callable[[Request], Awaitable[Response]]:
        """POST /ingredients/{id}/restock, /count, /waste."""

        async def endpoint(request: Request) -> Response:
            merchant_id = await self.merchant_of(request)
            ingredient_id = self._id(request, "ingredient")
            data = await self._json(request)
            view = await self._run(
                inventory.move, merchant_id, ingredient_id, kind, data, self.rules
            )
            self.on_commit()  # a count or waste may have raised an alert
            return JSONResponse(view)

        return endpoint

    async def ledger(self, request: Request) -> Response:
        merchant_id = await self.merchant_of(request)
        ingredient_id = self._id(request, "ingredient")
        limit = query_int(request, "limit", 50, 1, 500)
        before = query_int(request, "before", None, 1, 2**63 - 1)
        rows = await self._run(inventory.ledger, merchant_id, ingredient_id, limit, before)
        return JSONResponse(rows)

    # -- alerts and the dashboard ---------------------------------------------------------

    async def alerts(self, request: Request) -> Response:
        merchant_id = await self.merchant_of(request)
        limit = query_int(request, "limit", 20, 1, 500)
        before = query_int(request, "before", None, 1, 2**63 - 1)
        return JSONResponse(await self._run(views.recent_alerts, merchant_id, limit, before))

    async def page(self, request: Request) -> Response:
        """The dashboard page: no data in it, so no key needed (see kitchen.dashboard)."""
        html = dashboard.page(self.settings.app.production)
        return HTMLResponse(html, headers=dashboard.HEADERS)

    async def dashboard(self, request: Request) -> Response:
        merchant_id = await self.merchant_of(request)
        default = self.rules.default_threshold
        view = await self._run(dashboard.data, merchant_id, default)
        return JSONResponse(view, headers={"Cache-Control": "no-store"})

    # -- products ------------------------------------------------------------------------

    async def products(self, request: Request) -> Response:
        merchant_id = await self.merchant_of(request)
        return JSONResponse(await self._run(menu.all_of, merchant_id))

    async def create_product(self, request: Request) -> Response:
        merchant_id = await self.merchant_of(request)
        data = await self._json(request)
        view = await self._run(menu.create, merchant_id, data)
        return JSONResponse(view, 201, {"Location": f"/products/{view['id']}"})

    async def get_product(self, request: Request) -> Response:
        merchant_id = await self.merchant_of(request)
        product_id = self._id(request, "product")
        return JSONResponse(await self._run(menu.one, merchant_id, product_id))

    async def patch_product(self, request: Request) -> Response:
        merchant_id = await self.merchant_of(request)
        product_id = self._id(request, "product")
        data = await self._json(request)
        return JSONResponse(await self._run(menu.update, merchant_id, product_id, data))

    async def delete_product(self, request: Request) -> Response:
        merchant_id = await self.merchant_of(request)
        product_id = self._id(request, "product")
        await self._run(menu.delete, merchant_id, product_id)
        return Response(status_code=204)

    # -- operations ----------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        """Liveness: the process answers."""
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        """Readiness: the database answers and every role is working (its thread alive,
        and not failing the same work again and again)."""

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


def path_id(raw: str) -> int | None:
    """A path segment that names a row: at most 19 digits, so that a long one never reaches
    int() (which refuses over 4300 digits) or the database (64-bit ids)."""
    if not re.fullmatch("[0-9]{1,19}", raw):
        return None
    value = int(raw)
    return value if is_id(value) else None


def query_int(request: Request, name: str, default: int | None, low: int, high: int) -> Any:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not re.fullmatch("[0-9]{1,19}", raw) or not low <= int(raw) <= high:
        field = FieldError(name, f"must be a whole number from {low} to {high}")
        raise Invalid([field])
    return int(raw)


def build_app(api: Api) -> Starlette:
    routes = [
        Route("/", api.page, methods=["GET"]),
        Route("/dashboard", api.dashboard, methods=["GET"]),
        Mount("/static", StaticFiles(directory=dashboard.STATIC), name="static"),
        Route("/order", api.create_order, methods=["POST"]),
        Route("/order/seed", api.seed, methods=["POST"]),
        Route("/order/{id}", api.get_order, methods=["GET"]),
        Route("/orders", api.recent_orders, methods=["GET"]),
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
        Route("/products", api.products, methods=["GET"]),
        Route("/products", api.create_product, methods=["POST"]),
        Route("/products/{id}", api.get_product, methods=["GET"]),
        Route("/products/{id}", api.patch_product, methods=["PATCH"]),
        Route("/products/{id}", api.delete_product, methods=["DELETE"]),
        Route("/health", api.health, methods=["GET"]),
        Route("/ready", api.ready, methods=["GET"]),
    ]

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc)

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Invalid)
        return problem_response(Problem(exc.status, exc.title, str(exc), exc.errors))

    async def on_not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, NotFound)
        return problem_response(Problem(404, f"{exc.what.capitalize()} not found", str(exc)))

    async def on_conflict(request: Request, exc: Exception) -> Response:
        return problem_response(Problem(409, "Conflict", str(exc)))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return problem_response(Problem(exc.status_code, str(exc.detail), str(exc.detail)))

    async def on_database(request: Request, exc: Exception) -> Response:
        log.warning("database unavailable: %s", exc)
        detail = "the database is unavailable; nothing was saved, retry later"
        response = problem_response(Problem(503, "Service unavailable", detail))
        response.headers["Retry-After"] = "5"
        return response

    return Starlette(
        routes=routes,
        exception_handlers={
            Problem: on_problem,
            Invalid: on_invalid,
            NotFound: on_not_found,
            Conflict: on_conflict,
            HTTPException: on_http,
            pw.OperationalError: on_database,
            pw.InterfaceError: on_database,
        },
    )
