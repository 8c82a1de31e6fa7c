"""Errors as JSON: `ApiError` for the handlers, and the middleware that answers every error,
aiohttp's own (404, 405, 413, ...) included, as `{"error": ..., "errors": [{field, error}]}`.

    Exception
     +-- ApiError               an answer with a status: 400, 401, 404, 409, 413, 415, 422, 503
     |    +-- InvalidRequest    400 with every problem found, as {field, error}
     +-- web.HTTPException      aiohttp's: re-rendered as JSON
     +-- RedisError, OSError    503: the ledger or SQS cannot be reached
     +-- anything else          500, logged with its traceback
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import orjson
import structlog
from aiohttp import web
from pydantic import ValidationError
from redis.exceptions import RedisError

log = structlog.get_logger("dispatcher.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        error: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class InvalidRequest(ApiError):
    def __init__(self, errors: Iterable[tuple[str, str]]) -> None:
        self.errors = [{"field": f, "error": e} for f, e in errors]
        super().__init__(400, "invalid request", extra={"errors": self.errors})


def field_errors(exc: ValidationError, root: str = "") -> list[tuple[str, str]]:
    """pydantic's errors as (field, error): `to[3].email`, `headers.X-Bad`."""
    found = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        found.append((_field(err["loc"], root), _message(err["msg"], err["type"])))
    return found


def _field(loc: Iterable[int | str], root: str) -> str:
    text = root
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "body"


def _message(msg: str, kind: str) -> str:
    if kind == "extra_forbidden":
        return "unknown field"
    return msg.removeprefix("Value error, ")


def json_response(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type="application/json",
        headers=headers,
    )


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return json_response(exc.status, {"error": exc.error, **exc.extra}, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return json_response(exc.status, {"error": exc.reason.lower()}, headers)
    except (RedisError, OSError) as exc:  # the ledger (or SQS) cannot be reached
        log.warning("dependency_unavailable", error=type(exc).__name__)
        return json_response(503, {"error": "a dependency is unavailable"}, {"Retry-After": "5"})
    except Exception:
        log.exception("unhandled_error")
        return json_response(500, {"error": "internal error"})
