"""A fake Mailgun `POST /v3/{domain}/messages` that reads form fields as the real API does.

Basic auth `api:KEY` (401 "Forbidden" otherwise), 404 for another domain, 413 over 25 MB,
400 `{"message": ...}` for a missing or invalid field, else 200
`{"id": "<...@domain>", "message": "Queued. Thank you."}`. A `Receipt`'s `payload` is the form as
`{name: [values]}`, its `provider_id` the id without angle brackets (as Mailgun's events write
it), and its `dispatcher_id` the `v:dispatcher_id` field.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
import secrets
import time
from typing import Any, ClassVar

import orjson
from aiohttp import web

from dispatcher.dev.fakes.faults import Receipt, ThrottleStyle
from dispatcher.dev.fakes.server import FakeServer
from dispatcher.dev.fakes.views import parse_mailboxes
from providers.mailgun import basic_auth

MAX_BYTES = 25 * 1024 * 1024
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
Form = dict[str, list[str]]


class FakeMailgun(FakeServer):
    kind: ClassVar[str] = "mailgun"
    throttle_style: ClassVar[ThrottleStyle] = "retry-after"
    max_body: ClassVar[int] = MAX_BYTES

    def __init__(
        self,
        *,
        domain: str = "mg.example.com",
        signing_key: str = "test-webhook-signing-key",
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.domain = domain
        self.signing_key = signing_key  # `webhooks.mailgun_signing_key`
        self._serial = itertools.count(1)

    def webhook_request(self, receipt: Receipt, outcome: str) -> tuple[bytes, dict[str, str]]:
        return orjson.dumps(
            {"signature": self.signature(), "event-data": event_data(receipt, outcome)}
        ), {}

    def signature(self, timestamp: int | None = None, token: str | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        token = token or secrets.token_hex(25)
        mac = hmac.new(self.signing_key.encode(), f"{stamp}{token}".encode(), hashlib.sha256)
        return {"timestamp": stamp, "token": token, "signature": mac.hexdigest()}

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v3/{domain}/messages", self._send)]

    async def _send(self, request: web.Request) -> web.Response:
        if not self._authorized(request.headers.get("Authorization", "")):
            return web.Response(status=401, text="Forbidden")
        if request.match_info["domain"] != self.domain:
            return self.error_response(404, f"Domain not found: {request.match_info['domain']}")
        if (request.content_length or 0) > MAX_BYTES:
            return self.error_response(413, "request entity too large")
        form = await request.post()
        fields: Form = {key: [str(v) for v in form.getall(key)] for key in form}
        problem = validate(fields)
        if problem is not None:
            return self.error_response(400, problem)
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        message_id = f"{stamp}.{next(self._serial)}.{secrets.token_hex(6).upper()}@{self.domain}"
        dispatcher_id = next(iter(fields.get("v:dispatcher_id", [])), None)
        self.record(message_id, fields, dispatcher_id)
        return web.json_response({"id": f"<{message_id}>", "message": "Queued. Thank you."})

    def _authorized(self, header: str) -> bool:
        return header == basic_auth("api", self.api_key)


def event_data(receipt: Receipt, outcome: str) -> dict[str, Any]:
    """Mailgun's `event-data` about `receipt` (user variables echoed, as Mailgun does)."""
    form: Form = receipt.payload
    variables = {k[2:]: v[0] for k, v in form.items() if k.startswith("v:") and v}
    found: dict[str, Any] = {
        "id": secrets.token_urlsafe(16),
        "timestamp": time.time(),
        "recipient": form["to"][0].rpartition("<")[2].rstrip(">").strip(),
        "message": {"headers": {"message-id": receipt.provider_id}},
        "user-variables": variables,
    }
    if outcome == "bounce":
        status = {"code": 550, "message": "5.1.1 The email account does not exist"}
        return {
            **found,
            "event": "failed",
            "severity": "permanent",
            "reason": "bounce",
            "delivery-status": status,
        }
    if outcome == "complaint":
        return {**found, "event": "complained"}
    return {**found, "event": "delivered", "delivery-status": {"code": 250, "message": "OK"}}


def validate(fields: Form) -> str | None:
    """The message Mailgun would answer with 400 for `fields`, or None."""
    for name in ("from", "to", "subject"):
        if not fields.get(name) or not fields[name][0].strip():
            return f"'{name}' parameter is missing"
    for name in ("from", "to", "cc", "bcc", "h:Reply-To"):
        if not all(_valid(address) for _, address in parse_mailboxes(fields.get(name, []))):
            return f"'{name}' parameter is not a valid address. please check documentation"
    if not any(fields.get(name) for name in ("text", "html", "template")):
        return "Need at least one of 'text', 'html' or 'template' parameters specified"
    return None


def _valid(address: str) -> bool:
    return bool(_EMAIL_RE.match(address))
