"""The local stack for the demo, the bench and the tests: redis-server, moto_server and fauxqs.

Each server is a subprocess on 127.0.0.1 and a free port, with its own temp dir holding a log
of everything the process prints. Use it synchronously (`with RedisServer() as redis:` or
`start()` / `stop()`; `restart()` keeps the port) or asynchronously (`async with Fauxqs() as
sqs:`; starting runs in a thread). A failed start raises `DevStackError` with the tail of the
log. Processes never outlive the caller: `stop()` kills them, an atexit hook stops any still
running, and fauxqs also exits when our end of its stdin closes (even if this process is
SIGKILLed).

Nothing global is set: pass `AWS_CREDENTIALS` (or use `sqs_client`) to talk to the emulators.
"""

from __future__ import annotations

import abc
import asyncio
import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple, Self

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

REPO = Path(__file__).resolve().parents[2]
FAUXQS_CLI = REPO / ".tools" / "node_modules" / "fauxqs" / "dist" / "cli.js"
AWS_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

# fauxqs's own cli.js passes `logger: true`, which overrides FAUXQS_LOGGER and logs every
# request, and it listens on 0.0.0.0. This starts the same server through the package's public
# `buildApp` on 127.0.0.1 only, logging only when FAUXQS_LOGGER=true, and exits when stdin closes.
_FAUXQS_BOOT = """
const { buildApp } = await import(process.env.FAUXQS_APP_URL);
const app = buildApp({ logger: process.env.FAUXQS_LOGGER === "true" });
await app.listen({ port: Number(process.env.FAUXQS_PORT), host: "127.0.0.1" });
const quit = () => app.close().finally(() => process.exit(0));
process.on("SIGTERM", quit);
process.on("SIGINT", quit);
process.stdin.on("end", quit);
process.stdin.on("error", quit);
process.stdin.resume();
"""


class DevStackError(RuntimeError):
    """A local server is missing or did not start; the message says what to do."""


class QueuePair(NamedTuple):
    url: str
    dlq_url: str


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via HTTP_PROXY


def _http_ok(url: str) -> bool:
    try:
        with _LOCAL.open(url, timeout=1) as response:
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


class RedisServer(ServerProcess):
    """redis-server without persistence; `.url` is redis://127.0.0.1:PORT/0."""

    name = "redis"
    startup_timeout = 10.0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def executable(self) -> list[str]:
        found = os.environ.get("DEVSTACK_REDIS_SERVER") or shutil.which("redis-server")
        if not found and os.access("/usr/bin/redis-server", os.X_OK):
            found = "/usr/bin/redis-server"
        if not found:
            raise DevStackError(
                "redis-server not found: run `make deps` (or `apt-get install redis-server`), "
                "or set DEVSTACK_REDIS_SERVER to its path"
            )
        return [found]

    def arguments(self) -> list[str]:
        return [
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.temp_dir)),
            *("--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""),
        ]

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


class ClusterNode(RedisServer):
    """One primary of a `RedisCluster` (cluster mode on, its own nodes file)."""

    name = "redis-cluster-node"

    def arguments(self) -> list[str]:
        return [
            *super().arguments(),
            *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
            *("--cluster-node-timeout", "2000"),
        ]


