"""Found by the chaos suite: under uvloop, a write on a pooled Redis connection that the peer
has reset raises `RuntimeError` ("the handler is closed"), which no Redis error handler in the
worker catches, and the worker died (a Redis SIGKILL and restart took one down). `open_redis`
clients turn it into `redis.ConnectionError`, so the retry opens a new connection."""

from __future__ import annotations

import asyncio

import uvloop

from dispatcher.app import open_redis
from dispatcher.config import RedisSettings
from dispatcher.dev.stack import RedisServer
from tests.support.tcp_proxy import TcpProxy


async def _read_after_a_reset(redis_port: int) -> bytes | str | None:
    async with TcpProxy("127.0.0.1", redis_port) as proxy:
        client = open_redis(RedisSettings(url=f"redis://127.0.0.1:{proxy.port}/0"))
        try:
            await client.set("chaos:reset", "1")  # a pooled connection, idle from now on
            await proxy.cut("reset")
            await asyncio.sleep(0.2)  # the client's transport sees the RST and closes
            await proxy.restore()
            value: bytes | str | None = await client.get("chaos:reset")
            return value
        finally:
            await client.aclose()


def test_a_reset_pooled_connection_is_retried_under_uvloop(redis_server: RedisServer) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(_read_after_a_reset(redis_server.port)) == b"1"
