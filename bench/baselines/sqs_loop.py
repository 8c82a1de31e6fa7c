"""Baseline (b): bare aiobotocore receive(10) + delete_message_batch against fauxqs, with the
dispatcher's receive arguments and client config. Its CPU per message is the SQS floor.

    python -m bench.baselines.sqs_loop --endpoint URL --count 10000 --pollers 4
    python -m bench.baselines.sqs_loop --endpoint URL --client lean

`--client lean` runs the same loop through `LeanSqs`: the SQS JSON protocol posted with aiohttp,
signed with botocore's SigV4Auth. Not a client for production (no retries, no credential
refresh, no error mapping): it measures what a purpose-built client could save over aiobotocore.
The queue is created and filled before the measured window and deleted after it.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp
import orjson
import uvloop
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench.baselines import Measured, Window
from bench.stack import enqueue, message_bodies
from dispatcher.dev.stack import AWS_CREDENTIALS, create_queue_pair, sqs_client


class LeanSqs:
    """`receive_message` and `delete_message_batch` as aiobotocore names them, in a few lines."""

    def __init__(
        self, http: aiohttp.ClientSession, endpoint: str, region: str = "us-east-1"
    ) -> None:
        self._http, self._url = http, endpoint.rstrip("/") + "/"
        credentials = Credentials(
            AWS_CREDENTIALS["AWS_ACCESS_KEY_ID"], AWS_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
        )
        self._signer = SigV4Auth(credentials, "sqs", region)

    async def call(self, action: str, params: dict[str, Any]) -> Any:
        body = orjson.dumps(params)
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"AmazonSQS.{action}",
        }
        request = AWSRequest("POST", self._url, data=body, headers=headers)
        self._signer.add_auth(request)
        async with self._http.post(self._url, data=body, headers=dict(request.headers)) as reply:
            raw = await reply.read()
            if reply.status != 200:
                raise RuntimeError(f"{action}: HTTP {reply.status} {raw[:200]!r}")
            return orjson.loads(raw)

    async def receive_message(self, **params: Any) -> Any:
        return await self.call("ReceiveMessage", params)

    async def delete_message_batch(self, **params: Any) -> Any:
        return await self.call("DeleteMessageBatch", params)


async def drain(sqs: Any, url: str, count: int, pollers: int) -> Measured:
    """Receive and delete `count` messages with `pollers` concurrent loops."""
    done = 0
    finished: asyncio.Future[Measured] = asyncio.get_running_loop().create_future()
    window = Window()

    async def poller() -> None:
        nonlocal done
        while not finished.done():
            reply = await sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                VisibilityTimeout=60,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
            messages = reply.get("Messages", [])
            if not messages:
                continue
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ]
            await sqs.delete_message_batch(QueueUrl=url, Entries=entries)
            done += len(messages)
            if done >= count and not finished.done():
                finished.set_result(window.stop(done))

    window.start()
    tasks = [asyncio.create_task(poller()) for _ in range(pollers)]
    try:
        return await finished
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def measure(endpoint: str, count: int, pollers: int, client: str) -> Measured:
    async with (
        sqs_client(endpoint, retries={"mode": "standard"}) as sqs,
        aiohttp.ClientSession() as http,
    ):
        pair = await create_queue_pair(sqs, f"bench-sqs-{uuid.uuid4().hex[:8]}")
        try:
            await enqueue(sqs, pair.url, message_bodies("sqs-loop", count))
            loop_client = LeanSqs(http, endpoint) if client == "lean" else sqs
            return await drain(loop_client, pair.url, count, pollers)
        finally:
            for url in pair:
                await sqs.delete_queue(QueueUrl=url)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines.sqs_loop", description=__doc__)
    parser.add_argument("--endpoint", required=True, help="fauxqs endpoint URL")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--pollers", type=int, default=4)
    parser.add_argument("--client", choices=("aiobotocore", "lean"), default="aiobotocore")
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(measure(args.endpoint, args.count, args.pollers, args.client)).emit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
