"""An HTTP gateway in front of a real SQS endpoint (moto or fauxqs) that a test can make fail.

The API's SQS client points at the gateway; every request is forwarded as it is, except
`SendMessageBatch` calls while a fault is set:

    fail_marker = b"..."   entries whose body contains it are not forwarded: they come back in
                           the reply's `Failed` list (InternalError), the others are sent
    hold                   an asyncio.Event: SendMessageBatch calls wait until it is set
"""

from __future__ import annotations

import asyncio
from typing import Any, Self

import aiohttp
import orjson
from aiohttp import web

from dispatcher.dev.stack import free_port

_HOP = {"host", "content-length", "transfer-encoding", "connection"}


class SqsGateway:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.fail_marker: bytes | None = None
        self.hold: asyncio.Event | None = None
        self.failed_entries = 0
        self.batch_calls = 0
        self.waiting = 0  # SendMessageBatch calls held now
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        self._http = aiohttp.ClientSession()
        app = web.Application(client_max_size=1 << 24)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        target = request.headers.get("X-Amz-Target", "")
        failed: list[dict[str, Any]] = []
        if target.endswith(".SendMessageBatch"):
            self.batch_calls += 1
            if self.hold is not None:
                self.waiting += 1
                await self.hold.wait()
                self.waiting -= 1
            body, failed = self._split(body)
        status, headers, reply = await self._upstream(request, body)
        if failed and status == 200:
            doc = orjson.loads(reply) if reply else {}
            doc["Failed"] = [*doc.get("Failed", []), *failed]
            reply = orjson.dumps(doc)
        return web.Response(status=status, body=reply, headers=headers)

    def _split(self, body: bytes) -> tuple[bytes, list[dict[str, Any]]]:
        if self.fail_marker is None:
            return body, []
        doc = orjson.loads(body)
        keep, failed = [], []
        for entry in doc["Entries"]:
            if self.fail_marker in entry["MessageBody"].encode():
                failed.append({"Id": entry["Id"], "SenderFault": False, "Code": "InternalError"})
            else:
                keep.append(entry)
        self.failed_entries += len(failed)
        doc["Entries"] = keep  # when empty, `_upstream` answers for SQS (which refuses it)
        return orjson.dumps(doc), failed

    async def _upstream(self, request: web.Request, body: bytes) -> tuple[int, Any, bytes]:
        assert self._http is not None
        doc = orjson.loads(body) if body and request.headers.get("X-Amz-Target") else None
        if doc is not None and "Entries" in doc and not doc["Entries"]:
            return 200, {"Content-Type": "application/x-amz-json-1.0"}, b'{"Successful":[]}'
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with self._http.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as reply:
            content = await reply.read()
            out = {k: v for k, v in reply.headers.items() if k.lower() not in _HOP}
            return reply.status, out, content
