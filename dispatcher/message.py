"""Queue message schema v1: the typed, frozen `Email` and its orjson codec.

A producer puts one JSON object per SQS message::

    {"v": 1, "id": "order-42-receipt", "batch_id": "b-7",
     "from": {"email": "shop@example.com", "name": "Shop"},
     "to": [{"email": "ann@example.org", "name": "Ann"}],
     "cc": [], "bcc": [], "reply_to": [{"email": "help@example.com"}],
     "subject": "Your receipt", "text": "...", "html": "<p>...</p>",
     "headers": {"X-Order": "42"}, "tags": {"kind": "receipt"},
     "created_at": "2026-11-22T18:00:00Z"}

`id` is the idempotency key: one id is sent at most once, however often SQS delivers it.
`decode` raises `MessageError` naming the offending field; it never returns a half-valid email,
nor a value the ledger or a provider cannot hold. The rules for each field, and what an error
may show, are in `dispatcher.message_fields`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from dispatcher import message_fields as fields
from dispatcher.message_fields import MAX_RECIPIENTS, MAX_TIMESTAMP, Address, MessageError

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_RECIPIENTS",
    "MAX_TIMESTAMP",
    "SCHEMA_VERSION",
    "Address",
    "Email",
    "MessageError",
    "decode",
    "encode",
]

SCHEMA_VERSION = 1
MAX_BODY_BYTES = 256 * 1024  # the SQS message size limit
_FIELDS = frozenset(
    {
        "v",
        "id",
        "batch_id",
        "from",
        "to",
        "cc",
        "bcc",
        "reply_to",
        "subject",
        "text",
        "html",
        "headers",
        "tags",
        "created_at",
    }
)


@dataclass(frozen=True, slots=True)
class Email:
    id: str
    sender: Address
    to: tuple[Address, ...]
    subject: str
    text: str | None = None
    html: str | None = None
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    batch_id: str | None = None
    created_at: float | None = None  # seconds since the epoch, UTC
    size: int = field(default=0, compare=False)  # encoded size in bytes, for provider limits

    @property
    def recipient_count(self) -> int:
        return len(self.to) + len(self.cc) + len(self.bcc)


def decode(body: bytes | str) -> Email:
    """Parse one queue message body into an `Email`, or raise `MessageError`."""
    try:
        raw = body.encode() if isinstance(body, str) else body
    except UnicodeEncodeError:  # a lone surrogate
        raise MessageError("body", "not valid Unicode") from None
    if len(raw) > MAX_BODY_BYTES:
        raise MessageError("body", f"{len(raw)} bytes exceeds {MAX_BODY_BYTES}")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MessageError("body", f"not valid JSON ({exc.msg})") from None
    if not isinstance(doc, dict):
        raise MessageError("body", "must be a JSON object")
    return _email_from(doc, len(raw))


def encode(email: Email) -> bytes:
    """The schema v1 JSON for `email`; `decode(encode(e)) == e`."""
    doc: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "id": email.id,
        "from": _address_doc(email.sender),
        "to": [_address_doc(a) for a in email.to],
        "subject": email.subject,
    }
    optional: dict[str, Any] = {
        "batch_id": email.batch_id,
        "cc": [_address_doc(a) for a in email.cc],
        "bcc": [_address_doc(a) for a in email.bcc],
        "reply_to": [_address_doc(a) for a in email.reply_to],
        "text": email.text,
        "html": email.html,
        "headers": dict(email.headers),
        "tags": dict(email.tags),
        "created_at": _format_time(email.created_at) if email.created_at is not None else None,
    }
    doc.update({k: v for k, v in optional.items() if v not in (None, [], {})})
    return orjson.dumps(doc)


def _email_from(doc: dict[str, Any], size: int) -> Email:
    unknown = sorted(doc.keys() - _FIELDS)
    if unknown:
        raise MessageError(fields.shown(unknown[0]), "unknown field")
    if doc.get("v") != SCHEMA_VERSION:
        raise MessageError("v", f"must be {SCHEMA_VERSION}")
    email = Email(
        id=fields.identifier(doc.get("id"), "id", required=True) or "",
        batch_id=fields.identifier(doc.get("batch_id"), "batch_id", required=False),
        sender=fields.address(doc.get("from"), "from"),
        to=fields.addresses(doc.get("to"), "to", required=True),
        cc=fields.addresses(doc.get("cc"), "cc"),
        bcc=fields.addresses(doc.get("bcc"), "bcc"),
        reply_to=fields.addresses(doc.get("reply_to"), "reply_to"),
        subject=fields.subject(doc.get("subject")),
        text=fields.optional_text(doc.get("text"), "text"),
        html=fields.optional_text(doc.get("html"), "html"),
        headers=fields.headers(doc.get("headers")),
        tags=fields.tags(doc.get("tags")),
        created_at=fields.timestamp(doc.get("created_at")),
        size=size,
    )
    if email.text is None and email.html is None:
        raise MessageError("text", "one of text or html is required")
    if email.recipient_count > MAX_RECIPIENTS:
        raise MessageError(
            "to",
            f"{email.recipient_count} recipients across to, cc and bcc exceeds {MAX_RECIPIENTS}",
        )
    return email


def _format_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _address_doc(address: Address) -> dict[str, str]:
    return (
        {"email": address.email, "name": address.name} if address.name else {"email": address.email}
    )
