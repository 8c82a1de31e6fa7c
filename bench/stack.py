"""The process stack the bench measures: redis-server, fauxqs, the fake SendGrid and Mailgun and
one dispatcher, each its own process, and what the bench reads from them.

    with open_stack(workdir, latency_ms=50) as stack:  # redis, fauxqs, both fakes
        config = stack.write_config(pair, max_in_flight=1000)
        with DispatcherProcess(config) as dispatcher:  # `python -m dispatcher run`, ready
            ...                                        # once it logs worker_started

Readings, all from outside the dispatcher: its CPU and memory from /proc, Redis counters from
`INFO`, and what the fakes accepted from their `/_control` endpoints. Nothing here is global.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from redis import Redis

from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import (
    AWS_CREDENTIALS,
    REPO,
    Fauxqs,
    QueuePair,
    RedisServer,
    ServerProcess,
)

API_KEY = "bench-key"
MAILGUN_DOMAIN = "mg.example.com"
KEY_PREFIX = "bench:"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via HTTP_PROXY


def child_environment(**extra: str) -> dict[str, str]:
    """The environment for our Python children: repo on the path, AWS test credentials."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, **AWS_CREDENTIALS, "PYTHONPATH": path, **extra}


def http_json(url: str, body: dict[str, Any] | None = None, timeout: float = 30) -> Any:
    """GET (or POST `body` as JSON) to a local URL and decode the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with _LOCAL.open(request, timeout=timeout) as response:
        return json.loads(response.read())


class FakeProvider(ServerProcess):
    """`python -m dispatcher.dev.fakes <kind>` on a free port; faults over HTTP (`control`)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.name = self.kind = kind

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def executable(self) -> list[str]:
        return [sys.executable, "-m", "dispatcher.dev.fakes", self.kind, "--api-key", API_KEY]

    def arguments(self) -> list[str]:
        extra = ["--domain", MAILGUN_DOMAIN] if self.kind == "mailgun" else []
        return ["--port", str(self.port), *extra]

    def environment(self) -> dict[str, str]:
        return child_environment()

    def ready(self) -> bool:
        try:
            self.stats()
        except OSError:
            return False
        return True

    def control(self, op: str, **args: Any) -> None:
        """A fault operation (dispatcher.dev.fakes.faults): latency, hang, release, clear..."""
        http_json(f"{self.base_url}/_control", {"op": op, **args})

    def stats(self) -> dict[str, Any]:
        """`{"received": N, "answered": {...}, "injected": {...}}`."""
        found: dict[str, Any] = http_json(f"{self.base_url}/_control/stats", timeout=5)
        return found

    def received(self) -> int:
        return int(self.stats()["received"])

    def receipts(self, offset: int = 0) -> list[dict[str, Any]]:
        """Every receipt from `offset` on: provider_id, dispatcher_id, payload, received_at."""
        found: list[dict[str, Any]] = http_json(
            f"{self.base_url}/_control/receipts?offset={offset}", timeout=120
        )["receipts"]
        return found


class DispatcherProcess(ServerProcess):
    """`python -m dispatcher run --config FILE`, ready once it logs `worker_started`.

    `launcher` replaces `-m dispatcher` (e.g. a profiling runner that takes the same
    arguments). Its JSON-lines log is `log_path`."""

    name = "dispatcher"
    attempts = 1
    startup_timeout = 60.0

    def __init__(self, config: Path, launcher: Sequence[str] = ("-m", "dispatcher")) -> None:
        super().__init__()
        self.config = config
        self.launcher = list(launcher)
        self.exit_code: int | None = None

    def executable(self) -> list[str]:
        return [sys.executable, *self.launcher]

    def arguments(self) -> list[str]:
        return ["run", "--config", str(self.config)]

    def environment(self) -> dict[str, str]:
        return child_environment()

    def ready(self) -> bool:
        try:
            with open(self.log_path, "rb") as log:
                return b'"worker_started"' in log.read(1 << 20)
        except OSError:
            return False

    @property
    def pid(self) -> int:
        return server_pid(self)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def memory_mb(self) -> dict[str, float]:
        return memory_mb(self.pid)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for the drain; returns the exit status (kills after `timeout`)."""
        process = self._process
        if process is None:
            raise RuntimeError("dispatcher is not running")
        process.send_signal(signal.SIGTERM)
        try:
            self.exit_code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            self.exit_code = process.wait()
        return self.exit_code

    def log_events(self) -> Iterator[dict[str, Any]]:
        """The JSON lines it logged (read before `stop()`, which removes them)."""
        with open(self.log_path, "rb") as log:
            for line in log:
                with contextlib.suppress(ValueError):
                    yield json.loads(line)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (every thread) from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def server_pid(server: ServerProcess) -> int:
    process = server._process  # devstack keeps the Popen private; the bench only reads /proc
    if process is None:
        raise RuntimeError(f"{server.name} is not running")
    return process.pid


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / CLOCK_TICKS, sum(ticks) / CLOCK_TICKS


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) of a process, in MB."""
    found: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) / 1024
    return found


