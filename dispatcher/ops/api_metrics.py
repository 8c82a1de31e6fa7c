"""The intake API's Prometheus metrics: requests and their latency by route and status, in a
registry of the application's own, served at `/metrics` (no authentication, like /healthz).

    dispatcher_api_requests_total{route,method,status}
    dispatcher_api_request_seconds{route,method}      histogram

`route` is the route's pattern (`/v1/emails/{id}`), never the path a client sent, so the
label set stays bounded; a request no route matched counts as `unmatched`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.aiohttp import make_aiohttp_handler

BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class ApiMetrics:
    registry: CollectorRegistry
    requests: Counter
    seconds: Histogram

    @classmethod
    def create(cls) -> ApiMetrics:
        registry = CollectorRegistry(auto_describe=True)
        requests = Counter(
            "dispatcher_api_requests",
            "API requests by route and status",
            ["route", "method", "status"],
            registry=registry,
        )
        seconds = Histogram(
            "dispatcher_api_request_seconds",
            "API request latency by route",
            ["route", "method"],
            buckets=BOUNDS,
            registry=registry,
        )
        return cls(registry, requests, seconds)

    def middleware(self) -> Middleware:
        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            started, status = time.perf_counter(), 500
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as exc:
                status = exc.status
                raise
            finally:
                route = _route(request)
                self.requests.labels(route, request.method, str(status)).inc()
                self.seconds.labels(route, request.method).observe(time.perf_counter() - started)

        return count

    def add_route(self, app: web.Application) -> None:
        app.router.add_get("/metrics", make_aiohttp_handler(self.registry), allow_head=False)


def _route(request: web.Request) -> str:
    info = request.match_info
    if info.http_exception is not None:
        return "unmatched"
    return info.route.resource.canonical if info.route.resource else "unmatched"
