"""From ledger records to API documents (REST and GraphQL share them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from dispatcher.api.models import BounceType, EmailStatus
from dispatcher.ledger import Record


def email_status(record: Record) -> EmailStatus:
    return EmailStatus(
        id=record.message_id,
        batch_id=record.batch_id,
        status=record.status.value,
        provider=record.provider,
        provider_message_id=record.provider_message_id,
        attempts=record.attempts,
        error=record.last_error,
        created_by=record.created_by,
        created_at=_time(record.created_at),
        updated_at=_time(record.updated_at),
        bounce_type=cast(BounceType, record.bounce_type) if record.bounce_type else None,
        event_at=_time(record.event_at),
        reason_code=record.reason_code,
    )


def _time(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)
