"""API fixtures: settings on the test Redis and SQS, an API keys file, a running API server.

api_settings  function  Settings for the API and a worker: the `queues` pair, behind an
                        `SqsGateway` (tests can make SendMessageBatch fail), Redis `t:`
gateway       function  that SqsGateway
api           function  `Api`: the app on a free port (aiohttp TestServer), with `client`
                        (an aiohttp.ClientSession carrying the key) and `url`
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dispatcher.api.auth import hash_key
from dispatcher.config import Settings
from dispatcher.dev.stack import QueuePair
from tests.support.api import KEY, OTHER_KEY, Api, api_config, serve
from tests.support.sqs_gateway import SqsGateway


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-keys"
    path.write_text(f"# test keys\nops:{hash_key(KEY)}\n{hash_key(OTHER_KEY)}\n")
    return path


@pytest.fixture
async def gateway(sqs_endpoint: str) -> AsyncIterator[SqsGateway]:
    async with SqsGateway(sqs_endpoint) as gw:
        yield gw


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


@pytest.fixture
async def api(api_settings: Settings) -> AsyncIterator[Api]:
    async with serve(api_settings) as running:
        yield running