class RedisCluster:
    """A real three-primary Redis Cluster (no replicas) from the Debian `redis-server`, made with
    `redis-cli --cluster create`. `.url` names one node; cluster clients discover the rest."""

    def __init__(self, primaries: int = 3) -> None:
        self.nodes = [ClusterNode() for _ in range(primaries)]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> Self:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while not self._ok():
            if time.monotonic() > deadline:
                self.stop()
                raise DevStackError("the Redis cluster did not reach cluster_state:ok")
            time.sleep(0.1)
        return self

    def _ok(self) -> bool:
        cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        for node in self.nodes:
            info = subprocess.run(
                [cli, "-p", str(node.port), "cluster", "info"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout
            if "cluster_state:ok" not in info:
                return False
        return True

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class MotoServer(ServerProcess):
    """moto_server (all services, e.g. SQS and SES). Clients pass `AWS_CREDENTIALS`."""

    name = "moto"
    startup_timeout = 30.0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def executable(self) -> list[str]:
        binary = Path(sys.executable).with_name("moto_server")
        if not binary.exists():
            binary = Path(shutil.which("moto_server") or binary)
        if not binary.exists():
            raise DevStackError("moto_server not found: run `make deps` (installs moto[server])")
        return [str(binary), "-H", "127.0.0.1"]

    def arguments(self) -> list[str]:
        return ["-p", str(self.port)]

    def environment(self) -> dict[str, str]:
        return {**os.environ, **AWS_CREDENTIALS, "PYTHONUNBUFFERED": "1"}

    def ready(self) -> bool:
        return _http_ok(f"{self.endpoint_url}/moto-api/")

    def reset(self) -> None:
        """Forget every queue, message and sent email."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        _LOCAL.open(request, timeout=10).close()


class Fauxqs(ServerProcess):
    """fauxqs (SQS, in-memory, fast). Queue URLs look like
    http://sqs.us-east-1.localhost:PORT/000000000000/NAME and are matched exactly: use the URL
    create_queue / get_queue_url returns, and send requests to `.endpoint_url`."""

    name = "fauxqs"
    startup_timeout = 15.0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def cli_path() -> Path:
        return Path(os.environ.get("DEVSTACK_FAUXQS_CLI") or FAUXQS_CLI)

    @classmethod
    def installed(cls) -> bool:
        return cls.cli_path().with_name("app.js").is_file() and shutil.which("node") is not None

    def executable(self) -> list[str]:
        node = shutil.which("node")
        if not self.installed() or node is None:
            raise DevStackError(
                f"fauxqs not found at {self.cli_path()} (or node missing): run `make fauxqs`, "
                "or set DEVSTACK_FAUXQS_CLI to fauxqs's dist/cli.js"
            )
        return [node, "--input-type=module", "-e", _FAUXQS_BOOT]

    def environment(self) -> dict[str, str]:
        app = self.cli_path().resolve().with_name("app.js").as_uri()
        return {
            **os.environ,
            "FAUXQS_PORT": str(self.port),
            "FAUXQS_LOGGER": os.environ.get("FAUXQS_LOGGER", "false"),
            "FAUXQS_APP_URL": app,
        }

    def _stdin(self) -> int:
        return subprocess.PIPE  # held open by us: fauxqs quits when it closes

    def ready(self) -> bool:
        return _http_ok(f"{self.endpoint_url}/health")


def aws_client(service: str, endpoint_url: str, region: str = "us-east-1", **config: Any) -> Any:
    """An aiobotocore client context manager for a local endpoint, with the test credentials.
    `config` goes to AioConfig (default max_pool_connections=50)."""
    return get_session().create_client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=AWS_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=AioConfig(**{"max_pool_connections": 50, **config}),
    )


def sqs_client(endpoint_url: str, region: str = "us-east-1", **config: Any) -> Any:
    """`async with sqs_client(url) as sqs:` an aiobotocore SQS client (credentials "testing")."""
    return aws_client("sqs", endpoint_url, region, **config)


async def create_queue_pair(
    sqs_client: Any, name: str, *, max_receive_count: int = 10, visibility_timeout: int = 60
) -> QueuePair:
    """Create `<name>-dlq` and `<name>` redriving to it after `max_receive_count` receives."""
    dlq_url: str = (await sqs_client.create_queue(QueueName=f"{name}-dlq"))["QueueUrl"]
    reply = await sqs_client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
    arn, count = reply["Attributes"]["QueueArn"], str(max_receive_count)
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": count})
    attributes = {"VisibilityTimeout": str(visibility_timeout), "RedrivePolicy": policy}
    created = await sqs_client.create_queue(QueueName=name, Attributes=attributes)
    return QueuePair(created["QueueUrl"], dlq_url)


async def queue_depth(sqs_client: Any, url: str) -> int:
    """Messages visible plus in flight (ApproximateNumberOfMessages + ...NotVisible)."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    reply = await sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=names)
    return sum(int(reply["Attributes"].get(name, 0)) for name in names)
