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
nor a value the ledger or a provider cannot hold. An error shows a name the producer chose only
when it is a short token (else its length), and never a value, so it can be logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

SCHEMA_VERSION = 1
MAX_RECIPIENTS = 50  # SES v2 caps one message at 50 recipients across to, cc and bcc
MAX_BODY_BYTES = 256 * 1024  # the SQS message size limit
MAX_ID_LENGTH = 200
MAX_SUBJECT_LENGTH = 998  # RFC 5322 line limit
MAX_HEADERS = 50
MAX_TAGS = 10
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z, in epoch seconds
MAX_FIELD_CHARS = 64  # what a `MessageError.field` may show
MAX_REASON_CHARS = 200

_ID_RE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,200}$")
_ATOM = r"[^@\s<>(),;:\"\[\]\x00-\x1f\x7f]+"  # no controls, spaces or specials
_EMAIL_RE = re.compile(rf"^{_ATOM}@{_ATOM}\.{_ATOM}$")
_HEADER_NAME_RE = re.compile(r"^[!-9;-~]+$")  # printable ASCII without colon (RFC 5322)
_TAG_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# What a one-line value (subject, display name, header value) may not hold: every C0 control
# but tab, DEL, NEL and the Unicode line and paragraph separators.
_BREAKING = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
_SHOWN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}")  # a producer's name shown in an error
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
_ADDRESS_FIELDS = frozenset({"email", "name"})
# Headers the dispatcher or provider sets itself; a producer may not override them.
RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "reply-to",
        "sender",
        "date",
        "message-id",
        "content-type",
        "content-transfer-encoding",
        "mime-version",
        "return-path",
    }
)
# Provider-control headers: SES, Mailgun and SendGrid (X-SMTPAPI) read them as instructions.
RESERVED_HEADER_PREFIXES = ("x-ses-", "x-mailgun-", "x-smtpapi")


