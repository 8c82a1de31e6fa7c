"""A ledger record as read back (HGETALL), the status vocabulary, and what `dispatcher.ledger`
takes and answers: claim requests and verdicts, settlements and their verdicts."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from dispatcher.message import MAX_TIMESTAMP, MessageError


class RecordStatus(enum.StrEnum):
    PENDING = "PENDING"  # accepted by the API, not on the queue yet
    QUEUED = "QUEUED"  # on the queue: first try, or a scheduled retry
    SENDING = "SENDING"  # a worker holds the claim
    SENT = "SENT"  # a provider accepted it
    ERROR = "ERROR"  # failed for good
    DELIVERED = "DELIVERED"  # the provider says the receiving server took it
    BOUNCED = "BOUNCED"  # the provider says it bounced (`bounce_type` hard or soft)
    COMPLAINED = "COMPLAINED"  # the recipient marked it as spam


@dataclass(frozen=True, slots=True)
class Record:
    message_id: str
    status: RecordStatus
    attempts: int
    provider: str | None
    provider_message_id: str | None
    last_error: str | None
    ambiguous_via: tuple[str, ...]
    batch_id: str | None
    created_at: float | None
    received_at: float | None
    updated_at: float | None
    sent_at: float | None
    created_by: str | None = None  # the API key's name, for messages sent through the API
    indexed_at: float | None = None  # its time in the status indexes (created_at, clamped)
    bounce_type: str | None = None  # hard or soft, when BOUNCED
    event_at: float | None = None  # the time of the webhook event behind its status
    reason_code: str | None = None  # the provider's reason (an SMTP status, a bounce subtype)


class ClaimVerdict(enum.StrEnum):
    CLAIMED = "CLAIMED"  # ours to send
    SENT = "SENT"  # already sent: delete without sending
    ERROR = "ERROR"  # already failed for good: delete without sending
    DEAD_LETTER = "DEAD_LETTER"  # failed for good; its DLQ copy may be missing: copy, then delete
    BUSY = "BUSY"  # another worker is sending it right now: leave it on the queue
    FAILED = "FAILED"  # Redis could not claim this record (an error about its key): retry later
    SUPPRESSED = "SUPPRESSED"  # a recipient is suppressed: now ERROR `suppressed`; delete


@dataclass(frozen=True, slots=True)
class Claim:
    message_id: str
    verdict: ClaimVerdict
    attempts: int  # attempts already recorded before this one
    busy_for: float = 0.0  # seconds left on another owner's lease, when BUSY
    reason: str = ""  # why, when DEAD_LETTER (the recorded error) or FAILED (the Redis error)
    same_provider: str = ""  # when CLAIMED after an ambiguous outcome under `retry_same`


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    message_id: str
    owner: str
    batch_id: str | None = None
    created_at: float | None = None  # epoch seconds, 0 to MAX_TIMESTAMP
    recipients: tuple[str, ...] = ()  # every to, cc and bcc: checked against the suppression list
    first_choice: str = ""  # the provider planned first: recorded as `via` before the call

    def __post_init__(self) -> None:
        """Refuse a time the record cannot hold as integer milliseconds (NaN and inf too)."""
        if self.created_at is not None and not 0 <= self.created_at <= MAX_TIMESTAMP:
            raise MessageError("created_at", "out of the ledger's range")


@dataclass(frozen=True, slots=True)
class Settlement:
    message_id: str
    owner: str
    status: RecordStatus  # SENT, QUEUED (retry) or ERROR (final)
    provider: str | None = None
    provider_message_id: str | None = None
    error: str | None = None
    count_attempt: bool = True
    ambiguous_via: str | None = None
    dead_letter: bool = False  # an ERROR that goes to the dead-letter queue


class SettleVerdict(enum.StrEnum):
    OK = "OK"
    SENT = "SENT"  # it was already SENT: nothing changed
    STALE = "STALE"  # our claim passed to another owner: leave the message alone
    FAILED = "FAILED"  # Redis could not write this record (an error about its key)


@dataclass(frozen=True, slots=True)
class Settled:
    message_id: str
    verdict: SettleVerdict
    attempts: int
    error: str = ""  # the Redis error, when FAILED


def parse_record(message_id: str, raw: dict[bytes | str, bytes | str]) -> Record | None:
    """A record from its hash fields (HGETALL), or None for an empty reply (no such record)."""
    if not raw:
        return None
    doc = {_text(k): _text(v) for k, v in raw.items()}
    via = doc.get("ambiguous_via")
    return Record(
        message_id=message_id,
        status=RecordStatus(doc["status"]),
        attempts=int(doc.get("attempts", "0")),
        provider=doc.get("provider"),
        provider_message_id=doc.get("provider_message_id"),
        last_error=doc.get("last_error"),
        ambiguous_via=tuple(via.split(",")) if via else (),
        batch_id=doc.get("batch_id"),
        created_at=_seconds(doc.get("created_at")),
        received_at=_seconds(doc.get("received_at")),
        updated_at=_seconds(doc.get("updated_at")),
        sent_at=_seconds(doc.get("sent_at")),
        created_by=doc.get("created_by"),
        indexed_at=_seconds(doc.get("ix")),
        bounce_type=doc.get("bounce_type"),
        event_at=_seconds(doc.get("event_at")),
        reason_code=doc.get("reason_code") or None,
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _seconds(millis: str | None) -> float | None:
    return int(millis) / 1000 if millis else None
