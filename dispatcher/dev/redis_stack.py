"""redis-server for the dev stack: one server, or a three-primary cluster."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from typing import Self

from dispatcher.dev.process import DevStackError, ServerProcess


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
