"""The dev stack's process base: one server subprocess on 127.0.0.1 and a free port.

Each server has its own temp dir holding a log of everything the process prints. A failed start
raises `DevStackError` with the tail of the log; an atexit hook stops any server still running.
"""

from __future__ import annotations

import abc
import asyncio
import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple, Self

REPO = Path(__file__).resolve().parents[2]


class DevStackError(RuntimeError):
    """A local server is missing or did not start; the message says what to do."""


class QueuePair(NamedTuple):
    url: str
    dlq_url: str


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


LOCAL_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via HTTP_PROXY


def http_ok(url: str) -> bool:
    try:
        with LOCAL_OPENER.open(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


_RUNNING: set[ServerProcess] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.stop()


class ServerProcess(abc.ABC):
    """One server subprocess. Subclasses say how to run it and how to tell it is ready."""

    name = "server"
    startup_timeout = 20.0
    attempts = 3  # a process that exits during start-up (port taken meanwhile) gets a new port

    def __init__(self, *, startup_timeout: float | None = None) -> None:
        if startup_timeout is not None:
            self.startup_timeout = startup_timeout
        self.port = 0
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._command: list[str] = []

    # -- what a subclass provides
    @abc.abstractmethod
    def executable(self) -> list[str]:
        """The program (and fixed leading arguments); raises DevStackError when missing."""

    def arguments(self) -> list[str]:
        """Arguments that depend on `self.port` and `self.temp_dir`."""
        return []

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    @abc.abstractmethod
    def ready(self) -> bool:
        """Whether the server answers yet."""

    # -- lifecycle
    @property
    def log_path(self) -> Path:
        return self.temp_dir / f"{self.name}.log"

    @property
    def temp_dir(self) -> Path:
        if self._dir is None:
            raise DevStackError(f"{self.name} is not started")
        return self._dir

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        if self._process is not None:
            raise DevStackError(f"{self.name} is already started")
        self._command = self.executable()
        self.stop()  # drops the temp dir a failed start kept
        self._dir = Path(tempfile.mkdtemp(prefix=f"dispatcher-{self.name}-"))
        _RUNNING.add(self)
        try:
            for attempt in range(1, self.attempts + 1):
                self.port = free_port()
                if self._spawn_and_wait(last=attempt == self.attempts):
                    return self
            raise AssertionError("unreachable")  # pragma: no cover
        except BaseException:
            self.stop(keep_dir=True)  # the error names the log: keep it
            raise

    def _spawn_and_wait(self, *, last: bool) -> bool:
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [*self._command, *self.arguments()],
                env=self.environment(),
                cwd=self.temp_dir,
                stdin=self._stdin(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                self._reap()
                if last:
                    raise self._error(f"exited with status {code} while starting")
                return False
            if self.ready() and self._process.poll() is None:
                return True
            time.sleep(0.05)
        raise self._error(f"did not become ready within {self.startup_timeout:g}s")

    def _stdin(self) -> int:
        return subprocess.DEVNULL

    def _error(self, what: str) -> DevStackError:
        tail = self.log_path.read_text(errors="replace").splitlines()[-30:]
        return DevStackError(
            f"{self.name} ({self._command[0]}, port {self.port}) {what}; log {self.log_path}:\n"
            + "\n".join(tail)
        )

    def _reap(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdin is not None:
            process.stdin.close()

    def restart(self) -> None:
        """Stop the process and start it again on the same port and temp dir, as a restarted
        server (or a failover behind the same address) looks to its clients."""
        if self._process is None:
            raise DevStackError(f"{self.name} is not started")
        self._reap()
        try:
            self._spawn_and_wait(last=True)
        except BaseException:
            self.stop(keep_dir=True)  # the error names the log: keep it
            raise

    def stop(self, *, keep_dir: bool = False) -> None:
        """Terminate (then kill) the process and remove its temp dir; safe to call twice."""
        self._reap()
        _RUNNING.discard(self)
        if self._dir is not None and not keep_dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)
