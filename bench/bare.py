"""The ceiling for intake: a bare Starlette endpoint that parses the same body as
POST /order and answers a canned 201, with nothing behind it. Served the same way as
Kitchen (uvicorn, one process), so the ratio between the two is what Kitchen's own work
costs."""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def order(request: Request) -> Response:
    body = json.loads(await request.body())
    lines = body["products"]
    return JSONResponse({"id": 1, "status": "pending", "lines": lines}, status_code=201)


app = Starlette(routes=[Route("/order", order, methods=["POST"])])
