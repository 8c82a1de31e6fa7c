"""A fake SendGrid v3 `POST /v3/mail/send` that checks the payload as the real API does.

Bearer auth (401 on a wrong key), 413 over 30 MB, 400 `{"errors": [{"message", "field"}]}` for a
malformed payload (the first problem found, worded like SendGrid), else 202 with `X-Message-Id`.
Each accepted message is a `Receipt` whose `payload` is the JSON body and whose `dispatcher_id`
is `custom_args.dispatcher_id`.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from typing import Any, ClassVar

import orjson
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dispatcher.dev.fakes.faults import Receipt, ThrottleStyle
from dispatcher.dev.fakes.server import FakeServer

MAX_BYTES = 30 * 1024 * 1024
MAX_RECIPIENTS = 1000
MAX_CUSTOM_ARGS_BYTES = 10_000
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

Problem = tuple[str, str | None]  # (message, field)


class FakeSendGrid(FakeServer):
    kind: ClassVar[str] = "sendgrid"
    throttle_style: ClassVar[ThrottleStyle] = "ratelimit"
    max_body: ClassVar[int] = MAX_BYTES

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.signing_key = ec.generate_private_key(ec.SECP256R1())

    @property
    def webhook_public_key(self) -> str:
        """The verification key to configure (`webhooks.sendgrid_public_key`)."""
        der = self.signing_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v3/mail/send", self._send)]

    def webhook_request(self, receipt: Receipt, outcome: str) -> tuple[bytes, dict[str, str]]:
        return self.sign(orjson.dumps([event(receipt, outcome)]))

    def sign(self, body: bytes, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
        """`body` with the Event Webhook's signature headers."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.signing_key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return body, {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }

    def error_response(self, status: int, message: str, code: str | None = None) -> web.Response:
        error = {"message": message, "field": code, "help": None}
        return web.json_response({"errors": [error]}, status=status)

    async def _send(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.error_response(
                401, "The provided authorization grant is invalid, expired, or revoked"
            )
        raw = await request.read()
        if len(raw) > MAX_BYTES:
            return self.error_response(413, "Payload Too Large")
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self.error_response(400, "Bad Request")
        problem = validate(doc)
        if problem is not None:
            return self.error_response(400, *problem)
        message_id = secrets.token_urlsafe(16)
        custom_args = doc.get("custom_args") or {}
        self.record(message_id, doc, custom_args.get("dispatcher_id"))
        return web.Response(status=202, headers={"X-Message-Id": message_id})


def event(receipt: Receipt, outcome: str) -> dict[str, Any]:
    """One Event Webhook event about `receipt`, as SendGrid posts it (custom args at the top)."""
    doc = receipt.payload
    found: dict[str, Any] = {
        **(doc.get("custom_args") or {}),
        "email": doc["personalizations"][0]["to"][0]["email"],
        "timestamp": int(time.time()),
        "sg_event_id": secrets.token_urlsafe(16),
        "sg_message_id": f"{receipt.provider_id}.recvd-5f7b-1-6543-2.0",
        "smtp-id": f"<{receipt.provider_id}@ismtpd0001p1mdw1.sendgrid.net>",
    }
    if outcome == "bounce":
        reason = "550 5.1.1 The email account that you tried to reach does not exist."
        return {**found, "event": "bounce", "type": "bounce", "status": "5.1.1", "reason": reason}
    if outcome == "complaint":
        return {**found, "event": "spamreport"}
    return {**found, "event": "delivered", "response": "250 OK"}


def validate(doc: Any) -> Problem | None:
    """The first problem SendGrid would report for `doc`, or None."""
    if not isinstance(doc, dict):
        return "Bad Request", None
    return (
        _sender(doc.get("from"))
        or _personalizations(doc.get("personalizations"))
        or _subject(doc)
        or _content(doc.get("content"))
        or _extras(doc)
    )


def _sender(value: Any) -> Problem | None:
    if not isinstance(value, dict) or "email" not in value:
        return (
            "The from object must be provided for every email send. It is an object that "
            "requires the email parameter, but may also contain a name parameter.",
            "from",
        )
    if not _valid(value["email"]):
        return "The from email does not contain a valid address.", "from.email"
    return None


def _personalizations(value: Any) -> Problem | None:
    if not isinstance(value, list) or not value or len(value) > 1000:
        return (
            "The personalizations field is required and must have at least one personalization.",
            "personalizations",
        )
    total = 0
    for index, block in enumerate(value):
        problem = _personalization(block, f"personalizations.{index}")
        if problem is not None:
            return problem
        total += sum(len(block.get(kind) or []) for kind in ("to", "cc", "bcc"))
    if total > MAX_RECIPIENTS:
        return f"The total number of recipients must be no more than {MAX_RECIPIENTS}.", None
    return None


def _personalization(block: Any, where: str) -> Problem | None:
    if not isinstance(block, dict) or not isinstance(block.get("to"), list) or not block["to"]:
        return (
            "The to array is required for all personalization objects, and must have at "
            "least one email object with a valid email address.",
            f"{where}.to",
        )
    seen: set[str] = set()
    for kind in ("to", "cc", "bcc"):
        for index, address in enumerate(block.get(kind) or []):
            email = address.get("email") if isinstance(address, dict) else None
            if not _valid(email):
                return "Does not contain a valid address.", f"{where}.{kind}.{index}.email"
            if str(email).lower() in seen:
                return (
                    "Each email address in the personalization block should be unique "
                    "between to, cc, and bcc. We found the first duplicate instance of "
                    f"[{email}] in the {where}.{kind} field.",
                    f"{where}.{kind}",
                )
            seen.add(str(email).lower())
    return None


def _subject(doc: dict[str, Any]) -> Problem | None:
    blocks = doc["personalizations"]
    if _text(doc.get("subject")) or all(_text(b.get("subject")) for b in blocks):
        return None
    return (
        "The subject is required. You can get around this requirement if you use a "
        "template with a subject defined or if every personalization has a subject "
        "defined.",
        "subject",
    )


def _content(value: Any) -> Problem | None:
    if not isinstance(value, list) or not value:
        return (
            "Unless a valid template_id is provided, the content parameter is required. "
            "There must be at least one defined content block.",
            "content",
        )
    for index, block in enumerate(value):
        if not isinstance(block, dict) or not _text(block.get("type")):
            return "The content type is required.", f"content.{index}.type"
        if not _text(block.get("value")):
            return "The content value must be a string at least one character in length.", (
                f"content.{index}.value"
            )
    types = [block["type"] for block in value]
    if "text/plain" in types and types[0] != "text/plain":
        return "If present, text/plain content must be first.", "content.0.type"
    return None


def _extras(doc: dict[str, Any]) -> Problem | None:
    if "reply_to" in doc and "reply_to_list" in doc:
        return "The reply_to and reply_to_list properties cannot both be set.", "reply_to_list"
    reply_to = [doc["reply_to"]] if "reply_to" in doc else doc.get("reply_to_list", [])
    if not all(isinstance(a, dict) and _valid(a.get("email")) for a in reply_to):
        return "The reply_to email does not contain a valid address.", "reply_to.email"
    for name in ("headers", "custom_args"):
        if not _string_map(doc.get(name, {})):
            return f"Invalid type. Expected: object of strings, given: {name}.", name
    if len(orjson.dumps(doc.get("custom_args", {}))) > MAX_CUSTOM_ARGS_BYTES:
        return "The custom_args object must be less than 10000 bytes.", "custom_args"
    return None


def _valid(email: Any) -> bool:
    return isinstance(email, str) and bool(_EMAIL_RE.match(email))


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
