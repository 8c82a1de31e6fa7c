"""Amazon SQS through aiobotocore: send, receive, delete, change visibility, dead-letter.

Batch calls carry at most 10 entries (the SQS limit), and a batch of messages sent at most
`BATCH_BYTES` in all (the older, stricter of SQS's payload limits); larger lists are split and
the chunks sent concurrently. Each batch method returns the entries that failed, so the caller never
assumes a message was deleted or moved when it was not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

SQS_BATCH = 10
BATCH_BYTES = 262_144  # bodies plus attributes of one SendMessageBatch
SOURCE_ATTRIBUTE = "dispatcher_source_id"
MAX_VISIBILITY = 43_200
REASON_ATTRIBUTE = "dispatcher_error"
T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class Received:
    """One received SQS message. `receipt` is replaced when the same message is received anew."""

    sqs_id: str
    receipt: str
    body: str
    receive_count: int
    sent_at: float = 0.0  # epoch seconds SQS took it (SentTimestamp); 0 when not given


class SqsQueue:
    """One SQS queue and its dead-letter queue, over an open aiobotocore SQS client."""

    def __init__(
        self,
        client: Any,
        url: str,
        dead_letter_url: str,
        *,
        wait_seconds: int,
        visibility_timeout: int,
    ) -> None:
        self._client = client
        self.url = url
        self.dead_letter_url = dead_letter_url
        self.wait_seconds = wait_seconds  # the long-poll wait; 0 makes short polls
        self.visibility_timeout = visibility_timeout

    async def receive(
        self, max_messages: int = SQS_BATCH, wait_seconds: int | None = None
    ) -> list[Received]:
        reply = await self._client.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=self.wait_seconds if wait_seconds is None else wait_seconds,
            VisibilityTimeout=self.visibility_timeout,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        )
        return [_received(m) for m in reply.get("Messages", [])]

    async def delete(self, messages: Sequence[Received]) -> list[Received]:
        """Delete messages by their newest receipts; returns those that could not be deleted."""

        async def call(chunk: Sequence[Received]) -> list[Received]:
            reply = await self._client.delete_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(chunk)],
            )
            return [chunk[int(f["Id"])] for f in reply.get("Failed", [])]

        return await _chunked(messages, call)

    async def change_visibility(self, entries: Sequence[tuple[str, int]]) -> list[str]:
        """Set (receipt, seconds) visibility; returns the receipts that failed."""

        async def call(chunk: Sequence[tuple[str, int]]) -> list[str]:
            reply = await self._client.change_message_visibility_batch(
                QueueUrl=self.url,
                Entries=[
                    {
                        "Id": str(i),
                        "ReceiptHandle": r,
                        "VisibilityTimeout": max(0, min(MAX_VISIBILITY, int(s))),
                    }
                    for i, (r, s) in enumerate(chunk)
                ],
            )
            return [chunk[int(f["Id"])][0] for f in reply.get("Failed", [])]

        return await _chunked(entries, call)

    async def dead_letter(self, items: Sequence[tuple[Received, str]]) -> list[Received]:
        """Copy each message to the DLQ with its reason as an attribute, then delete it.

        A message is deleted only once the DLQ holds it; returns the ones left in place.
        """

        async def call(chunk: Sequence[tuple[Received, str]]) -> list[Received]:
            reply = await self._client.send_message_batch(
                QueueUrl=self.dead_letter_url,
                Entries=[
                    _dead_letter_entry(i, msg, reason) for i, (msg, reason) in enumerate(chunk)
                ],
            )
            failed = {int(f["Id"]) for f in reply.get("Failed", [])}
            moved = [msg for i, (msg, _) in enumerate(chunk) if i not in failed]
            undeleted = {id(m) for m in await self.delete(moved)}
            return [chunk[i][0] for i in sorted(failed)] + [m for m in moved if id(m) in undeleted]

        chunks = _by_size(items, lambda item: _dead_letter_size(*item))
        results = await asyncio.gather(*(call(chunk) for chunk in chunks))
        return [msg for failed in results for msg in failed]

    async def send_batch(self, messages: Sequence[tuple[str, bytes]]) -> list[str]:
        """Put (key, body) messages on the queue, in SendMessageBatch calls of at most ten;
        returns the keys of those SQS did not take (a failed entry, or a whole failed call)."""

        async def call(chunk: Sequence[tuple[str, bytes]]) -> list[str]:
            try:
                reply = await self._client.send_message_batch(
                    QueueUrl=self.url,
                    Entries=[
                        {"Id": str(i), "MessageBody": body.decode()}
                        for i, (_, body) in enumerate(chunk)
                    ],
                )
            except Exception:  # any failure of the call (botocore, aiohttp, timeout): not taken
                return [key for key, _ in chunk]
            return [chunk[int(f["Id"])][0] for f in reply.get("Failed", [])]

        chunks = _by_size(messages, lambda item: len(item[1]))
        results = await asyncio.gather(*(call(chunk) for chunk in chunks))
        return [key for failed in results for key in failed]

    async def depth(self) -> int:
        """Messages waiting plus in flight (approximate, as SQS reports it)."""
        reply = await self._client.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        attrs = reply.get("Attributes", {})
        return int(attrs.get("ApproximateNumberOfMessages", 0)) + int(
            attrs.get("ApproximateNumberOfMessagesNotVisible", 0)
        )


def _received(message: dict[str, Any]) -> Received:
    attributes = message.get("Attributes", {})
    return Received(
        message["MessageId"],
        message["ReceiptHandle"],
        message["Body"],
        int(attributes.get("ApproximateReceiveCount", "1")),
        int(attributes.get("SentTimestamp", "0")) / 1000,
    )


async def resolve_dead_letter_url(client: Any, url: str) -> str | None:
    """The DLQ named in the queue's RedrivePolicy, if it has one."""
    reply = await client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    policy = reply.get("Attributes", {}).get("RedrivePolicy")
    if not policy:
        return None
    arn = str(orjson.loads(policy)["deadLetterTargetArn"])
    account, name = arn.split(":")[4], arn.split(":")[5]
    found = await client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
    return str(found["QueueUrl"])


