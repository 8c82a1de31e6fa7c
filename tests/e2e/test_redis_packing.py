"""The single-Redis client packs commands with hiredis: the same bytes, on a real server."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError
from redis.typing import EncodableT, FieldT

from dispatcher.app import open_redis
from dispatcher.config import RedisSettings
from dispatcher.redis_connection import (
    ClosedTransportSafeConnection,
    ClosedTransportSafeSSLConnection,
    connection_class,
)

_ARG = st.one_of(
    st.text(st.characters(codec="utf-8")),
    st.binary(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["EVALSHA", "HSET", "CLIENT SETNAME"]), st.lists(_ARG, max_size=12))
def test_hiredis_packs_the_bytes_redis_py_packs(command: str, args: list[Any]) -> None:
    python_packed = b"".join(Connection().pack_command(command, *args))
    assert b"".join(ClosedTransportSafeConnection().pack_command(command, *args)) == python_packed


def test_the_connection_class_follows_the_url_scheme() -> None:
    assert connection_class("redis://h:6379/0") == {
        "connection_class": ClosedTransportSafeConnection
    }
    assert connection_class("rediss://h:6380/0") == {
        "connection_class": ClosedTransportSafeSSLConnection
    }
    assert connection_class("redis+sentinel://h") == {}


async def test_the_worker_client_round_trips_scripts_and_fields(redis_url: str) -> None:
    client = open_redis(RedisSettings(url=redis_url))
    try:
        assert isinstance(client, Redis)
        assert client.connection_pool.connection_class is ClosedTransportSafeConnection
        values: dict[FieldT, EncodableT] = {
            "text": "Grüße ✉",
            "count": 7,
            "share": 0.125,
            "raw": b"\x00\xff",
        }
        await client.hset("packing:h", mapping=values)
        echoed = await client.eval(
            "return redis.call('HMGET', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])",
            1,
            "packing:h",
            *values,
        )
        assert echoed == ["Grüße ✉".encode(), b"7", b"0.125", b"\x00\xff"]
    finally:
        await client.delete("packing:h")
        await client.aclose()


@pytest.mark.parametrize("bad", [None, object()])
def test_an_argument_redis_cannot_encode_is_refused_as_before(bad: object) -> None:
    with pytest.raises(DataError):
        Connection().pack_command("SET", "k", bad)  # type: ignore[arg-type]
    with pytest.raises(DataError):
        ClosedTransportSafeConnection().pack_command("SET", "k", bad)
