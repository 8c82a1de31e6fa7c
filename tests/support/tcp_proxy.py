"""A small asyncio TCP proxy that a test can cut and restore, for chaos between a client and a
real server (the worker and Redis, say).

    async with TcpProxy("127.0.0.1", redis_port) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"   # point the client here
        await proxy.cut()        # live connections reset; new ones refused
        await proxy.restore()    # connections go through again, on the same port

How a cut looks to the client (`mode`)::

    refuse     the listener closes: a new connection is refused (ECONNREFUSED); `restore`
               listens again on the same port
    reset      new connections are accepted and reset at once (RST), as a crashing server does
    blackhole  new connections are accepted and then nothing: no bytes, no close, as a network
               partition looks; `restore` resets them

Whatever the mode, the connections open at the cut are reset. `accepted` counts every
connection the proxy took, `refused_or_reset` those it dropped while cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Literal, Self

Mode = Literal["refuse", "reset", "blackhole"]
_CHUNK = 64 * 1024


class TcpProxy:
    def __init__(
        self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host, self.port = host, port
        self.mode: Mode | None = None  # None while connections go through
        self.accepted = 0
        self.refused_or_reset = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._held: set[asyncio.StreamWriter] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def cut_now(self) -> bool:
        return self.mode is not None

    @property
    def links(self) -> int:
        """Connections being relayed now."""
        return len(self._links)

    async def start(self) -> Self:
        await self._listen()
        return self

    async def close(self) -> None:
        await self._stop_listening()
        self.mode = "reset"
        for writer in self._held:
            _reset(writer)
        self._reset_all()  # every relay ends on its own once its sockets are reset
        if self._links:
            await asyncio.wait(set(self._links), timeout=5)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def cut(self, mode: Mode = "refuse") -> None:
        """Drop every live connection and treat new ones as `mode` says."""
        self.mode = mode
        if mode == "refuse":
            await self._stop_listening()
        self._reset_all()

    async def restore(self) -> None:
        """Let connections through again (held blackhole connections are reset)."""
        held, self._held = self._held, set()
        for writer in held:
            _reset(writer)
        self.mode = None
        if self._server is None:
            await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    def _reset_all(self) -> None:
        for writer in list(self._writers):
            _reset(writer)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode is not None:
            self.refused_or_reset += 1
            if self.mode == "blackhole":
                self._held.add(writer)
            else:
                _reset(writer)
            return
        link = asyncio.current_task()
        if link is not None:
            self._links.add(link)
        try:
            await self._relay(reader, writer)
        finally:
            if link is not None:
                self._links.discard(link)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(writer)
            return
        if self.mode is not None:  # cut while the upstream connection was opening
            self.refused_or_reset += 1
            _reset(writer)
            _reset(up_writer)
            return
        self._writers.update((writer, up_writer))
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(_pump(reader, up_writer))
                group.create_task(_pump(up_reader, writer))
        except* (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.difference_update((writer, up_writer))
            for end in (writer, up_writer):
                _reset(end)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction until EOF; then half-close so the other side sees it."""
    while data := await reader.read(_CHUNK):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof() and not writer.is_closing():
        with contextlib.suppress(OSError):
            writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), not a graceful FIN."""
    if writer.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
