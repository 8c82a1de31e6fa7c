"""The intake API under test: its settings, a served app (`Api`), and request helpers."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from dispatcher.api.app import build_app
from dispatcher.api.auth import load_keys
from dispatcher.config import Settings, parse
from dispatcher.config_feedback import WebhookSettings
from dispatcher.dev.fakes import FakeMailgun, FakeSendGrid
from dispatcher.dev.stack import QueuePair

KEY = "test-key-0123456789"


OTHER_KEY = "other-key-0123456789"


@dataclass
class Api:
    url: str
    client: aiohttp.ClientSession  # sends `Authorization: Bearer KEY`
    settings: Settings


def api_config(
    queues: QueuePair, endpoint: str, redis_url: str, keys_file: Path, **api: Any
) -> Settings:
    return parse(
        {
            "queue": {
                "url": queues.url,
                "endpoint_url": endpoint,
                "dead_letter_url": queues.dlq_url,
                "wait_time_seconds": 1,
                "visibility_timeout": 30,
            },
            "redis": {"url": redis_url, "key_prefix": "t:"},
            "dispatch": {
                "pollers": 2,
                "drain_seconds": 5,
                "journal_path": str(keys_file.parent / "journal.jsonl"),
            },
            "routing": {"strategy": "priority"},
            "providers": [{"name": "sim", "type": "simulated", "latency_ms": 1}],
            "api": {"api_keys_file": str(keys_file), **api},
        }
    )


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Api]:
    assert settings.api.api_keys_file
    app = build_app(settings, load_keys(settings.api.api_keys_file))
    async with TestServer(app, host="127.0.0.1") as server:
        url = str(server.make_url("")).rstrip("/")
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as client:
            yield Api(url, client, settings)


def body(recipients: int = 3, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "from": {"email": "shop@example.com", "name": "Shop"},
        "to": [{"email": f"user{n}@example.org", "name": f"User {n}"} for n in range(recipients)],
        "subject": "Your receipt",
        "text": "Thanks!",
        "html": "<p>Thanks!</p>",
        "tags": {"kind": "receipt"},
        "headers": {"X-Order": "42"},
    }
    doc.update(overrides)
    return doc


async def send(api: Api, recipients: int, batch_id: str) -> list[str]:
    async with api.client.post(
        f"{api.url}/v1/emails", json=body(recipients, batch_id=batch_id)
    ) as reply:
        assert reply.status == 202
        return [m["id"] for m in (await reply.json())["messages"]]


async def upload(api: Api, csv_text: str | bytes, **fields: str) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData()
    defaults = {
        "from": "Shop <shop@example.com>",
        "subject": "Hello {{name}}",
        "text": "Hi {{ NAME }}, from {{company}}",
        "html": "<p>Hi {{name}} of {{company}}</p>",
    }
    for key, value in {**defaults, **fields}.items():
        if value:
            form.add_field(key, value)
    raw = csv_text.encode() if isinstance(csv_text, str) else csv_text
    form.add_field("file", io.BytesIO(raw), filename="list.csv", content_type="text/csv")
    async with api.client.post(f"{api.url}/v1/campaigns", data=form) as reply:
        return reply.status, await reply.json()


def with_webhooks(config: Settings, **webhooks: Any) -> Settings:
    return dataclasses.replace(config, webhooks=WebhookSettings(**webhooks))


def sns_trust() -> dict[str, Any]:
    """The fake SNS publisher's local host, allowed over http (tests only)."""
    return {"ses_enabled": True, "sns_host_pattern": r"127\.0\.0\.1", "sns_insecure_http": True}


@contextlib.asynccontextmanager
async def feedback_api(
    queues: QueuePair,
    endpoint: str,
    redis_url: str,
    keys_file: Path,
    sg: FakeSendGrid,
    mg: FakeMailgun,
) -> AsyncIterator[Api]:
    config = with_webhooks(
        api_config(queues, endpoint, redis_url, keys_file),
        sendgrid_public_key=sg.webhook_public_key,
        mailgun_signing_key=mg.signing_key,
        **sns_trust(),
    )
    async with serve(config) as api:
        yield api
