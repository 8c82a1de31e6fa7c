"""The demo's front door: the intake API served in the demo's process, a CSV campaign and a
few single sends through it, and a batch's counts read back from `GET /v1/batches/{id}`."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from dispatcher.api.app import build_app
from dispatcher.api.auth import ApiKey, hash_key
from dispatcher.config import Settings
from dispatcher.dev.stack import free_port


@dataclass
class FrontDoor:
    """A client of the running API, with its key."""

    http: aiohttp.ClientSession
    url: str

    async def upload_campaign(self, csv_path: Path, batch_id: str) -> dict[str, Any]:
        with csv_path.open("rb") as file:  # streamed from disk by aiohttp
            form = aiohttp.FormData()
            form.add_field("from", "Shop <shop@example.com>")
            form.add_field("subject", "Spring sale, {{name}}")
            form.add_field("text", "Hi {{name}}, 20% off at {{store}} this week.")
            form.add_field("html", "<p>Hi {{name}}, <b>20% off</b> at {{store}} this week.</p>")
            form.add_field("batch_id", batch_id)
            form.add_field("file", file, filename=csv_path.name, content_type="text/csv")
            return await self._json("POST", "/v1/campaigns", 202, data=form)

    async def send(self, recipients: int, batch_id: str) -> list[str]:
        doc = {
            "from": {"email": "shop@example.com", "name": "Shop"},
            "to": [{"email": f"vip{n}@example.org"} for n in range(recipients)],
            "subject": "Your receipt",
            "text": "Thanks for your order.",
            "batch_id": batch_id,
        }
        reply = await self._json("POST", "/v1/emails", 202, json=doc)
        return [m["id"] for m in reply["messages"]]

    async def batch(self, batch_id: str) -> dict[str, Any]:
        return await self._json("GET", f"/v1/batches/{batch_id}?limit=1", 200)

    async def _json(self, method: str, path: str, expect: int, **kw: Any) -> dict[str, Any]:
        async with self.http.request(method, f"{self.url}{path}", **kw) as reply:
            doc: dict[str, Any] = await reply.json()
            if reply.status != expect:
                raise RuntimeError(f"{method} {path}: {reply.status} {doc}")
            return doc


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[FrontDoor]:
    """The API on 127.0.0.1 and a free port, with a key made for this run."""
    key = secrets.token_urlsafe(24)
    app = build_app(settings, (ApiKey("demo", bytes.fromhex(hash_key(key))),))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        headers = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            yield FrontDoor(http, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


def write_campaign(path: Path, rows: int, duplicates: int, bad: int) -> None:
    """A CSV of `rows` customers, then `duplicates` of them again (other case and spacing) and
    `bad` rows without a valid address."""
    stores = ("Camden", "Leeds", "Bath")
    with path.open("w", encoding="utf-8") as out:
        out.write("email,name,store\n")
        for n in range(rows):
            out.write(f"customer{n}@example.org,Customer {n},{stores[n % 3]}\n")
        for n in range(duplicates):
            out.write(f" customer{n}@EXAMPLE.org ,Customer {n},{stores[n % 3]}\n")
        for n in range(bad):
            out.write(f"nobody-{n},Nobody {n},Bath\n")
