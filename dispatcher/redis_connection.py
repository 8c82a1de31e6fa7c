"""`ClosedTransportSafeConnection`: redis-py's asyncio connection, with a write on a transport
the peer has already closed reported as `redis.ConnectionError`.

Under uvloop such a write raises `RuntimeError("unable to perform operation on
<TCPTransport closed=True ...>; the handler is closed")` (the stdlib loop raises other
non-Redis errors on some Python versions: redis/redis-py#4287). It happens on the first call
over a pooled connection after Redis restarted or a network cut reset it. Being no
`RedisError`, it escaped the client's retry and every handler in the worker, and the worker
died; as a `ConnectionError` the client retries on a new connection.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError


class ClosedTransportSafeConnection(Connection):
    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        try:
            await super().send_packed_command(command, check_health)
        except RuntimeError as exc:  # redis-py has disconnected it already
            raise RedisConnectionError(
                f"Error writing to {self.host}:{self.port}: the connection was closed"
            ) from exc
