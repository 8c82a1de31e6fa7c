"""The worker's health and metrics port (`[metrics] host, port`; off when the port is 0).

GET /healthz   200 while the process serves (liveness)
GET /readyz    200 when Redis and SQS answer and the worker has not been shedding (no
               provider able to take work) for SHED_UNREADY_SECONDS; else 503, with why
GET /metrics   the per-process registry (`dispatcher.ops.metrics`)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from dispatcher.config import ConfigError, MetricsSettings
from dispatcher.worker import Worker

CHECK_SECONDS = 2.0  # each dependency must answer within this
SHED_UNREADY_SECONDS = 600.0  # shedding this long: not ready (every provider is out)
WORKER = web.AppKey("worker", Worker)


def probe_app(worker: Worker, registry: CollectorRegistry) -> web.Application:
    app = web.Application()
    app[WORKER] = worker
    app.router.add_get("/healthz", healthz, allow_head=False)
    app.router.add_get("/readyz", readyz, allow_head=False)
    app.router.add_get("/metrics", make_aiohttp_handler(registry), allow_head=False)
    return app


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    worker = request.app[WORKER]
    checks = {
        "redis": await _answers(worker.ledger.ping()),
        "sqs": await _answers(worker.queue.depth()),
    }
    since = worker.stats.shed_since
    shedding = 0.0 if since is None else time.monotonic() - since
    checks["shedding"] = "ok" if shedding < SHED_UNREADY_SECONDS else f"for {shedding:.0f} s"
    ready = all(value == "ok" for value in checks.values())
    return web.json_response(checks, status=200 if ready else 503)


async def _answers(call: Awaitable[object]) -> str:
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            await call
    except Exception as exc:  # any failure is the answer; the name says which
        return type(exc).__name__
    return "ok"


@contextlib.asynccontextmanager
async def serving_probes(
    settings: MetricsSettings, worker: Worker, registry: CollectorRegistry
) -> AsyncIterator[str | None]:
    """Serve the probe port while the block runs; yields its URL (None when turned off)."""
    if settings.port == 0:
        yield None
        return
    runner = web.AppRunner(probe_app(worker, registry), access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, settings.host, settings.port).start()
        except OSError as exc:
            where = f"{settings.host}:{settings.port}"
            raise ConfigError("metrics.port", f"cannot listen on {where}: {exc.strerror}") from None
        yield f"http://{settings.host}:{settings.port}"
    finally:
        await runner.cleanup()
