"""The chaos stack: real servers and real `dispatcher` processes that faults can kill.

    redis-server  `ChaosRedis` (AOF `everysec`, or no persistence), SIGKILLed and restarted
    TcpProxy      in front of Redis: every worker and the API connect through it (the 30 s cut)
    fauxqs        SQS; the workers reach it through `FailingGateway` (500 on every call while
                  `failing`), the API and the load writer directly
    fakes         SendGrid, Mailgun and SES fakes in this process, each with its fault rules
    processes     `dispatcher run` x N and `dispatcher api` as subprocesses, each printing to its
                  own log file (stdout and stderr), which the log scan reads afterwards

Secrets (the provider keys, the API key) reach the processes by environment variable only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from dispatcher.api.auth import hash_key
from dispatcher.dev.fakes import FakeMailgun, FakeSendGrid, FakeServer, FakeSes
from dispatcher.dev.stack import AWS_CREDENTIALS, QueuePair, RedisServer, free_port
from tests.support.sqs_gateway import SqsGateway
from tests.support.tcp_proxy import TcpProxy

MAILGUN_DOMAIN = "mg.chaos.example"
KEY_PREFIX = "chaos:"


@dataclass(frozen=True)
class Secrets:
    """Every secret the run hands out; the log scan looks for each of them."""

    api_key: str = field(default_factory=lambda: f"chaos-api-{uuid.uuid4().hex}")
    sendgrid_key: str = field(default_factory=lambda: f"SG.chaos-{uuid.uuid4().hex}")
    mailgun_key: str = field(default_factory=lambda: f"key-chaos-{uuid.uuid4().hex}")

    def all(self) -> list[str]:
        return [self.api_key, self.sendgrid_key, self.mailgun_key]


class ChaosRedis(RedisServer):
    """redis-server with AOF `appendfsync everysec` (`aof=True`) or no persistence at all."""

    name = "chaos-redis"

    def __init__(self, *, aof: bool) -> None:
        super().__init__()
        self.aof = aof

    def arguments(self) -> list[str]:
        base = super().arguments()
        if not self.aof:
            return base
        at = base.index("--appendonly")
        return [*base[:at], "--appendonly", "yes", "--appendfsync", "everysec", *base[at + 2 :]]

    def sigkill(self) -> None:
        """Kill -9: no shutdown save, no final fsync (what an OOM kill or a lost node does)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()


class FailingGateway(SqsGateway):
    """The SQS gateway answering every call with a 500 InternalError while `failing`."""

    failing = False
    injected = 0  # calls answered 500

    async def _forward(self, request: web.Request) -> web.Response:
        if self.failing:
            self.injected += 1
            await request.read()
            body = b'{"__type":"InternalError","message":"injected 500"}'
            return web.Response(status=500, body=body, content_type="application/x-amz-json-1.0")
        return await super()._forward(request)


@dataclass
class Fakes:
    sendgrid: FakeSendGrid
    mailgun: FakeMailgun
    ses: FakeSes

    def all(self) -> list[FakeServer]:
        return [self.sendgrid, self.mailgun, self.ses]

    def by_name(self, name: str) -> FakeServer:
        found: FakeServer = getattr(self, name)
        return found


def open_fakes(secrets: Secrets) -> Fakes:
    return Fakes(
        FakeSendGrid(api_key=secrets.sendgrid_key, seed=1),
        FakeMailgun(api_key=secrets.mailgun_key, domain=MAILGUN_DOMAIN, seed=2),
        FakeSes(seed=3),
    )


@dataclass(frozen=True)
class Endpoints:
    queues: QueuePair
    sqs_direct: str  # fauxqs itself
    sqs_workers: str  # the failing gateway
    redis_url: str  # through the TCP proxy
    fakes: Fakes


