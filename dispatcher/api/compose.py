"""From a validated `POST /v1/emails` body to schema-v1 queue messages, one per `to` recipient.

The checks pydantic cannot make field by field (they span fields) run on the raw document too,
so that a 400 lists every problem at once.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from dispatcher import message
from dispatcher.api.errors import InvalidRequest, field_errors
from dispatcher.api.models import Address, EmailRequest
from dispatcher.message import Email, MessageError


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One queue message: its id, batch, recipient and schema-v1 body."""

    id: str
    batch_id: str
    to: str
    body: bytes


def parse_email_request(raw: bytes) -> EmailRequest:
    """Validate a request body, or raise InvalidRequest with every problem found."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest([("body", f"not valid JSON ({exc.msg})")]) from None
    if not isinstance(doc, dict):
        raise InvalidRequest([("body", "must be a JSON object")])
    errors = _across_fields(doc)
    try:
        request = EmailRequest.model_validate(doc)
    except ValidationError as exc:
        raise InvalidRequest(field_errors(exc) + errors) from None
    if errors:
        raise InvalidRequest(errors)
    return request


def _across_fields(doc: dict[str, Any]) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    to, cc, bcc = (doc.get(k) for k in ("to", "cc", "bcc"))
    if isinstance(to, list) and len(to) > 1:
        for name, value in (("cc", cc), ("bcc", bcc)):
            if value:
                errors.append(
                    (name, "only allowed with one `to` recipient: each `to` gets its own copy")
                )
    if not doc.get("text") and not doc.get("html"):
        errors.append(("text", "one of text or html is required"))
    if isinstance(to, list):
        seen: dict[str, int] = {}
        for i, item in enumerate(to):
            email = item.get("email") if isinstance(item, dict) else None
            if isinstance(email, str):
                if email.lower() in seen:
                    errors.append((f"to[{i}].email", f"same address as to[{seen[email.lower()]}]"))
                seen.setdefault(email.lower(), i)
    return errors


def message_ids(count: int, batch_id: str | None, idempotency: str | None) -> tuple[str, list[str]]:
    """(batch id, one id per recipient). With an idempotency digest they are derived from it, so
    that a retry of the request names the same messages."""
    stem = idempotency[:24] if idempotency else uuid.uuid4().hex
    return batch_id or f"b-{stem}", [f"e-{stem}-{n}" for n in range(count)]


def compose(
    request: EmailRequest, batch_id: str, ids: Sequence[str], now: float | None = None
) -> list[Outgoing]:
    """One schema-v1 message per `to` recipient; InvalidRequest when one would not fit."""
    created = time.time() if now is None else now
    found = []
    for message_id, recipient in zip(ids, request.to, strict=True):
        email = Email(
            id=message_id,
            batch_id=batch_id,
            sender=_address(request.sender),
            to=(_address(recipient),),
            cc=tuple(_address(a) for a in request.cc),
            bcc=tuple(_address(a) for a in request.bcc),
            reply_to=tuple(_address(a) for a in request.reply_to),
            subject=request.subject,
            text=request.text or None,
            html=request.html or None,
            headers=tuple(request.headers.items()),
            tags=tuple(request.tags.items()),
            created_at=created,
        )
        found.append(Outgoing(message_id, batch_id, recipient.email, encode_checked(email)))
    return found


_SQS_REFUSES = (b"\xef\xbf\xbe", b"\xef\xbf\xbf")  # U+FFFE, U+FFFF: not in SQS's character set


def encode_checked(email: Email) -> bytes:
    """The queue body, after the worker's own decoder (and SQS's character set) accepted it."""
    body = message.encode(email)
    if any(bad in body for bad in _SQS_REFUSES):
        raise InvalidRequest([("body", "contains U+FFFE or U+FFFF, which SQS refuses")])
    try:
        message.decode(body)
    except MessageError as exc:
        raise InvalidRequest([(exc.field, exc.reason)]) from None
    return body


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join([method.encode(), path.encode(), body])).hexdigest()


def _address(address: Address) -> message.Address:
    return message.Address(email=address.email, name=address.name or None)
