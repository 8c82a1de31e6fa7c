"""A fake Mailgun `POST /v3/{domain}/messages` that reads form fields as the real API does.

Basic auth `api:KEY` (401 "Forbidden" otherwise), 404 for another domain, 413 over 25 MB,
400 `{"message": ...}` for a missing or invalid field, else 200
`{"id": "<...@domain>", "message": "Queued. Thank you."}`. A `Receipt`'s `payload` is the form as
`{name: [values]}`, its `provider_id` the id without angle brackets (as Mailgun's events write
it), and its `dispatcher_id` the `v:dispatcher_id` field.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from typing import Any, ClassVar

from aiohttp import web

from providers.mailgun import basic_auth
from tests.fakes.faults import FakeServer, ThrottleStyle
from tests.fakes.views import parse_mailboxes

MAX_BYTES = 25 * 1024 * 1024
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
Form = dict[str, list[str]]


class FakeMailgun(FakeServer):
    kind: ClassVar[str] = "mailgun"
    throttle_style: ClassVar[ThrottleStyle] = "retry-after"
    max_body: ClassVar[int] = MAX_BYTES

    def __init__(self, *, domain: str = "mg.example.com", **options: Any) -> None:
        super().__init__(**options)
        self.domain = domain
        self._serial = itertools.count(1)

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
