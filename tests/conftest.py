"""Shared fixtures: a real redis-server, moto_server (SQS and SES) and, when installed, fauxqs.

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
moto_server   session   from tests.fakes.fixtures: one moto_server (SQS + SES, recording on)
moto          function  from tests.fakes.fixtures: moto_server, reset before the test
fauxqs        session   `Fauxqs` (dispatcher.dev.stack); the test is skipped if not installed
sqs_endpoint  function  the SQS endpoint: moto (reset), or fauxqs with DEVSTACK_TEST_SQS=fauxqs;
                        a test that needs fauxqs's speed asks for it with
                        `@pytest.mark.parametrize("sqs_endpoint", ["fauxqs"], indirect=True)`
sqs           function  an aiobotocore SQS client on sqs_endpoint, closed after the test
queues        function  `QueuePair(url, dlq_url)`: a fresh, uniquely named queue and its DLQ
                        (maxReceiveCount 10, visibility 60 s; change them with
                        `@pytest.mark.parametrize("queues", [{"max_receive_count": 2}],
                        indirect=True)`), deleted after the test

The AWS test credentials (`AWS_CREDENTIALS`) are in the environment for the whole session.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

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
from tests.redis_targets import REDIS_TARGETS, RedisTarget

__all__ = ["QueuePair", "RedisTarget"]  # tests import them from here

# The fake SendGrid / Mailgun / SES servers and moto (`http`, `fake_*`, `moto_server`, `moto`).
pytest_plugins = ["tests.fakes.fixtures"]

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
