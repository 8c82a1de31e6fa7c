"""One canonical JSON log line per request: method, route, status, duration, client (the key's
name), sizes, and what the handler added with `annotate` (counts, batch id, verdicts).

The route is the pattern (`/v1/emails/{id}`), not the path; query strings, bodies, recipient
addresses, subjects and keys are never logged. A message or batch id may be, as ids.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from aiohttp import web

from dispatcher.api.auth import CLIENT
from dispatcher.api.errors import Handler

log = structlog.get_logger("dispatcher.api")
FIELDS = web.RequestKey("log_fields", dict)


def annotate(request: web.Request, **fields: Any) -> None:
    """Add fields to this request's log line."""
    request[FIELDS].update(fields)


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    request[FIELDS] = {}
    request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        log.info(
            "request",
            request_id=request_id,
            method=request.method,
            route=resource.canonical if resource else "unmatched",
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
            client=request.get(CLIENT),
            bytes_in=request.content_length,
            **request[FIELDS],
        )
