"""The worker's probe and metrics port during a real run (moto SQS, real Redis, fake providers
with an outage), and the API's own /metrics."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from dispatcher.config import ConfigError, MetricsSettings, Settings, parse
from dispatcher.dev.fakes import FakeMailgun, FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import REPO, QueuePair, free_port
from dispatcher.ops.metrics import worker_registry
from dispatcher.ops.probes import serving_probes
from dispatcher.worker import Worker
from tests.support.configs import BREAKER, mailgun, sendgrid
from tests.support.harness import enqueue, eventually, running, settings
from tests.support.metrics import scrape, value


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def with_probes(config: Settings) -> Settings:
    return dataclasses.replace(config, metrics=MetricsSettings("127.0.0.1", free_port()))


async def breaker(http: aiohttp.ClientSession, url: str, provider: str) -> float:
    return value(await scrape(http, url), "dispatcher_breaker_state", provider=provider)


def probes(worker: Worker, config: Settings) -> Any:
    return serving_probes(config.metrics, worker, worker_registry(worker))


async def test_metrics_follow_an_outage_and_the_recovery(
    sqs: Any,
    queues: QueuePair,
    redis_url: str,
    sqs_endpoint: str,
    http: aiohttp.ClientSession,
) -> None:
    async with FakeSendGrid() as sg, FakeMailgun() as mg:
        sg.faults.fail(503)
        providers = [sendgrid(sg, **BREAKER), mailgun(mg, **BREAKER)]
        config = with_probes(
            settings(queues.url, sqs_endpoint, redis_url, providers, max_in_flight=8)
        )
        await enqueue(sqs, queues.url, [email_doc(i) for i in range(100)])
        async with running(config) as worker, probes(worker, config) as url:
            assert url is not None
            await eventually(lambda: worker.stats.sent == 100, 60, "100 sent in the outage")
            await eventually(lambda: _is(breaker(http, url, "sendgrid"), 2.0), 30, "sendgrid open")
            during = await scrape(http, url)
            sg.faults.clear()
            await enqueue(sqs, queues.url, [email_doc(i) for i in range(100, 300)])
            await eventually(lambda: worker.stats.sent == 300, 60, "300 sent after recovery")
            await eventually(
                lambda: _is(breaker(http, url, "sendgrid"), 0.0), 30, "sendgrid closed"
            )
            after = await scrape(http, url)
            async with http.get(f"{url}/readyz") as reply:
                assert (reply.status, await reply.json()) == (
                    200,
                    {"redis": "ok", "sqs": "ok", "shedding": "ok"},
                )
            async with http.get(f"{url}/healthz") as reply:
                assert reply.status == 200
    sends = "dispatcher_sends_total"
    assert value(during, sends, provider="sendgrid", outcome="down") == sg.answered[503]
    assert value(during, sends, provider="sendgrid", outcome="sent") == 0
    assert value(after, sends, provider="sendgrid", outcome="sent") == len(sg.receipts) > 0
    assert value(after, sends, provider="mailgun", outcome="sent") == len(mg.receipts)
    assert len(sg.receipts) + len(mg.receipts) == 300
    count = value(after, "dispatcher_send_seconds_count", provider="mailgun")
    assert count == len(mg.receipts)
    assert value(after, "dispatcher_send_seconds_bucket", provider="mailgun", le="+Inf") == count
    assert value(after, "dispatcher_queue_lag_seconds_count") == 300
    assert value(after, "dispatcher_receive_batch_size_sum") >= 300
    assert value(after, "dispatcher_in_flight_limit") == 8
    assert value(after, "dispatcher_in_flight") == 0
    assert value(after, "dispatcher_route_weight", provider="sendgrid") == 1.0  # priority
    assert value(after, "dispatcher_redis_errors_total") == 0
    assert ("dispatcher_shed_seconds_total", ()) in after
    assert ("dispatcher_dead_letters_total", (("reason", "invalid message"),)) not in after
    # The Grafana dashboard asks only for series the worker and the API serve.
    served = {name for name, _ in after} | {
        "dispatcher_provider_override",  # served while an override is set
        "dispatcher_dead_letters_total",  # served once a message is dead-lettered
        "dispatcher_api_requests_total",  # the API's (tests/e2e/api/test_metrics_api.py)
        "dispatcher_api_request_seconds_bucket",
    }
    assert dashboard_series() <= served


def dashboard_series() -> set[str]:
    doc = orjson.loads((REPO / "deploy" / "grafana" / "dispatcher.json").read_bytes())
    exprs = [t["expr"] for panel in doc["panels"] for t in panel["targets"]]
    return {name for expr in exprs for name in re.findall(r"dispatcher_[a-z_]+", expr)}


async def _is(reading: Any, expected: float) -> bool:
    return bool(await reading == expected)


async def test_dead_letters_are_counted_by_reason_class(
    sqs: Any,
    queues: QueuePair,
    redis_url: str,
    sqs_endpoint: str,
    http: aiohttp.ClientSession,
) -> None:
    async with FakeSendGrid() as sg:
        config = with_probes(settings(queues.url, sqs_endpoint, redis_url, [sendgrid(sg)]))
        await enqueue(sqs, queues.url, [b"not json", email_doc(1, v=2), email_doc(2)])
        async with running(config) as worker, probes(worker, config) as url:
            assert url is not None
            await eventually(lambda: worker.stats.sent == 1, 30, "the good one sent")
            await eventually(
                lambda: worker.settler.dead_letters.total() == 2, 30, "two dead-lettered"
            )
            series = await scrape(http, url)
    assert value(series, "dispatcher_dead_letters_total", reason="invalid message") == 2


def test_the_probe_port_is_configured_and_checked() -> None:
    base = {
        "queue": {"url": "http://127.0.0.1:1/q"},
        "providers": [{"name": "a", "type": "simulated"}],
    }
    assert parse(base).metrics == MetricsSettings("0.0.0.0", 9100)
    assert parse({**base, "metrics": {"port": 0}}).metrics.port == 0  # off
    with pytest.raises(ConfigError, match=r"metrics\.port"):
        parse({**base, "metrics": {"port": 70000}})
