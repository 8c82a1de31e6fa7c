"""The rules for each field of a queue message (schema v1, see `dispatcher.message`).

Each rule takes a decoded JSON value and returns it typed, or raises `MessageError` naming the
field. A value that passes fits everything downstream: the ledger keeps `created_at` as integer
milliseconds, and one-line values (subject, display names, header lines) carry no control
character a provider could read as a line break and fit RFC 5322's 998 octets
(`line_problem`). An error never carries a value, and shows a name the producer chose only when
it is a short token (see `shown`), so it can be logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_RECIPIENTS = 50  # SES v2 caps one message at 50 recipients across to, cc and bcc
MAX_ID_LENGTH = 200
MAX_SUBJECT_LENGTH = 998  # RFC 5322 line limit
MAX_LINE_OCTETS = 998  # RFC 5322 §2.1.1: a header line, CRLF excluded, in octets
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
# What a one-line value (subject, display name, header value) may not hold: any C0 control but
# tab, and DEL, NEL (U+0085) and the Unicode line and paragraph separators.
_BREAKING = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
_SHOWN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}")  # a producer's name shown in an error
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


def is_identifier(text: str) -> bool:
    """An `id` or `batch_id`: 1-200 of `A-Z a-z 0-9 . _ : @ / + = -`."""
    return bool(_ID_RE.fullmatch(text))


def is_address(text: str) -> bool:
    """An email address as schema v1 takes it (at most 320 characters)."""
    return len(text) <= 320 and bool(_EMAIL_RE.fullmatch(text))


def is_allowed_header(name: str) -> bool:
    """A header name a producer may set: printable, no colon, not one the dispatcher or a
    provider sets or reads as an instruction."""
    lowered = name.lower()
    return (
        bool(_HEADER_NAME_RE.fullmatch(name))
        and lowered not in RESERVED_HEADERS
        and not lowered.startswith(RESERVED_HEADER_PREFIXES)
    )


def line_problem(text: str) -> str | None:
    """Why `text` cannot go in a header line as it is, or None: it holds a line break or a
    control character (CR, LF, NUL, ...), or its UTF-8 is over `MAX_LINE_OCTETS` octets."""
    if _breaks_line(text):
        return "must be one line without control characters (CR, LF, NUL)"
    if len(text.encode("utf-8", "surrogatepass")) > MAX_LINE_OCTETS:
        return f"must be at most {MAX_LINE_OCTETS} octets (RFC 5322 line limit)"
    return None


def one_line(value: str, name: str) -> str:
    """`value`, if it fits in a header line (see `line_problem`); else MessageError naming it."""
    problem = line_problem(value)
    if problem:
        raise MessageError(name, problem)
    return value


def identifier(value: object, name: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise MessageError(name, "must be 1-200 characters of letters, digits and ._:@/+=-")
    return value


def address(value: object, name: str) -> Address:
    if isinstance(value, str):
        value = {"email": value}
    if not isinstance(value, dict):
        raise MessageError(name, "must be an object {email, name}")
    extra = sorted(value.keys() - _ADDRESS_FIELDS)
    if extra:
        raise MessageError(f"{name}.{shown(extra[0])}", "unknown field")
    email = value.get("email")
    if not isinstance(email, str) or len(email) > 320 or not _EMAIL_RE.fullmatch(email):
        raise MessageError(f"{name}.email", "not a valid address")
    display = value.get("name")
    if display is not None and not isinstance(display, str):
        raise MessageError(f"{name}.name", "must be a string")
    return Address(email=email, name=one_line(display, f"{name}.name") if display else None)


def addresses(value: object, name: str, *, required: bool = False) -> tuple[Address, ...]:
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
    found = tuple(address(item, f"{name}[{i}]") for i, item in enumerate(value))
    lowered = [a.email.lower() for a in found]
    if len(set(lowered)) != len(lowered):
        raise MessageError(name, "an address appears twice")
    return found


def subject(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MessageError("subject", "must be a non-empty string")
    return one_line(value, "subject")


def optional_text(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MessageError(name, "must be a string")
    return value or None


def headers(value: object) -> tuple[tuple[str, str], ...]:
    pairs = _string_map(value, "headers", MAX_HEADERS)
    for key, item in pairs:
        lowered = key.lower()
        if (
            not _HEADER_NAME_RE.fullmatch(key)
            or lowered in RESERVED_HEADERS
            or lowered.startswith(RESERVED_HEADER_PREFIXES)
        ):
            raise MessageError(f"headers.{shown(key)}", "not an allowed header name")
        problem = line_problem(item) or line_problem(f"{key}: {item}")
        if problem:
            raise MessageError(f"headers.{shown(key)}", f"the header line {problem}")
    return pairs


def tags(value: object) -> tuple[tuple[str, str], ...]:
    pairs = _string_map(value, "tags", MAX_TAGS)
    for key, item in pairs:
        if not _TAG_RE.fullmatch(key) or not _TAG_RE.fullmatch(item):
            raise MessageError(
                f"tags.{shown(key)}", "names and values are 1-128 of A-Z a-z 0-9 _ -"
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
            raise MessageError(f"{name}.{shown(key)}", "must be a string")
    return tuple(value.items())


def timestamp(value: object) -> float | None:
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


def _breaks_line(text: str) -> bool:
    return _BREAKING.search(text) is not None


def shown(name: str) -> str:
    """A name the producer chose, as an error shows it: a short token, else only its length."""
    return name if _SHOWN_NAME.fullmatch(name) else f"<{len(name)} chars>"


def _printable(text: str, limit: int) -> str:
    """`text` in printable ASCII (anything else backslash-escaped), cut to `limit` characters."""
    escaped = "".join(c if " " <= c <= "~" else ascii(c)[1:-1] for c in text[:limit])
    fits = len(escaped) <= limit and len(text) <= limit
    return escaped if fits else escaped[: limit - 3] + "..."
