"""What a provider received, read back into one shape whatever its wire format.

`Seen` lets one assertion cover SendGrid JSON, Mailgun form fields and an SES v2 request:
addresses are `(name, email)` pairs with RFC 2047 names decoded, `tags` holds every custom
arg / user variable / message tag (the `dispatcher_id` among them).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.header import decode_header, make_header
from email.utils import getaddresses
from typing import Any

Mailbox = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Seen:
    sender: Mailbox
    to: tuple[Mailbox, ...]
    subject: str
    text: str | None = None
    html: str | None = None
    cc: tuple[Mailbox, ...] = ()
    bcc: tuple[Mailbox, ...] = ()
    reply_to: tuple[Mailbox, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()


def from_sendgrid(doc: dict[str, Any]) -> Seen:
    block = doc["personalizations"][0]
    content = {c["type"]: c["value"] for c in doc.get("content", [])}
    reply_to = [doc["reply_to"]] if "reply_to" in doc else doc.get("reply_to_list", [])
    return Seen(
        sender=_json_mailbox(doc["from"]),
        subject=doc.get("subject") or block["subject"],
        to=_json_mailboxes(block.get("to")),
        cc=_json_mailboxes(block.get("cc")),
        bcc=_json_mailboxes(block.get("bcc")),
        reply_to=_json_mailboxes(reply_to),
        text=content.get("text/plain"),
        html=content.get("text/html"),
        headers=_sorted(doc.get("headers", {}).items()),
        tags=_sorted(doc.get("custom_args", {}).items()),
    )


def from_mailgun(form: dict[str, list[str]]) -> Seen:
    def first(name: str) -> str | None:
        return form[name][0] if form.get(name) else None

    headers = [(k[2:], v[0]) for k, v in form.items() if k.startswith("h:") and k != "h:Reply-To"]
    return Seen(
        sender=parse_mailboxes(form["from"])[0],
        subject=form["subject"][0],
        to=parse_mailboxes(form.get("to", [])),
        cc=parse_mailboxes(form.get("cc", [])),
        bcc=parse_mailboxes(form.get("bcc", [])),
        reply_to=parse_mailboxes(form.get("h:Reply-To", [])),
        text=first("text"),
        html=first("html"),
        headers=_sorted(headers),
        tags=_sorted((k[2:], v[0]) for k, v in form.items() if k.startswith("v:")),
    )


def from_ses(request: dict[str, Any]) -> Seen:
    simple = request["Content"]["Simple"]
    body = simple["Body"]
    destination = request.get("Destination", {})
    return Seen(
        sender=parse_mailboxes([request["FromEmailAddress"]])[0],
        subject=simple["Subject"]["Data"],
        to=parse_mailboxes(destination.get("ToAddresses", [])),
        cc=parse_mailboxes(destination.get("CcAddresses", [])),
        bcc=parse_mailboxes(destination.get("BccAddresses", [])),
        reply_to=parse_mailboxes(request.get("ReplyToAddresses", [])),
        text=body.get("Text", {}).get("Data"),
        html=body.get("Html", {}).get("Data"),
        headers=_sorted((h["Name"], h["Value"]) for h in simple.get("Headers", [])),
        tags=_sorted((t["Name"], t["Value"]) for t in request.get("EmailTags", [])),
    )


def parse_mailboxes(values: list[str]) -> tuple[Mailbox, ...]:
    """`(name, email)` pairs from header-style values, RFC 2047 names decoded."""
    return tuple(
        (str(make_header(decode_header(name))) if name else "", email)
        for name, email in getaddresses(values)
    )


def _json_mailbox(doc: dict[str, str]) -> Mailbox:
    return doc.get("name") or "", doc["email"]


def _json_mailboxes(docs: list[dict[str, str]] | None) -> tuple[Mailbox, ...]:
    return tuple(_json_mailbox(d) for d in docs or [])


def _sorted(pairs: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in pairs))
