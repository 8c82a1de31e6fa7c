"""API fixtures: settings on the test Redis and SQS, an API keys file, a running API server.

api_settings  function  Settings for the API and a worker: the `queues` pair, behind an
                        `SqsGateway` (tests can make SendMessageBatch fail), Redis `t:`
gateway       function  that SqsGateway
api           function  `Api`: the app on a free port (aiohttp TestServer), with `client`
                        (an aiohttp.ClientSession carrying the key) and `url`
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from dispatcher.api.app import build_app
from dispatcher.api.auth import hash_key, load_keys
from dispatcher.config import Settings, parse
from tests.api.sqs_gateway import SqsGateway
from tests.conftest import QueuePair

KEY = "test-key-0123456789"
OTHER_KEY = "other-key-0123456789"


@dataclass
class Api:
    url: str
    client: aiohttp.ClientSession  # sends `Authorization: Bearer KEY`
    settings: Settings


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-keys"
    path.write_text(f"# test keys\nops:{hash_key(KEY)}\n{hash_key(OTHER_KEY)}\n")
    return path


@pytest.fixture
async def gateway(sqs_endpoint: str) -> AsyncIterator[SqsGateway]:
    async with SqsGateway(sqs_endpoint) as gw:
        yield gw


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


@pytest.fixture
def api_settings(
    request: pytest.FixtureRequest,
    queues: QueuePair,
    gateway: SqsGateway,
    redis_url: str,
    keys_file: Path,
) -> Settings:
    overrides: dict[str, Any] = getattr(request, "param", {})
    return api_config(queues, gateway.endpoint_url, redis_url, keys_file, **overrides)


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Api]:
    assert settings.api.api_keys_file
    app = build_app(settings, load_keys(settings.api.api_keys_file))
    async with TestServer(app, host="127.0.0.1") as server:
        url = str(server.make_url("")).rstrip("/")
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as client:
            yield Api(url, client, settings)


@pytest.fixture
async def api(api_settings: Settings) -> AsyncIterator[Api]:
    async with serve(api_settings) as running:
        yield running
