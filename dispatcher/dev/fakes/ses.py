"""A fake SES v2 `SendEmail` (`POST /v2/email/outbound-emails`) for fault tests and the bench.

Moto is the reference SES; this fake exists for what moto cannot do: inject faults, and answer
fast. Errors are shaped as the restJson protocol shapes them (an `x-amzn-ErrorType` header and
`{"message": ...}`), so aiobotocore raises the same `ClientError` the real service causes.
The request must be SigV4-signed with `api_key` as the access key id; a sender outside
`verified` (when given) is refused with SES's "not verified" `MessageRejected`.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, ClassVar

import orjson
from aiohttp import web

from dispatcher.dev.fakes.faults import ThrottleStyle
from dispatcher.dev.fakes.server import FakeServer

MAX_RECIPIENTS = 50
_TAG_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_CODES = {
    400: "BadRequestException",
    403: "AccessDeniedException",
    404: "NotFoundException",
    429: "TooManyRequestsException",
    500: "InternalFailure",
    503: "ServiceUnavailable",
}


class FakeSes(FakeServer):
    kind: ClassVar[str] = "ses"
    throttle_style: ClassVar[ThrottleStyle] = "none"
    max_body: ClassVar[int] = 40 * 1024 * 1024

    def __init__(self, *, verified: set[str] | None = None, **options: Any) -> None:
        options.setdefault("api_key", "testing")
        super().__init__(**options)
        self.verified = verified

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v2/email/outbound-emails", self._send)]

    def error_response(self, status: int, message: str, code: str | None = None) -> web.Response:
        code = code or _CODES.get(status, "InternalFailure" if status >= 500 else "BadRequest")
        return web.json_response(
            {"message": message},
            status=status,
            headers={"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())},
        )

    async def _send(self, request: web.Request) -> web.Response:
        credential = f"AWS4-HMAC-SHA256 Credential={self.api_key}/"
        if not request.headers.get("Authorization", "").startswith(credential):
            return self.error_response(
                403,
                "The security token included in the request is invalid.",
                "UnrecognizedClientException",
            )
        try:
            doc = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self.error_response(400, "Request body is not valid JSON")
        problem = self._problem(doc)
        if problem is not None:
            return self.error_response(400, *problem)
        message_id = f"0100{uuid.uuid4().hex}-{uuid.uuid4()}-000000"
        tags = {t.get("Name"): t.get("Value") for t in doc.get("EmailTags", [])}
        self.record(message_id, doc, tags.get("dispatcher_id"))
        return web.json_response({"MessageId": message_id})

    def _problem(self, doc: Any) -> tuple[str, str] | None:
        if not isinstance(doc, dict) or not doc.get("FromEmailAddress"):
            return "FromEmailAddress is required", "BadRequestException"
        destination = doc.get("Destination") or {}
        count = sum(
            len(destination.get(k) or []) for k in ("ToAddresses", "CcAddresses", "BccAddresses")
        )
        if count == 0 or count > MAX_RECIPIENTS:
            return f"Recipient count must be 1..{MAX_RECIPIENTS}", "MessageRejected"
        if not all(
            _TAG_RE.match(str(t.get("Name"))) and _TAG_RE.match(str(t.get("Value")))
            for t in doc.get("EmailTags", [])
        ):
            return "Tag names and values may contain only A-Z a-z 0-9 _ -", "BadRequestException"
        sender = str(doc["FromEmailAddress"]).rpartition("<")[2].rstrip(">").lower()
        if self.verified is not None and not {sender, sender.rpartition("@")[2]} & self.verified:
            return (
                "Email address is not verified. The following identities failed the check "
                f"in region US-EAST-1: {sender}",
                "MessageRejected",
            )
        return None
