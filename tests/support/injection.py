"""Header-injection attacks, shared by the API and queue tests: a line break (CRLF, lone CR,
lone LF) or NUL followed by an injected header, or a value padded past RFC 5322's 998 octets."""

from __future__ import annotations

from typing import Any

from dispatcher.message_fields import shown

ATTACKS = ("crlf", "cr", "lf", "nul", "long")
BREAKS = {"crlf": "\r\n", "cr": "\r", "lf": "\n", "nul": "\x00"}
INJECTED = "Bcc: evil@example.net"
LONG_OCTETS = 999  # one over RFC 5322 §2.1.1's 998


def attacked(value: str, attack: str, *, address: bool = False) -> str:
    """`value` carrying `attack`: a break and an injected header, or padded to 999 octets (in
    the local part when it is an `address`)."""
    if attack != "long":
        return f"{value}{BREAKS[attack]}{INJECTED}"
    padding = "a" * (LONG_OCTETS - len(value.encode()))
    if address:
        local, _, domain = value.partition("@")
        return f"{local}{padding}@{domain}"
    return value + padding


ADDRESS_FIELDS = ("from", "to", "cc", "bcc", "reply_to")
# Every header-bearing field of a message, the same in an API request and a queue message.
FIELDS = (
    *(f"{where}.{part}" for where in ADDRESS_FIELDS for part in ("name", "email")),
    "subject",
    "headers.name",
    "headers.value",
    "tags.name",
    "tags.value",
)


def one_of_each() -> dict[str, Any]:
    """Fresh cc, bcc, reply_to, headers and tags, one entry each, for `inject` to reach."""
    return {
        "cc": [{"email": "cc@example.org", "name": "Cc"}],
        "bcc": [{"email": "bcc@example.org", "name": "Bcc"}],
        "reply_to": [{"email": "help@example.com", "name": "Help"}],
        "headers": {"X-Order": "42"},
        "tags": {"kind": "receipt"},
    }


def inject(doc: dict[str, Any], field: str, attack: str) -> set[str]:
    """Put `attack` in `field` of `doc` (a request or queue message with one entry in each
    list, header and tag map); returns the names an error may give the field (a map key as it
    is, or as `shown` gives it)."""
    where, _, part = field.partition(".")
    if where in ADDRESS_FIELDS:
        entry = doc[where] if where == "from" else doc[where][0]
        entry[part] = attacked(entry[part], attack, address=part == "email")
        return {f"{where}.{part}" if where == "from" else f"{where}[0].{part}"}
    if where == "subject":
        doc["subject"] = attacked(doc["subject"], attack)
        return {"subject"}
    key, value = next(iter(doc[where].items()))  # headers or tags
    if part == "name":
        key = attacked(key, attack)
        doc[where] = {key: value}
    else:
        doc[where] = {key: attacked(value, attack)}
    return {f"{where}.{key}", f"{where}.{shown(key)}"}
