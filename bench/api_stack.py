"""What bench/api.py runs and reads: `dispatcher api` as a process, its config, its RSS peak,
and Redis's bytes per message."""

from __future__ import annotations

import json
import sys
import threading
import urllib.request
from pathlib import Path

from redis import Redis

from bench.stack import KEY_PREFIX, Stack, child_environment, memory_mb
from dispatcher.dev.stack import ServerProcess

API_KEY = "bench-api-key"
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ApiProcess(ServerProcess):
    """`python -m dispatcher api --config FILE`, ready once /healthz answers."""

    name = "api"
    attempts = 1
    startup_timeout = 60.0

    def __init__(self, config: Path, port: int) -> None:
        super().__init__()
        self.config = config
        self.api_port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def executable(self) -> list[str]:
        return [sys.executable, "-m", "dispatcher"]

    def arguments(self) -> list[str]:
        return ["api", "--config", str(self.config)]

    def environment(self) -> dict[str, str]:
        return child_environment()

    def ready(self) -> bool:
        try:
            with _LOCAL.open(f"{self.url}/healthz", timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid


def api_toml(stack: Stack, queue_url: str, dlq_url: str, port: int, keys: Path) -> str:
    return f"""\
[queue]
url = "{queue_url}"
endpoint_url = "{stack.sqs.endpoint_url}"
dead_letter_url = "{dlq_url}"

[redis]
url = "{stack.redis.url}"
key_prefix = "{KEY_PREFIX}"

[api]
port = {port}
api_keys_file = "{keys}"

[log]
level = "warning"

[[providers]]
name = "sim"
type = "simulated"
"""


class RssPeak(threading.Thread):
    """The highest RSS (MB) of a process while it runs, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = memory_mb(pid)["VmRSS"]
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, memory_mb(self.pid)["VmRSS"])

    def stop(self) -> float:
        self._done.set()
        self.join()
        return self.peak


def write_campaign(path: Path, rows: int) -> None:
    with path.open("w") as out:
        out.write("email,name\n")
        for n in range(rows):
            out.write(f"customer{n}@example.org,Customer {n}\n")


def redis_bytes(url: str) -> dict[str, float]:
    """Mean MEMORY USAGE of a record, and of all index keys divided by the records."""
    with Redis.from_url(url) as client:
        records = indexes = 0
        record_bytes = index_bytes = 0
        for key in client.scan_iter(match=f"{{{KEY_PREFIX}s*", count=1000):
            size = int(client.memory_usage(key, samples=0) or 0)
            if b":m:" in key:
                records += 1
                record_bytes += size
            else:
                indexes += 1
                index_bytes += size
    return {
        "records": float(records),
        "record": record_bytes / max(1, records),
        "indexes": index_bytes / max(1, records),
        "index_keys": float(indexes),
    }


def used_memory(url: str) -> int:
    with Redis.from_url(url) as client:
        info: dict[str, object] = client.info("memory")
        return int(str(info["used_memory"]))


def batch_total(api: ApiProcess, batch_id: str) -> int:
    request = urllib.request.Request(
        f"{api.url}/v1/batches/{batch_id}?limit=1",
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    with _LOCAL.open(request, timeout=30) as reply:
        return int(json.loads(reply.read())["total"])
