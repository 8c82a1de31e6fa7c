"""`/healthz` (the process answers) and `/readyz` (Redis and SQS answer too)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from dispatcher.api.errors import json_response
from dispatcher.api.services import SERVICES

READY_TIMEOUT = 2.0


async def healthz(request: web.Request) -> web.Response:
    return json_response(200, {"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    checks: dict[str, str] = {}
    for name, probe in (("redis", services.redis.ping()), ("sqs", services.queue.depth())):
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await probe
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready; the name says which
            checks[name] = type(exc).__name__
    ready = all(v == "ok" for v in checks.values())
    return json_response(200 if ready else 503, {"ready": ready, "checks": checks})
