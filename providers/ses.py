"""Amazon SES v2 `SendEmail`: the request signed by botocore's own SigV4 signer, posted over the
shared aiohttp session like every HTTP provider (an aiobotocore client call costs about ten times
a plain POST in CPU). Credentials are found the AWS way (environment, profile, instance or task
role) by aiobotocore's resolver, and refreshed by it. Error answers map so::

    MessageRejected, BadRequestException, other 4xx         REJECTED
    MessageRejected "not verified" naming our sender         DOWN misconfigured (sender)
    MailFromDomainNotVerified, NotFound, auth and signature  DOWN misconfigured
    SendingPaused, AccountSuspended, daily quota exceeded    DOWN misconfigured (open for long)
    TooManyRequests, Throttling, "Maximum sending rate"      THROTTLED (SES gives no reset time)
    LimitExceededException otherwise                         REJECTED (resource counts, not rate)
    503 / ServiceUnavailable                                 DOWN
    500 and other 5xx                                        AMBIGUOUS
    no credentials at all                                    DOWN misconfigured
Transport errors map as for every HTTP provider (`providers._common.transport_outcome`).

Tag values may hold only `A-Z a-z 0-9 _ -`, so the `dispatcher_id` tag is `tag_value(email.id)`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formataddr
from typing import Any

import aiohttp
import orjson
from aiobotocore.session import get_session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from dispatcher.message import Address, Email
from providers._common import Answer, json_body, post, scrub
from providers.base import BaseProvider, Outcome, Status
from providers.options import expect, read_options

DEFAULT_REGION = "us-east-1"
MAX_MESSAGE_BYTES = 40 * 1024 * 1024
SEND_PATH = "/v2/email/outbound-emails"
JSON = "application/json"
SIGNING_NAME = "ses"  # SES v2 signs as "ses"
_TAG_KEPT = re.compile(r"[A-Za-z0-9-]{1,256}")

_MISCONFIGURED = frozenset(
    {
        "MailFromDomainNotVerifiedException",
        "NotFoundException",
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidSignatureException",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "ConfigurationSetDoesNotExistException",
    }
)
_PAUSED = frozenset({"SendingPausedException", "AccountSuspendedException"})
_THROTTLED = frozenset({"TooManyRequestsException", "Throttling", "ThrottlingException"})
_UNAVAILABLE = frozenset({"ServiceUnavailable", "ServiceUnavailableException"})


@dataclass(frozen=True, slots=True)
class SesOptions:
    """The keys of a `type = "ses"` entry; credentials come the AWS way (environment, profile,
    instance role), never from here."""

    region: str = DEFAULT_REGION
    endpoint_url: str | None = None  # a local SES endpoint (moto); None: AWS's own
    configuration_set: str | None = None  # sent with every message when set


class Ses(BaseProvider):
    """One SES v2 region, posting signed requests through a shared `aiohttp.ClientSession`."""

    def __init__(
        self,
        name: str,
        timeout_seconds: float,
        options: SesOptions,
        http: aiohttp.ClientSession,
        credentials: Any,
    ) -> None:
        super().__init__(name, timeout_seconds, MAX_MESSAGE_BYTES)
        self._configuration_set = options.configuration_set
        self._region = options.region or DEFAULT_REGION
        root = options.endpoint_url or f"https://email.{self._region}.amazonaws.com"
        self._url = root.rstrip("/") + SEND_PATH
        self._http = http
        self._credentials = credentials  # aiobotocore's (refreshing) credentials, or None

    @classmethod
    def parse_options(cls, raw: Mapping[str, object]) -> SesOptions:
        return read_options(SesOptions, raw)

    @classmethod
    async def open(
        cls, name: str, timeout_seconds: float, options: object, http: aiohttp.ClientSession
    ) -> Ses:
        """Resolve the AWS credentials once; requests go through `http`."""
        credentials = await get_session().get_credentials()
        return cls(name, timeout_seconds, expect(options, SesOptions), http, credentials)

    async def send(self, email: Email) -> Outcome:
        if self._credentials is None:
            return Outcome(
                Status.DOWN,
                self._name,
                error="no_credentials",
                detail="no AWS credentials found",
                misconfigured=True,
            )
        body = orjson.dumps(build(email, self._configuration_set))
        return await self.exchange(self._post(body, email.sender))

    async def _post(self, body: bytes, sender: Address) -> Outcome:
        """Sign, post, parse (`sender` names the identity in an unverified-sender error)."""
        headers = await self._signed(body)
        answer = await post(
            self._http, self._name, self._url, self._timeout, data=body, headers=headers
        )
        return answer if isinstance(answer, Outcome) else parse(self._name, answer, sender)

    async def _signed(self, body: bytes) -> dict[str, str]:
        """The headers of a SigV4-signed POST of `body` (botocore signs; nothing hand-made)."""
        frozen = await self._credentials.get_frozen_credentials()
        request = AWSRequest("POST", self._url, data=body, headers={"Content-Type": JSON})
        SigV4Auth(frozen, SIGNING_NAME, self._region).add_auth(request)
        return dict(request.headers.items())


def build(email: Email, configuration_set: str | None = None) -> dict[str, Any]:
    """The `SendEmail` keyword arguments for `email`."""
    destination = {
        key: [_mailbox(a) for a in addresses]
        for key, addresses in (
            ("ToAddresses", email.to),
            ("CcAddresses", email.cc),
            ("BccAddresses", email.bcc),
        )
        if addresses
    }
    body = {
        key: {"Data": value, "Charset": "UTF-8"}
        for key, value in (("Text", email.text), ("Html", email.html))
        if value is not None
    }
    simple: dict[str, Any] = {"Subject": {"Data": email.subject, "Charset": "UTF-8"}, "Body": body}
    if email.headers:
        simple["Headers"] = [{"Name": k, "Value": v} for k, v in email.headers]
    tags = {**dict(email.tags), "dispatcher_id": tag_value(email.id)}
    request: dict[str, Any] = {
        "FromEmailAddress": _mailbox(email.sender),
        "Destination": destination,
        "Content": {"Simple": simple},
        "EmailTags": [{"Name": k, "Value": v} for k, v in tags.items()],
    }
    if email.reply_to:
        request["ReplyToAddresses"] = [_mailbox(a) for a in email.reply_to]
    if configuration_set:
        request["ConfigurationSetName"] = configuration_set
    return request


def tag_value(text: str) -> str:
    """`text` as an SES tag value (`A-Z a-z 0-9 _ -`, at most 256), one to one.

    Text of letters, digits and `-` is kept; otherwise every other character (`_` included) is
    written `_XX` per UTF-8 byte, so kept and escaped values never collide. Past 256 characters the
    value is the SHA-256 of `text`.
    """
    if _TAG_KEPT.fullmatch(text):
        return text
    escaped = "".join(
        c if _TAG_KEPT.fullmatch(c) else "".join(f"_{b:02X}" for b in c.encode()) for c in text
    )
    return escaped if len(escaped) <= 256 else hashlib.sha256(text.encode()).hexdigest()


def parse(provider: str, answer: Answer, sender: Address) -> Outcome:
    """The `Outcome` of an SES answer: its `MessageId`, or its error mapped (module docstring)."""
    doc = json_body(answer.body)
    fields = doc if isinstance(doc, dict) else {}
    if 200 <= answer.status < 300:
        message_id = fields.get("MessageId")
        return Outcome(Status.SENT, provider, provider_message_id=message_id or None)
    code = answer.headers.get("x-amzn-ErrorType", "").split(":")[0]
    code = code or str(fields.get("__type", "")).rpartition("#")[2]
    message = str(fields.get("message") or fields.get("Message") or "")
    return error_outcome(provider, code, message, answer.status, sender)


def error_outcome(provider: str, code: str, message: str, http: int, sender: Address) -> Outcome:
    """Map an SES error (its code, words and HTTP status) onto the vocabulary."""
    status, misconfigured = _classify(code, message.lower(), http, sender)
    return Outcome(
        status,
        provider,
        error=code or f"http_{http}",
        detail=scrub(message) or None,
        misconfigured=misconfigured,
    )


def _classify(code: str, message: str, http: int, sender: Address) -> tuple[Status, bool]:
    if (
        code == "MessageRejected"
        and "not verified" in message
        and (sender.email.lower() in message or sender.domain.lower() in message)
    ):
        return Status.DOWN, True
    if code in _MISCONFIGURED or code in _PAUSED or "daily message quota" in message:
        return Status.DOWN, True
    if code in _THROTTLED or "maximum sending rate" in message:
        return Status.THROTTLED, False
    if code in _UNAVAILABLE or http in (502, 503):
        return Status.DOWN, False
    if 400 <= http < 500 or code in ("MessageRejected", "BadRequestException"):
        return Status.REJECTED, False
    return Status.AMBIGUOUS, False


def _mailbox(address: Address) -> str:
    """`Name <address>`; a non-ASCII name is RFC 2047-encoded, as SES requires."""
    return formataddr((address.name or "", address.email))
