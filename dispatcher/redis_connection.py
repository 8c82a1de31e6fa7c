"""The single-Redis client's connection classes: redis-py's asyncio connections with two changes.

1. A write on a transport the peer has already closed is reported as `redis.ConnectionError`.
   Under uvloop such a write raises `RuntimeError("unable to perform operation on
   <TCPTransport closed=True ...>; the handler is closed")` (the stdlib loop raises other
   non-Redis errors on some Python versions: redis/redis-py#4287). It happens on the first call
   over a pooled connection after Redis restarted or a network cut reset it. Being no
   `RedisError`, it escaped the client's retry and every handler in the worker, and the worker
   died (found by the chaos suite); as a `ConnectionError` the client retries on a new one.
2. Commands are packed by hiredis's C packer. redis-py's synchronous connections do so when
   hiredis is installed (its own `HiredisRespSerializer`); its asyncio ones always pack in
   Python, the largest single cost of ours in the worker's profile (an EVALSHA with 30
   arguments: 18.5 µs that way, 7 µs through hiredis). The bytes are the same (a test compares).

The cluster client builds its own connections (redis-py hard-codes the class) and has neither.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.connection import HiredisRespSerializer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.utils import HIREDIS_AVAILABLE

_PACKER = HiredisRespSerializer() if HIREDIS_AVAILABLE else None


class _ResetSafeHiredis(AbstractConnection):
    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        try:
            await super().send_packed_command(command, check_health)
        except RuntimeError as exc:  # redis-py has disconnected it already
            raise RedisConnectionError(
                f"Error writing to {self._host_error()}: the connection was closed"
            ) from exc

    def pack_command(self, *args: Any) -> list[bytes]:
        if _PACKER is None:
            return super().pack_command(*args)
        packed: list[bytes] = _PACKER.pack(*args)
        return packed


class ClosedTransportSafeConnection(_ResetSafeHiredis, Connection):
    """`redis://`"""


class ClosedTransportSafeSSLConnection(_ResetSafeHiredis, SSLConnection):
    """`rediss://`"""


class ClosedTransportSafeUnixConnection(_ResetSafeHiredis, UnixDomainSocketConnection):
    """`unix://`"""


_BY_SCHEME: dict[str, type[AbstractConnection]] = {
    "redis": ClosedTransportSafeConnection,
    "rediss": ClosedTransportSafeSSLConnection,
    "unix": ClosedTransportSafeUnixConnection,
}


def connection_class(url: str) -> dict[str, Any]:
    """The `connection_class` keyword for `Redis.from_url(url, ...)`: empty (redis-py's own
    choice) for a scheme other than the three."""
    chosen = _BY_SCHEME.get(url.partition("://")[0].lower())
    return {"connection_class": chosen} if chosen else {}
