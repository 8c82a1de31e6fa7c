"""Connections that pack commands with hiredis's C packer, for the single-Redis client.

redis-py's synchronous connections pack commands with hiredis when it is installed (its own
`HiredisRespSerializer`); its asyncio ones always pack in Python, which was the largest single
cost of ours in the worker's profile (`pack_command` and `encode`: an EVALSHA with 30 arguments
costs 18.5 µs that way, 7 µs through hiredis). These subclasses use redis-py's serializer, so
the bytes on the wire are the same (a test compares them). The cluster client builds its own
connections and keeps the Python packer.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE

_PACKER = HiredisRespSerializer() if HIREDIS_AVAILABLE else None


class _HiredisPacking:
    def pack_command(self, *args: Any) -> list[bytes]:
        assert _PACKER is not None  # only chosen when hiredis is there
        packed: list[bytes] = _PACKER.pack(*args)
        return packed


class HiredisConnection(_HiredisPacking, Connection):
    """`redis://`"""


class HiredisSSLConnection(_HiredisPacking, SSLConnection):
    """`rediss://`"""


class HiredisUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    """`unix://`"""


_BY_SCHEME: dict[str, type[AbstractConnection]] = {
    "redis": HiredisConnection,
    "rediss": HiredisSSLConnection,
    "unix": HiredisUnixConnection,
}


def connection_class(url: str) -> dict[str, Any]:
    """The `connection_class` keyword for `Redis.from_url(url, ...)`: empty (redis-py's own
    choice) when hiredis is missing or the scheme is not one of the three."""
    chosen = _BY_SCHEME.get(url.partition("://")[0].lower()) if HIREDIS_AVAILABLE else None
    return {"connection_class": chosen} if chosen else {}
