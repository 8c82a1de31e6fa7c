"""Helpers for the end-to-end tests of the ambiguous case and the ledger epoch: provider entries
for the settings, and a `dispatcher run` in its own process (to SIGKILL it mid-send)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from dispatcher.dev.fakes import FakeServer
from dispatcher.ledger import Ledger, Record

WORKER_TOML = """
[queue]
url = "{url}"
endpoint_url = "{endpoint}"
wait_time_seconds = 1
visibility_timeout = 10

[redis]
url = "{redis}"
key_prefix = "t:"

[dispatch]
drain_seconds = 10
journal_path = "{journal}"

[metrics]
port = 0

[[providers]]
name = "sendgrid"
type = "sendgrid"
base_url = "{sendgrid}"
timeout_seconds = 30
"""


def provider_entry(kind: str, fake: FakeServer, **extra: Any) -> dict[str, Any]:
    """A `[[providers]]` entry named `kind` pointing at `fake` (SendGrid or Mailgun)."""
    entry: dict[str, Any] = {
        "name": kind,
        "type": kind,
        "api_key": fake.api_key,
        "base_url": fake.base_url,
        "timeout_seconds": 2,
    }
    if kind == "mailgun":
        entry["domain"] = "mg.example.com"
    return entry | extra


async def start_worker_process(
    folder: Path, queue_url: str, endpoint: str, redis_url: str, sendgrid: FakeServer
) -> asyncio.subprocess.Process:
    """`python -m dispatcher run` with SendGrid only; its output goes to `folder/worker.log`."""
    config = folder / "dispatcher.toml"
    config.write_text(
        WORKER_TOML.format(
            url=queue_url,
            endpoint=endpoint,
            redis=redis_url,
            sendgrid=sendgrid.base_url,
            journal=folder / "journal.jsonl",
        )
    )
    env = {**os.environ, "DISPATCHER_PROVIDERS__SENDGRID__API_KEY": sendgrid.api_key}
    args = [sys.executable, "-m", "dispatcher", "run", "--config", str(config)]
    with (folder / "worker.log").open("wb") as out:
        return await asyncio.create_subprocess_exec(
            *args, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )


async def record_of(redis: Redis, message_id: str) -> Record:
    record = await Ledger(redis, "t:", 3600).get(message_id)
    assert record is not None, message_id
    return record
