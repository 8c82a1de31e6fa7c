"""The fixtures that more than one role uses (unit tests use none): a real redis-server,
moto_server (SQS and SES), fauxqs when installed, and the fake providers of dispatcher.dev.fakes.

redis_server  session   `RedisServer` (dispatcher.dev.stack) on a free port, no persistence
redis_url     function  its URL, after FLUSHALL: every test starts from an empty Redis
redis         function  `redis.asyncio.Redis` on redis_url, closed after the test
moto_server   session   one moto_server (SQS + SES, recording on)
moto          function  moto_server, reset, with the AWS test credentials in the environment
fauxqs        session   `Fauxqs` (dispatcher.dev.stack); the test is skipped if not installed
sqs_endpoint  function  the SQS endpoint: moto (reset), or fauxqs with DEVSTACK_TEST_SQS=fauxqs;
                        a test that needs fauxqs's speed asks for it with
                        `@pytest.mark.parametrize("sqs_endpoint", ["fauxqs"], indirect=True)`
sqs           function  an aiobotocore SQS client on sqs_endpoint, closed after the test
queues        function  `QueuePair(url, dlq_url)`: a fresh, uniquely named queue and its DLQ
                        (maxReceiveCount 10, visibility 60 s; change them with
                        `@pytest.mark.parametrize("queues", [{"max_receive_count": 2}],
                        indirect=True)`), deleted after the test
http          function  one aiohttp.ClientSession, closed after the test
fake_sendgrid, fake_mailgun, fake_ses   function  a running fake each, closed after the test

The AWS test credentials (`AWS_CREDENTIALS`) are in the environment for the whole session.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from dispatcher.dev.fakes.mailgun import FakeMailgun
from dispatcher.dev.fakes.moto import MotoServer, aws_env
from dispatcher.dev.fakes.sendgrid import FakeSendGrid
from dispatcher.dev.fakes.ses import FakeSes
from dispatcher.dev.stack import (
    AWS_CREDENTIALS,
    Fauxqs,
    QueuePair,
    RedisServer,
    create_queue_pair,
    sqs_client,
)

SQS_BACKEND_ENV = "DEVSTACK_TEST_SQS"  # "moto" (default) or "fauxqs"


@pytest.fixture(scope="session", autouse=True)
def _aws_test_credentials() -> Iterator[None]:
    """Dummy credentials for the session, so no test can reach a real AWS account."""
    with pytest.MonkeyPatch.context() as patch:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            patch.delenv(key, raising=False)
        for key, value in AWS_CREDENTIALS.items():
            patch.setenv(key, value)
        yield


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    with SyncRedis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def fauxqs() -> Iterator[Fauxqs]:
    if not Fauxqs.installed():
        pytest.skip(f"fauxqs is not installed at {Fauxqs.cli_path()}: run `make fauxqs`")
    with Fauxqs() as server:
        yield server


@pytest.fixture
def sqs_endpoint(request: pytest.FixtureRequest) -> str:
    backend = getattr(request, "param", None) or os.environ.get(SQS_BACKEND_ENV, "moto")
    if backend not in ("moto", "fauxqs"):
        raise pytest.UsageError(f"{SQS_BACKEND_ENV}={backend!r}: use moto or fauxqs")
    server = request.getfixturevalue(backend)
    return str(server.endpoint_url)


@pytest.fixture
async def sqs(sqs_endpoint: str) -> AsyncIterator[Any]:
    async with sqs_client(sqs_endpoint) as client:
        yield client


@pytest.fixture
async def queues(sqs: Any, request: pytest.FixtureRequest) -> AsyncIterator[QueuePair]:
    options: dict[str, int] = getattr(request, "param", {})
    pair = await create_queue_pair(sqs, f"t-{uuid.uuid4().hex[:16]}", **options)
    yield pair
    for url in pair:
        with contextlib.suppress(ClientError):  # e.g. moto was reset during the test
            await sqs.delete_queue(QueueUrl=url)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def fake_sendgrid() -> AsyncIterator[FakeSendGrid]:
    async with FakeSendGrid() as fake:
        yield fake


@pytest.fixture
async def fake_mailgun() -> AsyncIterator[FakeMailgun]:
    async with FakeMailgun() as fake:
        yield fake


@pytest.fixture
async def fake_ses() -> AsyncIterator[FakeSes]:
    async with FakeSes() as fake:
        yield fake


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def moto(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    for key, value in aws_env().items():
        monkeypatch.setenv(key, value)
    moto_server.reset()
    return moto_server
