"""The AWS emulators for the dev stack (moto_server and fauxqs) and clients for them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from dispatcher.dev.process import (
    LOCAL_OPENER,
    REPO,
    DevStackError,
    QueuePair,
    ServerProcess,
    http_ok,
)

FAUXQS_CLI = REPO / ".tools" / "node_modules" / "fauxqs" / "dist" / "cli.js"

AWS_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

# fauxqs's own cli.js passes `logger: true`, which overrides FAUXQS_LOGGER and logs every
# request, and it listens on 0.0.0.0. This starts the same server through the package's public
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
        return http_ok(f"{self.endpoint_url}/moto-api/")

    def reset(self) -> None:
        """Forget every queue, message and sent email."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        LOCAL_OPENER.open(request, timeout=10).close()


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
        return http_ok(f"{self.endpoint_url}/health")


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
