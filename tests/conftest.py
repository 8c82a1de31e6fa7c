"""The fixtures that more than one role uses (unit tests use none): a real redis-server,
moto_server (SQS and SES), fauxqs when installed, and the fake providers of dispatcher.dev.fakes.

redis_server  session   `RedisServer` (dispatcher.dev.stack) on a free port, no persistence
redis_cluster_servers   session   a three-primary `RedisCluster` (dispatcher.dev.stack), started
                        by the first test that asks for it
redis_target  function  `RedisTarget(url, cluster)`, flushed: one Redis, or the cluster for a
                        test marked `redis_targets("single", "cluster")` (a module's
                        `pytestmark` or the test's own; the closest mark wins), which then runs
                        once on each; tests pass `cluster=redis_target.cluster` to settings
redis_url     function  redis_target's URL: every test starts from an empty Redis
redis         function  a client of redis_target (`Redis`, or `open_redis`'s `RedisCluster` on
                        the cluster; tests/redis_targets.py), closed after the test
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

from dispatcher.dev.fakes.mailgun import FakeMailgun
from dispatcher.dev.fakes.moto import MotoServer, aws_env
from dispatcher.dev.fakes.sendgrid import FakeSendGrid
from dispatcher.dev.fakes.ses import FakeSes
from dispatcher.dev.stack import (
    AWS_CREDENTIALS,
    Fauxqs,
    QueuePair,
    RedisCluster,
    RedisServer,
    create_queue_pair,
    sqs_client,
)
from dispatcher.scripts import RedisClient
from tests.support.redis_targets import REDIS_TARGETS, RedisTarget

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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "redis_targets(*kinds): run the test on each of single and cluster"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked `redis_targets(...)` that uses Redis runs once per kind named."""
    mark = metafunc.definition.get_closest_marker("redis_targets")
    if mark is None or "redis_target" not in metafunc.fixturenames:
        return
    unknown = set(mark.args) - set(REDIS_TARGETS)
    if unknown:
        raise pytest.UsageError(f"redis_targets: unknown {sorted(unknown)}: use {REDIS_TARGETS}")
    metafunc.parametrize("redis_target", mark.args, indirect=True)


@pytest.fixture(scope="session")
def redis_cluster_servers() -> Iterator[RedisCluster]:
    with RedisCluster() as servers:
        yield servers


@pytest.fixture
def redis_target(request: pytest.FixtureRequest, redis_server: RedisServer) -> RedisTarget:
    if getattr(request, "param", "single") == "single":
        target = RedisTarget(redis_server.url, cluster=False)
    else:
        servers: RedisCluster = request.getfixturevalue("redis_cluster_servers")
        target = RedisTarget(servers.url, cluster=True)
    target.flush()
    return target


@pytest.fixture
def redis_url(redis_target: RedisTarget) -> str:
    return redis_target.url


@pytest.fixture
async def redis(redis_target: RedisTarget) -> AsyncIterator[RedisClient]:
    client = redis_target.client()
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
