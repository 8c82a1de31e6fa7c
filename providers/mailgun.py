"""Mailgun `POST /v3/{domain}/messages`: build form fields, post with aiohttp, parse.

The body is form-encoded with repeated `to`, `cc` and `bcc` fields; custom headers travel as
`h:<Name>`, tags and the `dispatcher_id` as `v:<name>` (Mailgun echoes these user variables in
its events). A 200 `{"id": "<...>", "message": "Queued. Thank you."}` is SENT; the id is kept
without its angle brackets, as Mailgun's events and webhooks write it. Other answers map as
`providers._common` draws it, with the error text taken from `{"message": ...}`. The form is
encoded here, as aiohttp's `FormData` would (UTF-8, `quote_plus`), at under half its CPU.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formataddr
from urllib.parse import urlencode

import aiohttp

from dispatcher.message import Address, Email
from providers._common import (
    Answer,
    body_text,
    check_given,
    check_url,
    failure,
    json_body,
    post,
)
from providers.base import BaseProvider, Outcome, Status
from providers.options import expect, read_options

DEFAULT_BASE_URL = "https://api.mailgun.net"
MAX_MESSAGE_BYTES = 25 * 1024 * 1024

FORM = "application/x-www-form-urlencoded"

Fields = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class MailgunOptions:
    """The keys of a `type = "mailgun"` entry."""

    api_key: str = field(repr=False)  # required; a secret (best set by environment variable)
    domain: str  # required: the sending domain, e.g. "mg.example.com"
    base_url: str = DEFAULT_BASE_URL  # "https://api.eu.mailgun.net" for an EU domain

    def __post_init__(self) -> None:
        check_given("api_key", self.api_key)
        check_given("domain", self.domain)
        check_url("base_url", self.base_url)


class Mailgun(BaseProvider):
    """One Mailgun sending domain, posting through a shared `aiohttp.ClientSession`."""

    def __init__(
        self,
        name: str,
        timeout_seconds: float,
        options: MailgunOptions,
        http: aiohttp.ClientSession,
    ) -> None:
        super().__init__(name, timeout_seconds, MAX_MESSAGE_BYTES, secrets=(options.api_key,))
        self._http = http
        self._url = f"{options.base_url.rstrip('/')}/v3/{options.domain}/messages"
        self._headers = {
            "Authorization": basic_auth("api", options.api_key),
            "Content-Type": FORM,
        }

    @classmethod
    def parse_options(cls, raw: Mapping[str, object]) -> MailgunOptions:
        return read_options(MailgunOptions, raw)

    @classmethod
    async def open(
        cls, name: str, timeout_seconds: float, options: object, http: aiohttp.ClientSession
    ) -> Mailgun:
        return cls(name, timeout_seconds, expect(options, MailgunOptions), http)

    async def send(self, email: Email) -> Outcome:
        return await self.exchange(self._post(urlencode(build(email)).encode()))

    async def _post(self, payload: bytes) -> Outcome:
        answer = await post(
            self._http, self._name, self._url, self._timeout, data=payload, headers=self._headers
        )
        return answer if isinstance(answer, Outcome) else parse(self._name, answer)


def build(email: Email) -> Fields:
    """The form fields for `email`, in order; repeated names are repeated fields."""
    fields: Fields = [("from", _mailbox(email.sender))]
    fields += [("to", _mailbox(a)) for a in email.to]
    fields += [("cc", _mailbox(a)) for a in email.cc]
    fields += [("bcc", _mailbox(a)) for a in email.bcc]
    fields.append(("subject", email.subject))
    if email.text is not None:
        fields.append(("text", email.text))
    if email.html is not None:
        fields.append(("html", email.html))
    if email.reply_to:
        fields.append(("h:Reply-To", ", ".join(_mailbox(a) for a in email.reply_to)))
    fields += [(f"h:{key}", value) for key, value in email.headers]
    variables = {**dict(email.tags), "dispatcher_id": email.id}
    fields += [(f"v:{key}", value) for key, value in variables.items()]
    return fields


def parse(provider: str, answer: Answer) -> Outcome:
    doc = json_body(answer.body)
    if 200 <= answer.status < 300:
        raw = doc.get("id") if isinstance(doc, dict) else None
        message_id = str(raw).strip().strip("<>") if raw else None
        return Outcome(Status.SENT, provider, provider_message_id=message_id)
    words = doc.get("message") if isinstance(doc, dict) else body_text(answer.body)
    return failure(provider, answer, str(words) if words else None)


def basic_auth(login: str, password: str) -> str:
    """The `Authorization` value for HTTP basic auth (aiohttp's `BasicAuth` is deprecated)."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


def _mailbox(address: Address) -> str:
    """`Name <address>`, quoted as RFC 5322 needs and RFC 2047-encoded when not ASCII."""
    return formataddr((address.name or "", address.email))
