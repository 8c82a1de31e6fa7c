"""Amazon SES v2 `SendEmail` through aiobotocore: build the request, call, map the error code.

botocore's own retries are off (the dispatcher owns retry). Error codes map so::

    MessageRejected, BadRequestException, other 4xx         REJECTED
    MessageRejected "not verified" naming our sender         DOWN misconfigured (sender)
    MailFromDomainNotVerified, NotFound, auth and signature  DOWN misconfigured
    SendingPaused, AccountSuspended, daily quota exceeded    DOWN misconfigured (open for long)
    TooManyRequests, Throttling, "Maximum sending rate"      THROTTLED (SES gives no reset time)
    LimitExceededException otherwise                         REJECTED (resource counts, not rate)
    503 / ServiceUnavailable, connection never opened        DOWN
    500 and other 5xx, read timeout, connection closed       AMBIGUOUS

Tag values may hold only `A-Z a-z 0-9 _ -`, so the `dispatcher_id` tag is `tag_value(email.id)`.
"""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from email.utils import formataddr
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from dispatcher.message import Address, Email
from providers._common import scrub
from providers.base import BaseProvider, Outcome, Status
from providers.options import expect, read_options

DEFAULT_REGION = "us-east-1"
MAX_MESSAGE_BYTES = 40 * 1024 * 1024
MAX_POOL_CONNECTIONS = 128
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
    """One SES v2 region; owns its aiobotocore client (open with `Ses.open`)."""

    def __init__(
        self,
        name: str,
        timeout_seconds: float,
        options: SesOptions,
        client: Any,
        stack: AsyncExitStack,
    ) -> None:
        super().__init__(name, timeout_seconds, MAX_MESSAGE_BYTES)
        self._configuration_set = options.configuration_set
        self._client = client
        self._stack = stack

    @classmethod
    def parse_options(cls, raw: Mapping[str, object]) -> SesOptions:
        return read_options(SesOptions, raw)

    @classmethod
    async def open(
        cls, name: str, timeout_seconds: float, options: object, http: aiohttp.ClientSession
    ) -> Ses:
        """A client of its own (`http` is not used); `aclose` closes it."""
        ses = expect(options, SesOptions)
        config = AioConfig(
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=timeout_seconds / 2,
            read_timeout=timeout_seconds,
            max_pool_connections=MAX_POOL_CONNECTIONS,
        )
        stack = AsyncExitStack()
        client = await stack.enter_async_context(
            get_session().create_client(
                "sesv2",
                region_name=ses.region,
                endpoint_url=ses.endpoint_url,
                config=config,
            )
        )
        return cls(name, timeout_seconds, ses, client, stack)

    async def aclose(self) -> None:
        await self._stack.aclose()

    async def _send(self, email: Email) -> Outcome:
        try:
            answer = await self._client.send_email(**build(email, self._configuration_set))
        except ClientError as exc:
            return client_error(self._name, exc, email.sender)
        except BotoCoreError as exc:
            return transport_error(self._name, exc)
        return Outcome(Status.SENT, self._name, provider_message_id=answer.get("MessageId"))


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


def client_error(provider: str, exc: ClientError, sender: Address) -> Outcome:
    """Map an SES error answer onto the vocabulary (see the module docstring)."""
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    http = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    status, misconfigured = _classify(code, message.lower(), http, sender)
    return Outcome(
        status,
        provider,
        error=code or f"http_{http}",
        detail=scrub(message) or None,
        misconfigured=misconfigured,
    )


def transport_error(provider: str, exc: BotoCoreError) -> Outcome:
    detail = scrub(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, NoCredentialsError):
        return Outcome(
            Status.DOWN, provider, error="no_credentials", detail=detail, misconfigured=True
        )
    if isinstance(exc, ParamValidationError):
        return Outcome(Status.REJECTED, provider, error="invalid_request", detail=detail)
    if isinstance(exc, ConnectTimeoutError):
        return Outcome(Status.DOWN, provider, error="connect_timeout", detail=detail)
    if isinstance(exc, EndpointConnectionError) and _never_connected(exc):
        return Outcome(Status.DOWN, provider, error="connect", detail=detail)
    if isinstance(exc, ReadTimeoutError):
        return Outcome(Status.AMBIGUOUS, provider, error="timeout", detail=detail)
    return Outcome(Status.AMBIGUOUS, provider, error="reset", detail=detail)


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


def _never_connected(exc: EndpointConnectionError) -> bool:
    """aiobotocore wraps every aiohttp connection error alike; only a connector error (refused,
    DNS, TLS) proves that the request was never written."""
    cause = exc.kwargs.get("error")
    return cause is None or isinstance(cause, aiohttp.ClientConnectorError | socket.gaierror)


def _mailbox(address: Address) -> str:
    """`Name <address>`; a non-ASCII name is RFC 2047-encoded, as SES requires."""
    return formataddr((address.name or "", address.email))