# One worker's settings (the API reads the same): short timeouts and leases, so that a
# compressed schedule settles quickly, and 5 s of routing memory, so that a provider avoided
# after one fault is sent to again in time for its next. Secrets come by environment variable.
CONFIG_TEMPLATE = """
[queue]
url = "{queue_url}"
endpoint_url = "{sqs_endpoint}"
dead_letter_url = "{dlq_url}"
wait_time_seconds = 1
visibility_timeout = 10
connect_timeout_seconds = 2
read_timeout_seconds = 5

[redis]
url = "{redis_url}"
key_prefix = "{key_prefix}"

[dispatch]
max_in_flight = 64
drain_seconds = 5
pollers = 2
backoff_base_seconds = 0.5
backoff_max_seconds = 4
max_attempts = 8
max_receives = 60
journal_path = "{journal}"

[routing]
window_seconds = 5
stale_seconds = 5
latency_decay_seconds = 2
slow_start_seconds = 3

[breaker]
open_seconds = 1
open_max_seconds = 4
minimum_calls = 10

[metrics]
host = "127.0.0.1"
port = {metrics_port}

[api]
api_keys_file = "{keys_file}"
port = {api_port}
lease_seconds = 3

[[providers]]
name = "sendgrid"
type = "sendgrid"
base_url = "{sendgrid_url}"
timeout_seconds = 2

[[providers]]
name = "mailgun"
type = "mailgun"
domain = "{mailgun_domain}"
base_url = "{mailgun_url}"
timeout_seconds = 2

[[providers]]
name = "ses"
type = "ses"
endpoint_url = "{ses_url}"
timeout_seconds = 2
"""


def worker_config(endpoints: Endpoints, journal: Path, metrics_port: int, api_port: int) -> str:
    fakes = endpoints.fakes
    return CONFIG_TEMPLATE.format(
        queue_url=endpoints.queues.url,
        sqs_endpoint=endpoints.sqs_workers,
        dlq_url=endpoints.queues.dlq_url,
        redis_url=endpoints.redis_url,
        key_prefix=KEY_PREFIX,
        journal=journal,
        metrics_port=metrics_port,
        keys_file=journal.parent / "api-keys",
        api_port=api_port,
        sendgrid_url=fakes.sendgrid.base_url,
        mailgun_domain=MAILGUN_DOMAIN,
        mailgun_url=fakes.mailgun.base_url,
        ses_url=fakes.ses.base_url,
    )


class DispatcherProcess:
    """`python -m dispatcher <command>` with its own config; restartable; output appended to
    `log_path` across restarts."""

    def __init__(self, name: str, command: str, config: Path, env: dict[str, str]) -> None:
        self.name, self.command, self.config, self.env = name, command, config, env
        self.log_path = config.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        args = [sys.executable, "-m", "dispatcher", self.command, "--config", str(self.config)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def signal(self, signum: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, seconds: float) -> int | None:
        """The exit status, after SIGKILL if it outlives `seconds`."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def process_env(secrets: Secrets) -> dict[str, str]:
    env = {**os.environ, **AWS_CREDENTIALS, "PYTHONUNBUFFERED": "1"}
    env["DISPATCHER_PROVIDERS__SENDGRID__API_KEY"] = secrets.sendgrid_key
    env["DISPATCHER_PROVIDERS__MAILGUN__API_KEY"] = secrets.mailgun_key
    return env


def write_processes(
    folder: Path, endpoints: Endpoints, secrets: Secrets, workers: int
) -> tuple[list[DispatcherProcess], DispatcherProcess, int, list[int]]:
    """Write the configs and key file; the worker processes, the API process, the API port,
    and the workers' metrics ports (nothing is started)."""
    (folder / "api-keys").write_text(f"chaos:{hash_key(secrets.api_key)}\n")
    env, api_port = process_env(secrets), free_port()
    found: list[DispatcherProcess] = []
    ports: list[int] = []
    for n in range(workers + 1):
        ports.append(free_port())
        text = worker_config(endpoints, folder / f"journal-{n}.jsonl", ports[-1], api_port)
        config = folder / (f"worker-{n}.toml" if n < workers else "api.toml")
        config.write_text(text)
        name, command = (f"worker-{n}", "run") if n < workers else ("api", "api")
        found.append(DispatcherProcess(name, command, config, env))
    return found[:-1], found[-1], api_port, ports[:-1]


async def start_proxy(redis: ChaosRedis) -> TcpProxy:
    return await TcpProxy("127.0.0.1", redis.port).start()


def stop_all(processes: list[DispatcherProcess]) -> dict[str, Any]:
    """SIGTERM every process at once, then wait for each (SIGKILL after 20 s); exit codes."""
    for process in processes:
        process.signal(signal.SIGTERM)
    return {p.name: p.wait(20) for p in processes}
