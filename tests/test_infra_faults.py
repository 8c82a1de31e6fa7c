"""The worker's clients under infrastructure faults: a Redis restart, an SQS endpoint gone during a
long send, an evicting Redis memory policy, and the in-flight limit's memory."""

from __future__ import annotations

import asyncio

from dispatcher.app import open_redis
from dispatcher.devstack import RedisServer


async def test_a_redis_client_reconnects_after_a_restart_within_one_call() -> None:
    async with RedisServer() as server:
        client = open_redis(server.url)
        try:
            await client.set("k", "v")  # a pooled connection now exists
            port = server.port
            await asyncio.to_thread(server.restart)
            assert server.port == port
            # The pooled connection is dead: the client's retry must reconnect within the call.
            assert await client.set("k", "w")
            assert await client.get("k") == b"w"
        finally:
            await client.aclose()