class MessageError(ValueError):
    """A queue message that cannot be sent as it is. `field` names where it went wrong.

    Both are safe to log: printable ASCII (anything else escaped), `field` cut to
    `MAX_FIELD_CHARS` and `reason` to `MAX_REASON_CHARS`.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = _printable(field, MAX_FIELD_CHARS)
        self.reason = _printable(reason, MAX_REASON_CHARS)
        super().__init__(f"{self.field}: {self.reason}")


@dataclass(frozen=True, slots=True)
class Address:
    email: str
    name: str | None = None

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]


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
        raise MessageError(_shown(unknown[0]), "unknown field")
    if doc.get("v") != SCHEMA_VERSION:
        raise MessageError("v", f"must be {SCHEMA_VERSION}")
    email = Email(
        id=_identifier(doc.get("id"), "id", required=True) or "",
        batch_id=_identifier(doc.get("batch_id"), "batch_id", required=False),
        sender=_address(doc.get("from"), "from"),
        to=_addresses(doc.get("to"), "to", required=True),
        cc=_addresses(doc.get("cc"), "cc"),
        bcc=_addresses(doc.get("bcc"), "bcc"),
        reply_to=_addresses(doc.get("reply_to"), "reply_to"),
        subject=_subject(doc.get("subject")),
        text=_optional_text(doc.get("text"), "text"),
        html=_optional_text(doc.get("html"), "html"),
        headers=_headers(doc.get("headers")),
        tags=_tags(doc.get("tags")),
        created_at=_timestamp(doc.get("created_at")),
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


def _identifier(value: object, name: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise MessageError(name, "must be 1-200 characters of letters, digits and ._:@/+=-")
    return value


def _address(value: object, name: str) -> Address:
    if isinstance(value, str):
        value = {"email": value}
    if not isinstance(value, dict):
        raise MessageError(name, "must be an object {email, name}")
    extra = sorted(value.keys() - _ADDRESS_FIELDS)
    if extra:
        raise MessageError(f"{name}.{_shown(extra[0])}", "unknown field")
    email = value.get("email")
    if not isinstance(email, str) or len(email) > 320 or not _EMAIL_RE.fullmatch(email):
        raise MessageError(f"{name}.email", "not a valid address")
    display = value.get("name")
    if display is not None and (not isinstance(display, str) or _breaks_line(display)):
        raise MessageError(f"{name}.name", "must be a string without control characters")
    return Address(email=email, name=display or None)


def _addresses(value: object, name: str, *, required: bool = False) -> tuple[Address, ...]:
    if not required and (value is None or value == []):
        return ()
    if value is None:
        value = []
    elif isinstance(value, dict | str):
        value = [value]
    if not isinstance(value, list):
        raise MessageError(name, "must be a list of {email, name}")
    if required and not value:
        raise MessageError(name, "at least one recipient is required")
    if len(value) > MAX_RECIPIENTS:
        raise MessageError(name, f"at most {MAX_RECIPIENTS} addresses")
    found = tuple(_address(item, f"{name}[{i}]") for i, item in enumerate(value))
    lowered = [a.email.lower() for a in found]
    if len(set(lowered)) != len(lowered):
        raise MessageError(name, "an address appears twice")
    return found


def _subject(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MessageError("subject", "must be a non-empty string")
    if len(value) > MAX_SUBJECT_LENGTH or _breaks_line(value):
        raise MessageError(
            "subject", f"at most {MAX_SUBJECT_LENGTH} characters, one line, no control characters"
        )
    return value


def _optional_text(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MessageError(name, "must be a string")
    return value or None


def _headers(value: object) -> tuple[tuple[str, str], ...]:
    pairs = _string_map(value, "headers", MAX_HEADERS)
    for key, item in pairs:
        lowered = key.lower()
        if (
            not _HEADER_NAME_RE.fullmatch(key)
            or lowered in RESERVED_HEADERS
            or lowered.startswith(RESERVED_HEADER_PREFIXES)
        ):
            raise MessageError(f"headers.{_shown(key)}", "not an allowed header name")
        if _breaks_line(item):
            raise MessageError(f"headers.{_shown(key)}", "value must be one line, no controls")
    return pairs


def _tags(value: object) -> tuple[tuple[str, str], ...]:
    pairs = _string_map(value, "tags", MAX_TAGS)
    for key, item in pairs:
        if not _TAG_RE.fullmatch(key) or not _TAG_RE.fullmatch(item):
            raise MessageError(
                f"tags.{_shown(key)}", "names and values are 1-128 of A-Z a-z 0-9 _ -"
            )
    return pairs


def _string_map(value: object, name: str, limit: int) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise MessageError(name, "must be an object of strings")
    if len(value) > limit:
        raise MessageError(name, f"at most {limit} entries")
    for key, item in value.items():
        if not isinstance(item, str):
            raise MessageError(f"{name}.{_shown(key)}", "must be a string")
    return tuple(value.items())


def _timestamp(value: object) -> float | None:
    """Epoch seconds from 1970 to 9999: the ledger keeps them as integer milliseconds."""
    if value is None:
        return None
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _iso_seconds(value)
    if seconds is None or not 0 <= seconds <= MAX_TIMESTAMP:
        raise MessageError(
            "created_at", "must be an ISO 8601 time or epoch seconds between 1970 and 9999"
        )
    return seconds


def _iso_seconds(text: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _format_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _address_doc(address: Address) -> dict[str, str]:
    return (
        {"email": address.email, "name": address.name} if address.name else {"email": address.email}
    )


def _breaks_line(text: str) -> bool:
    return _BREAKING.search(text) is not None


def _shown(name: str) -> str:
    """A name the producer chose, as an error shows it: a short token, else only its length."""
    return name if _SHOWN_NAME.fullmatch(name) else f"<{len(name)} chars>"


def _printable(text: str, limit: int) -> str:
    """`text` in printable ASCII (anything else backslash-escaped), cut to `limit` characters."""
    shown = "".join(c if " " <= c <= "~" else ascii(c)[1:-1] for c in text[:limit])
    return shown if len(shown) <= limit and len(text) <= limit else shown[: limit - 3] + "..."