def _dead_letter_entry(index: int, msg: Received, reason: str) -> dict[str, Any]:
    """One SendMessageBatch entry; the reason is cut so that body and attributes fit in one
    message of BATCH_BYTES (the body came from SQS, so it fits on its own)."""
    room = BATCH_BYTES - len(msg.body.encode()) - _attributes_size(msg, "")
    return {
        "Id": str(index),
        "MessageBody": msg.body,
        "MessageAttributes": {
            REASON_ATTRIBUTE: {
                "DataType": "String",
                "StringValue": _cut(reason, max(1, min(1000, room))),
            },
            SOURCE_ATTRIBUTE: {"DataType": "String", "StringValue": msg.sqs_id},
        },
    }


def _attributes_size(msg: Received, reason: str) -> int:
    """What SQS counts of our two attributes: names, types and values, in bytes."""
    names = len(REASON_ATTRIBUTE) + len(SOURCE_ATTRIBUTE) + 2 * len("String")
    return names + len(reason.encode()) + len(msg.sqs_id.encode())


def _dead_letter_size(msg: Received, reason: str) -> int:
    return min(BATCH_BYTES, len(msg.body.encode()) + _attributes_size(msg, reason[:1000]))


def _cut(text: str, limit: int) -> str:
    """`text` cut to at most `limit` bytes of UTF-8, on a character boundary."""
    return text.encode()[:limit].decode(errors="ignore")


def _by_size(items: Sequence[T], size: Callable[[T], int]) -> list[list[T]]:
    """Split into batches of at most SQS_BATCH items and BATCH_BYTES in all, in order."""
    chunks: list[list[T]] = []
    total = 0
    for item in items:
        weight = size(item)
        if not chunks or len(chunks[-1]) == SQS_BATCH or total + weight > BATCH_BYTES:
            chunks.append([])
            total = 0
        chunks[-1].append(item)
        total += weight
    return chunks


async def _chunked(
    items: Sequence[T], call: Callable[[Sequence[T]], Awaitable[list[R]]]
) -> list[R]:
    chunks = [items[i : i + SQS_BATCH] for i in range(0, len(items), SQS_BATCH)]
    results = await asyncio.gather(*(call(chunk) for chunk in chunks))
    return [item for failed in results for item in failed]
