"""API role: the Starlette app. The whole HTTP surface is the `routes` list below.

Endpoints are thin: they validate (`validation`), call the use case (`orders`,
`catalogue`, `views`) and shape the answer. What they need comes through `Api`'s
constructor; the database is reached through the one documented handle in `kitchen.db`.
Database work runs in Starlette's thread pool (`run_in_threadpool`): peewee and psycopg2
block, and inside the event loop they would serialise every request.
Errors are RFC 9457 problem details (`application/problem+json`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import peewee as pw
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kitchen import catalogue, db, orders, views
from kitchen.domain import is_id
from kitchen.settings import Settings
from kitchen.validation import FieldError, InvalidOrder, MalformedBody, decode_body, parse_order

log = logging.getLogger(__name__)

# An oversized body is still read (and dropped) up to this size before the 413 goes out.
# Answering at once and closing while the client is still sending (uvicorn closes after
# the answer when the request said `Connection: close`, as proxies like nginx do) resets
# the connection, and the client sees a reset instead of the 413. Past this size the
# answer goes out at once: reading on would let one client tie up the connection.
DRAIN_BYTES = 8 * 1024 * 1024


class Problem(Exception):
    def __init__(
        self, status: int, title: str, detail: str, errors: list[FieldError] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors = status, title, detail, errors


def problem_response(p: Problem) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": p.title,
        "status": p.status,
        "detail": p.detail,
    }
    if p.errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in p.errors]
    return JSONResponse(body, status_code=p.status, media_type="application/problem+json")


def invalid(exc: InvalidOrder) -> Problem:
    if isinstance(exc, MalformedBody):
        return Problem(400, "Malformed JSON", str(exc), exc.errors)
    return Problem(422, "Invalid order", str(exc), exc.errors)


class Api:
    """Endpoints, given what they need by the constructor (no globals)."""

    def __init__(
        self,
        settings: Settings,
        merchant_id: int,
        on_commit: Callable[[], None] = lambda: None,
        readiness: Callable[[], dict[str, Any]] = lambda: {},
    ) -> None:
        self.settings = settings
        self.merchant_id = merchant_id
        self.on_commit = on_commit
        self.readiness = readiness

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

    async def create_order(self, request: Request) -> Response:
        key = request.headers.get("idempotency-key")
        if key is not None and not 1 <= len(key) <= 255:
            field = FieldError("Idempotency-Key", "must be 1 to 255 characters")
            raise Problem(422, "Invalid Idempotency-Key", str(field), [field])
        body = await self._body(request)
        try:
            lines = parse_order(
                decode_body(body),
                self.settings.orders.max_lines,
                self.settings.orders.max_quantity,
            )
            order, created = await run_in_threadpool(
                orders.place_order,
                self.merchant_id,
                lines,
                self.settings.kafka.order_created_topic,
                key,
            )
        except InvalidOrder as exc:
            raise invalid(exc) from None
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
        raw = request.path_params["id"]
        order_id = path_id(raw)
        view = None
        if order_id is not None:
            view = await run_in_threadpool(views.order_by_id, order_id, self.merchant_id)
        if view is None:
            raise Problem(404, "Order not found", f"there is no order {raw}")
        return JSONResponse(view)

    async def seed(self, request: Request) -> Response:
        created, view = await run_in_threadpool(catalogue.seed, self.merchant_id)
        return JSONResponse(view, status_code=201 if created else 200)

    async def ingredients(self, request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(views.ingredients, self.merchant_id))

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


def build_app(api: Api) -> Starlette:
    routes = [
        Route("/order", api.create_order, methods=["POST"]),
        Route("/order/seed", api.seed, methods=["POST"]),
        Route("/order/{id}", api.get_order, methods=["GET"]),
        Route("/ingredients", api.ingredients, methods=["GET"]),
        Route("/health", api.health, methods=["GET"]),
        Route("/ready", api.ready, methods=["GET"]),
    ]

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc)

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
            HTTPException: on_http,
            pw.OperationalError: on_database,
            pw.InterfaceError: on_database,
        },
    )
