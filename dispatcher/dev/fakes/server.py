"""`FakeServer`, the base that runs one fake provider, and `control`, its remote control.

A fake is an `aiohttp.web` app on 127.0.0.1 (a free port unless told) that records every
message it accepts as a `Receipt` and follows the fault rules of `dispatcher.dev.fakes.faults`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, ClassVar, Self

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware

from dispatcher.dev.fakes.faults import RATE_LIMIT, Faults, Receipt, ThrottleStyle
from dispatcher.dev.fakes.webhooks import Emitter, WebhookPlan

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeServer:
    """Run with `async with Fake() as fake:`; `fake.base_url` is where to point a provider."""

    kind: ClassVar[str] = "fake"
    throttle_style: ClassVar[ThrottleStyle] = "ratelimit"
    max_body: ClassVar[int] = 30 * 1024 * 1024

    def __init__(
        self, *, api_key: str = "test-key", host: str = "127.0.0.1", port: int = 0, seed: int = 0
    ) -> None:
        self.api_key = api_key
        self.faults = Faults(seed)
        self.receipts: list[Receipt] = []
        self.answered: Counter[int] = Counter()  # provider requests by the status answered
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Event()
        self.webhooks: Emitter | None = None

    def emit_webhooks(
        self, url: str, bounce_rate: float = 0.0, complaint_rate: float = 0.0, seed: int = 0
    ) -> None:
        """After each accepted message, post one signed event about it to `url`
        (`dispatcher.dev.fakes.webhooks`)."""
        self.webhooks = Emitter(
            WebhookPlan(url, bounce_rate, complaint_rate, seed), self.webhook_request
        )

    def webhook_request(self, receipt: Receipt, outcome: str) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the webhook saying `outcome` of `receipt`."""
        raise RuntimeError(f"{type(self).__name__} emits no webhooks")

    def routes(self) -> list[web.RouteDef]:
        raise RuntimeError(f"{type(self).__name__} must define its provider routes")

    def error_response(self, status: int, message: str, code: str | None = None) -> web.Response:
        return web.json_response({"message": message}, status=status)

    @property
    def base_url(self) -> str:
        if self._runner is None:
            raise RuntimeError(f"{self.kind} fake is not running")
        return f"http://{self._host}:{self._port}"

    def by_dispatcher_id(self, dispatcher_id: str) -> list[Receipt]:
        return [r for r in self.receipts if r.dispatcher_id == dispatcher_id]

    def record(self, provider_id: str, payload: Any, dispatcher_id: str | None) -> Receipt:
        receipt = Receipt(provider_id, dispatcher_id, payload, time.time(), time.monotonic())
        self.receipts.append(receipt)
        self._arrived.set()
        if self.webhooks is not None:
            self.webhooks.emit(receipt)
        return receipt

    async def wait_for(self, count: int = 1) -> list[Receipt]:
        """Wait until `count` messages have been accepted (bound it with `asyncio.timeout`)."""
        while len(self.receipts) < count:
            self._arrived.clear()
            await self._arrived.wait()
        return self.receipts[:count]

    def make_app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._middleware()], client_max_size=self.max_body + 1024 * 1024
        )
        app.add_routes(self.routes())
        app.add_routes(
            [
                web.post("/_control", self._control),
                web.get("/_control/receipts", self._receipts),
                web.get("/_control/stats", self._stats),
            ]
        )
        return app

    async def start(self) -> Self:
        self.faults.closing = False
        runner = web.AppRunner(self.make_app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self._host, self._port).start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        return self

    async def close(self) -> None:
        if self.webhooks is not None:
            await self.webhooks.close()
        if self._runner is not None:
            self.faults.closing = True
            self.faults.release()
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _middleware(self) -> Middleware:
        @web.middleware
        async def faulted(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path.startswith("/_control"):
                return await handler(request)
            response = await self._faulted(request, handler)
            self.answered[response.status] += 1
            return response

        return faulted

    async def _faulted(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.faults.latency_ms:
            self.faults.injected["latency"] += 1
            await asyncio.sleep(self.faults.latency_ms / 1000)
        rule = self.faults.take()
        if rule is None:
            return await handler(request)
        await request.read()  # the request is written whole before any fault
        if rule.kind == "hang":
            await self.faults.hold()
            return self._dropped(request) if self.faults.closing else await handler(request)
        if rule.kind == "abort":
            return self._dropped(request)
        if rule.kind == "reset":
            await handler(request)  # accepted and recorded; the answer never arrives
            return self._dropped(request)
        if rule.kind == "throttle":
            response = self.error_response(429, rule.message or "too many requests", rule.code)
            response.headers.update(self._throttle_headers(rule.reset_in))
            return response
        return self.error_response(
            rule.status, rule.message or f"injected {rule.status}", rule.code
        )

    def _throttle_headers(self, reset_in: float) -> dict[str, str]:
        if self.throttle_style == "ratelimit":
            return {
                "X-RateLimit-Limit": str(RATE_LIMIT),
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(math.ceil(time.time() + reset_in)),
            }
        if self.throttle_style == "retry-after":
            return {"Retry-After": str(math.ceil(reset_in))}
        return {}

    @staticmethod
    def _dropped(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=599)  # never written: the connection is gone

    async def _control(self, request: web.Request) -> web.Response:
        try:
            doc = await request.json()
            self.faults.apply(str(doc.pop("op")), doc)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def _receipts(self, request: web.Request) -> web.Response:
        offset = int(request.query.get("offset", "0"))
        found = [asdict(r) for r in self.receipts[offset:]]
        return web.json_response({"receipts": found, "next": offset + len(found)})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "kind": self.kind,
                "received": len(self.receipts),
                "answered": {str(k): v for k, v in self.answered.items()},
                "injected": dict(self.faults.injected),
            }
        )


async def control(http: aiohttp.ClientSession, base_url: str, op: str, **args: Any) -> None:
    """Drive a fake in another process: `await control(http, url, "fail", status=503)`."""
    async with http.post(f"{base_url}/_control", json={"op": op, **args}) as response:
        if response.status != 200:
            raise ValueError(f"{op}: {await response.text()}")
