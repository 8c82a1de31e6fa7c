"""SendGrid v3 `POST /v3/mail/send`: build with the official helper, post with aiohttp, parse.

A 202 is SENT and keeps `X-Message-Id`; errors come as `{"errors": [{"message", "field"}]}` and
map as `providers._common` draws it. The payload carries the email's tags and its
`dispatcher_id` in `custom_args`, so SendGrid's event webhook can be joined back to the ledger.
SendGrid refuses an address twice in one personalization, so an address already in `to` is
dropped from `cc` and `bcc` (it gets the message once either way).

This module is the template of a provider: its options (`SendGridOptions`), the class the
registry holds (`SendGrid.parse_options`, `SendGrid.open`), then build, post, parse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from sendgrid.helpers.mail import (
    Bcc,
    Cc,
    CustomArg,
    From,
    Header,
    Mail,
    ReplyTo,
    To,
)
from sendgrid.helpers.mail.exceptions import ApiKeyIncludedException

from dispatcher.message import Address, Email
from providers._common import Answer, check_given, check_url, failure, json_body, post
from providers.base import BaseProvider, Outcome, Status
from providers.options import expect, read_options

DEFAULT_BASE_URL = "https://api.sendgrid.com"
MAX_MESSAGE_BYTES = 30 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SendGridOptions:
    """The keys of a `type = "sendgrid"` entry."""

    api_key: str = field(repr=False)  # required; a secret (best set by environment variable)
    base_url: str = DEFAULT_BASE_URL

    def __post_init__(self) -> None:
        check_given("api_key", self.api_key)
        check_url("base_url", self.base_url)


class SendGrid(BaseProvider):
    """One SendGrid account, posting through a shared `aiohttp.ClientSession`."""

    def __init__(
        self,
        name: str,
        timeout_seconds: float,
        options: SendGridOptions,
        http: aiohttp.ClientSession,
    ) -> None:
        super().__init__(name, timeout_seconds, MAX_MESSAGE_BYTES)
        self._http = http
        self._url = f"{options.base_url.rstrip('/')}/v3/mail/send"
        self._headers = {
            "Authorization": f"Bearer {options.api_key}",
            "Content-Type": "application/json",
        }

    @classmethod
    def parse_options(cls, raw: Mapping[str, object]) -> SendGridOptions:
        return read_options(SendGridOptions, raw)

    @classmethod
    async def open(
        cls, name: str, timeout_seconds: float, options: object, http: aiohttp.ClientSession
    ) -> SendGrid:
        return cls(name, timeout_seconds, expect(options, SendGridOptions), http)

    async def _send(self, email: Email) -> Outcome:
        try:
            payload = orjson.dumps(build(email))
        except (ValueError, TypeError, KeyError):  # the helper refuses what it cannot encode
            return Outcome(
                Status.REJECTED,
                self._name,
                error="invalid_message",
                detail="the SendGrid helper could not build this message",
            )
        except ApiKeyIncludedException:
            return Outcome(
                Status.REJECTED,
                self._name,
                error="api_key_in_content",
                detail="the content looks like a SendGrid API key",
            )
        answer = await post(
            self._http, self._name, self._url, self._timeout, data=payload, headers=self._headers
        )
        return answer if isinstance(answer, Outcome) else parse(self._name, answer)


def build(email: Email) -> dict[str, Any]:
    """The `/v3/mail/send` JSON body for `email`."""
    mail = Mail(
        from_email=_mailbox(From, email.sender),
        subject=email.subject,
        plain_text_content=email.text,
        html_content=email.html,
    )
    seen: set[str] = set()
    for address in _unique(email.to, seen):
        mail.add_to(_mailbox(To, address))
    for address in _unique(email.cc, seen):
        mail.add_cc(_mailbox(Cc, address))
    for address in _unique(email.bcc, seen):
        mail.add_bcc(_mailbox(Bcc, address))
    if len(email.reply_to) == 1:
        mail.reply_to = _mailbox(ReplyTo, email.reply_to[0])
    elif email.reply_to:
        mail.reply_to_list = [_mailbox(ReplyTo, a) for a in email.reply_to]
    for key, value in email.headers:
        mail.add_header(Header(key, value))
    for key, value in {**dict(email.tags), "dispatcher_id": email.id}.items():
        mail.add_custom_arg(CustomArg(key, value))
    body: dict[str, Any] = mail.get()
    return body


def parse(provider: str, answer: Answer) -> Outcome:
    if 200 <= answer.status < 300:
        return Outcome(
            Status.SENT, provider, provider_message_id=answer.headers.get("X-Message-Id")
        )
    return failure(provider, answer, _error_text(answer.body))


def _mailbox(kind: type[Any], address: Address) -> Any:
    """A helper address object, set field by field: given an address alone, the helper would
    run it through `parseaddr`, which blanks what it cannot parse."""
    mailbox = kind()
    mailbox.email = address.email
    if address.name:
        mailbox.name = address.name
    return mailbox


def _unique(addresses: tuple[Address, ...], seen: set[str]) -> list[Address]:
    fresh = []
    for address in addresses:
        if address.email.lower() not in seen:
            seen.add(address.email.lower())
            fresh.append(address)
    return fresh


def _error_text(body: bytes) -> str | None:
    doc = json_body(body)
    if isinstance(doc, dict) and isinstance(doc.get("errors"), list):
        words = [str(e.get("message")) for e in doc["errors"] if isinstance(e, dict)]
        return "; ".join(w for w in words if w) or None
    return None
