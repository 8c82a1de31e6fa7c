"""Operations: `dispatcher api` as a process drains in-flight requests on SIGTERM and exits 0;
one canonical log line per request, without addresses, subjects, bodies or keys."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
from structlog.testing import capture_logs

from dispatcher.api.auth import hash_key
from dispatcher.dev.stack import REPO, QueuePair, free_port
from tests.support.api import KEY, Api, body
from tests.support.harness import eventually
from tests.support.sqs_gateway import SqsGateway


async def test_one_log_line_per_request_and_no_personal_data(api: Api) -> None:
    with capture_logs() as events:
        async with api.client.post(f"{api.url}/v1/emails", json=body(2)) as reply:
            assert reply.status == 202
        async with api.client.get(f"{api.url}/v1/emails?status=QUEUED") as reply:
            assert reply.status == 200
    lines = [e for e in events if e["event"] == "request"]
    assert [(e["method"], e["route"], e["status"]) for e in lines] == [
        ("POST", "/v1/emails", 202),
        ("GET", "/v1/emails", 200),
    ]
    assert (lines[0]["client"], lines[0]["messages"]) == ("ops", 2)
    text = repr(events)
    for secret in ("user0@example.org", "User 0", "Your receipt", "Thanks", KEY):
        assert secret not in text


def config_file(
    tmp_path: Path, queues: QueuePair, gateway: SqsGateway, redis_url: str, port: int
) -> Path:
    keys = tmp_path / "keys"
    keys.write_text(hash_key(KEY) + "\n")
    path = tmp_path / "api.toml"
    path.write_text(
        f"""
[queue]
url = "{queues.url}"
endpoint_url = "{gateway.endpoint_url}"
dead_letter_url = "{queues.dlq_url}"

[redis]
url = "{redis_url}"
key_prefix = "t:"

[api]
port = {port}
api_keys_file = "{keys}"
shutdown_seconds = 20

[[providers]]
name = "sim"
type = "simulated"
"""
    )
    return path


async def test_sigterm_lets_the_running_request_finish_and_exits_0(
    tmp_path: Path, queues: QueuePair, gateway: SqsGateway, redis_url: str, http: Any
) -> None:
    port = free_port()
    config = config_file(tmp_path, queues, gateway, redis_url, port)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dispatcher",
        "api",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ},
        cwd=REPO,  # this work tree's package, whatever the venv has installed
    )
    url = f"http://127.0.0.1:{port}"

    async def answers() -> bool:
        try:
            async with http.get(f"{url}/healthz") as reply:
                return bool(reply.status == 200)
        except aiohttp.ClientError:
            return False

    try:
        await eventually(answers, 30, "the API to answer")
        gateway.hold = asyncio.Event()
        headers = {"Authorization": f"Bearer {KEY}"}
        sending = asyncio.create_task(http.post(f"{url}/v1/emails", json=body(3), headers=headers))
        await eventually(lambda: gateway.waiting == 1, what="the request to reach SQS")
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)  # the server is draining; the request is still held
        assert process.returncode is None
        gateway.hold.set()
        reply = await sending
        assert reply.status == 202
        assert len((await reply.json())["messages"]) == 3
        reply.release()
        async with asyncio.timeout(30):
            output, _ = await process.communicate()
        assert process.returncode == 0, output.decode()[-2000:]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
