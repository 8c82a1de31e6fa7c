"""Locust scenarios for the bench stack. Locust always runs in its own process (gevent), started by
`bench/load.py` or by hand; nothing here is imported by the dispatcher.

    IntakeUser      scenario 1, intake: SendMessageBatch (10 messages) to `--queue-url` as fast
                    as it can (until the intake HTTP API exists, producers enqueue directly)
    EndToEndUser    scenario 2: the same batches, paced at `--batches-per-second` per user, to
                    the queue a dispatcher drains
    ReceiptWatcher  scenario 2, one per run: polls the fakes' `/_control/receipts` and reports
                    each accept as a request "E2E enqueue→accepted" whose response time is
                    accept time - created_at (carried in the message's `created_ms` tag)

    locust -f bench/locustfile.py --headless -u 20 -r 20 -t 30s IntakeUser \
        --sqs-endpoint http://127.0.0.1:PORT --queue-url URL
    locust -f bench/locustfile.py --headless -u 11 -r 11 -t 30s EndToEndUser ReceiptWatcher \
        --sqs-endpoint URL --queue-url URL --fake-urls http://127.0.0.1:P1,http://127.0.0.1:P2

SQS calls use a synchronous botocore client (gevent makes it cooperative) and report through
`events.request`, so they appear in locust's stats like HTTP requests.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from botocore.config import Config
from botocore.session import get_session
from locust import User, constant, constant_throughput, events, task

CREATED_TAG = "created_ms"
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _arguments(parser: Any) -> None:
    parser.add_argument("--sqs-endpoint", default="", help="SQS (fauxqs) endpoint URL")
    parser.add_argument("--queue-url", default="", help="queue to enqueue to")
    parser.add_argument("--fake-urls", default="", help="fake provider base URLs, comma-separated")
    parser.add_argument(
        "--batches-per-second", type=float, default=2.0, help="EndToEndUser pace, per user"
    )


_parser_hook: Any = events.init_command_line_parser  # locust's EventHook is untyped
_parser_hook.add_listener(_arguments)


def body(message_id: str, index: int) -> str:
    """A schema v1 message (as dispatcher.dev.messages.email_doc), its creation time as a tag."""
    now = time.time()
    doc = {
        "v": 1,
        "id": message_id,
        "batch_id": "load",
        "from": {"email": "shop@example.com", "name": "Shop"},
        "to": [{"email": f"user{index}@example.org", "name": f"User {index}"}],
        "subject": f"Order {index}",
        "text": "Thanks for your order.",
        "html": "<p>Thanks for your order.</p>",
        "tags": {"kind": "load", CREATED_TAG: str(int(now * 1000))},
        "created_at": now,
    }
    return orjson.dumps(doc).decode()


class Enqueuer(User):
    """Sends batches of 10 messages with ids `<run>-<user>-<n>`."""

    abstract = True

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.url = str(options.queue_url)
        self.sqs = get_session().create_client(
            "sqs",
            endpoint_url=options.sqs_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard"}),
        )
        self.prefix = f"ld-{uuid.uuid4().hex[:8]}"
        self.serial = itertools.count()

    @task
    def send_batch(self) -> None:
        entries = []
        for slot in range(10):
            n = next(self.serial)
            entries.append({"Id": str(slot), "MessageBody": body(f"{self.prefix}-{n:07d}", n)})
        started = time.perf_counter()
        error: Exception | None = None
        try:
            reply = self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries)
            if reply.get("Failed"):
                error = RuntimeError(f"{len(reply['Failed'])} entries failed")
        except Exception as exc:  # reported to locust as a failed request, never raised
            error = exc
        self.environment.events.request.fire(
            request_type="SQS",
            name="SendMessageBatch (10 messages)",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=len(entries),
            exception=error,
            context={},
        )


class IntakeUser(Enqueuer):
    wait_time = constant(0)


class EndToEndUser(Enqueuer):
    def on_start(self) -> None:
        super().on_start()
        self._pace: Callable[[User], float] = constant_throughput(
            float(self.environment.parsed_options.batches_per_second)
        )

    def wait_time(self) -> float:
        return self._pace(self)


class ReceiptWatcher(User):
    """Turns the fakes' receipts into an end-to-end latency metric."""

    fixed_count = 1
    wait_time = constant(0.5)

    def on_start(self) -> None:
        urls = str(self.environment.parsed_options.fake_urls).split(",")
        self.offsets = {url: int(_get(f"{url}/_control/stats")["received"]) for url in urls if url}

    @task
    def poll(self) -> None:
        for url, offset in self.offsets.items():
            found = _get(f"{url}/_control/receipts?offset={offset}")
            self.offsets[url] = int(found["next"])
            for receipt in found["receipts"]:
                created = created_ms(receipt["payload"])
                if created is None:
                    continue
                self.environment.events.request.fire(
                    request_type="E2E",
                    name="enqueue→accepted",
                    response_time=receipt["received_at"] * 1000 - created,
                    response_length=0,
                    exception=None,
                    context={},
                )


def created_ms(payload: Any) -> float | None:
    """The `created_ms` tag of a SendGrid JSON body or a Mailgun form, if any."""
    if not isinstance(payload, dict):
        return None
    value = (payload.get("custom_args") or {}).get(CREATED_TAG)
    if value is None:
        value = next(iter(payload.get(f"v:{CREATED_TAG}") or []), None)
    return float(value) if value is not None else None


def _get(url: str) -> Any:
    with _LOCAL.open(url, timeout=30) as response:
        return json.loads(response.read())
