"""Settings and config files the tests share: provider entries for the fakes, TOML texts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dispatcher.config import Settings
from dispatcher.dev.fakes import FakeMailgun, FakeSendGrid, MotoServer
from dispatcher.dev.stack import QueuePair
from tests.support.harness import settings


def sendgrid(fake: FakeSendGrid, **extra: Any) -> dict[str, Any]:
    return {
        "name": "sendgrid",
        "type": "sendgrid",
        "api_key": fake.api_key,
        "base_url": fake.base_url,
        "timeout_seconds": 2,
        **extra,
    }


def mailgun(fake: FakeMailgun, **extra: Any) -> dict[str, Any]:
    return {
        "name": "mailgun",
        "type": "mailgun",
        "api_key": fake.api_key,
        "domain": "mg.example.com",
        "base_url": fake.base_url,
        "timeout_seconds": 2,
        **extra,
    }


def ses(moto: MotoServer) -> dict[str, Any]:
    return {
        "name": "ses",
        "type": "ses",
        "region": "us-east-1",
        "endpoint_url": moto.endpoint_url,
        "timeout_seconds": 5,
    }


# The quick breaker of the routing end-to-end tests, as config keys.
BREAKER = {
    "minimum_calls": 10,
    "consecutive_failures": 5,
    "open_seconds": 1,
    "half_open_successes": 2,
    "half_open_permits": 1,
}


def adaptive_pair(
    queues: QueuePair,
    endpoint: str,
    redis_url: str,
    sg: FakeSendGrid,
    mg: FakeMailgun,
    **dispatch: Any,
) -> Settings:
    """Settings for the fake SendGrid and Mailgun behind the `adaptive` strategy."""
    providers = [sendgrid(sg), mailgun(mg)]
    return settings(queues.url, endpoint, redis_url, providers, strategy="adaptive", **dispatch)


def config_file(tmp_path: Path, config: Settings) -> Path:
    """The config the operator's CLI reads: the same queue, Redis and provider names."""
    path = tmp_path / "dispatcher.toml"
    names = "".join(
        f'[[providers]]\nname = "{p.name}"\ntype = "simulated"\n\n' for p in config.providers
    )
    path.write_text(
        f'[queue]\nurl = "{config.queue.url}"\nendpoint_url = "{config.queue.endpoint_url}"\n\n'
        f'[redis]\nurl = "{config.redis.url}"\nkey_prefix = "{config.redis.key_prefix}"\n\n' + names
    )
    return path


def two_providers(redis_url: str) -> Settings:
    simulated = [{"name": "a", "type": "simulated"}, {"name": "b", "type": "simulated"}]
    return settings("http://127.0.0.1:1/q", "http://127.0.0.1:1", redis_url, simulated)


BASE = """
[queue]
url = "http://127.0.0.1:4566/000000000000/mail"

[redis]
url = "redis://127.0.0.1:6379/0"

[dispatch]
max_in_flight = 64

[[providers]]
name = "sendgrid"
type = "sendgrid"
api_key = "SG.key"

[[providers]]
name = "mail-gun"
type = "mailgun"
api_key = "mg-key"
domain = "mg.example.com"
weight = 2

[[providers]]
name = "dry"
type = "simulated"
latency_ms = 5
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dispatcher.toml"
    path.write_text(text)
    return path


CONFIG = """
[queue]
url = "{url}"
endpoint_url = "{endpoint}"
wait_time_seconds = 1
visibility_timeout = 30

[redis]
url = "{redis}"
key_prefix = "t:"

[dispatch]
max_in_flight = 40
drain_seconds = 10

[metrics]
port = 0

[[providers]]
name = "sendgrid"
type = "sendgrid"
base_url = "{sendgrid}"
timeout_seconds = 5
"""