@dataclass(frozen=True, slots=True)
class RedisCounters:
    """Server-wide counters. Commands run inside a script count in `commands` too; a pipeline
    sent in one write is one read event (`reads`), so `reads` bounds the round trips."""

    evalsha: int
    commands: int
    reads: int

    def __sub__(self, other: RedisCounters) -> RedisCounters:
        return RedisCounters(
            self.evalsha - other.evalsha,
            self.commands - other.commands - 1,  # our own INFO
            self.reads - other.reads - 1,
        )


def redis_counters(url: str) -> RedisCounters:
    with Redis.from_url(url) as client:
        info: dict[str, Any] = client.info("all")
    return RedisCounters(
        int(info.get("cmdstat_evalsha", {}).get("calls", 0)),
        int(info["total_commands_processed"]),
        int(info["total_reads_processed"]),
    )


@dataclass
class Stack:
    redis: RedisServer
    sqs: Fauxqs
    fakes: tuple[FakeProvider, FakeProvider]
    workdir: Path
    latency_ms: float = 50.0

    @property
    def sendgrid(self) -> FakeProvider:
        return self.fakes[0]

    @property
    def mailgun(self) -> FakeProvider:
        return self.fakes[1]

    def control(self, op: str, **args: Any) -> None:
        for fake in self.fakes:
            fake.control(op, **args)

    def reset_faults(self) -> None:
        """No rule, held sends released, the stack's latency back on."""
        self.control("clear")
        self.control("latency", ms=self.latency_ms)

    def received(self) -> int:
        return sum(fake.received() for fake in self.fakes)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU used so far by each server process of the stack."""
        servers: dict[str, ServerProcess] = {"redis": self.redis, "fauxqs": self.sqs}
        servers.update({fake.kind: fake for fake in self.fakes})
        return {name: cpu_seconds(server_pid(server)) for name, server in servers.items()}

    def write_config(
        self, pair: QueuePair, *, max_in_flight: int = 1000, pollers: int = 4, name: str = "d"
    ) -> Path:
        """A dispatcher TOML for this stack: adaptive routing over both fakes."""
        path = self.workdir / f"{name}.toml"
        path.write_text(dispatcher_toml(self, pair, max_in_flight=max_in_flight, pollers=pollers))
        return path


def dispatcher_toml(stack: Stack, pair: QueuePair, *, max_in_flight: int, pollers: int) -> str:
    q = json.dumps  # a JSON string is a valid TOML basic string
    return f"""\
[queue]
url = {q(pair.url)}
endpoint_url = {q(stack.sqs.endpoint_url)}
dead_letter_url = {q(pair.dlq_url)}
region = "us-east-1"
wait_time_seconds = 2
visibility_timeout = 60

[redis]
url = {q(stack.redis.url)}
key_prefix = {q(KEY_PREFIX)}

[dispatch]
max_in_flight = {max_in_flight}
pollers = {pollers}
drain_seconds = 20

[routing]
strategy = "adaptive"

[metrics]
port = 0

[log]
level = "info"

[[providers]]
name = "sendgrid"
type = "sendgrid"
api_key = {q(API_KEY)}
base_url = {q(stack.sendgrid.base_url)}

[[providers]]
name = "mailgun"
type = "mailgun"
api_key = {q(API_KEY)}
domain = {q(MAILGUN_DOMAIN)}
base_url = {q(stack.mailgun.base_url)}
"""


@contextlib.contextmanager
def open_stack(workdir: Path, latency_ms: float = 50.0) -> Iterator[Stack]:
    """redis-server, fauxqs and both fakes (with `latency_ms` on every send), stopped on exit."""
    if not Fauxqs.installed():
        raise RuntimeError(f"fauxqs is not installed at {Fauxqs.cli_path()}: run `make fauxqs`")
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(RedisServer())
        sqs = stack.enter_context(Fauxqs())
        sendgrid = stack.enter_context(FakeProvider("sendgrid"))
        mailgun = stack.enter_context(FakeProvider("mailgun"))
        built = Stack(redis, sqs, (sendgrid, mailgun), workdir, latency_ms)
        built.reset_faults()
        yield built


async def enqueue(sqs: Any, url: str, bodies: Sequence[bytes], concurrency: int = 16) -> None:
    """SendMessageBatch in tens, `concurrency` batches at a time (the test harness sends 8)."""
    batches = iter([bodies[i : i + 10] for i in range(0, len(bodies), 10)])

    async def sender() -> None:
        for batch in batches:
            entries = [{"Id": str(i), "MessageBody": b.decode()} for i, b in enumerate(batch)]
            reply = await sqs.send_message_batch(QueueUrl=url, Entries=entries)
            if reply.get("Failed"):
                raise RuntimeError(f"enqueue failed: {reply['Failed'][:3]}")

    await asyncio.gather(*(sender() for _ in range(concurrency)))


def message_bodies(prefix: str, count: int, start: int = 0) -> list[bytes]:
    """Schema v1 bodies (dispatcher.dev.messages.email_doc) with ids `<prefix>-<n>`, created now."""
    return [orjson.dumps(email_doc(n, id=f"{prefix}-{n:06d}")) for n in range(start, start + count)]
