"""What the HTTP providers share: one POST, and the mapping of its answer onto an `Outcome`.

SendGrid and Mailgun answer alike, so one table serves both::

    2xx                     SENT       (each module reads its own message id)
    401 403 404             DOWN       misconfigured: bad key, unverified sender, wrong domain
    408                     DOWN       the server gave up reading the request: not accepted
    413                     REJECTED   "too_large" (the worker routes by max_message_bytes)
    429                     THROTTLED  retry_after from X-RateLimit-Reset or Retry-After
    other 4xx               REJECTED   the provider's words, scrubbed
    502 503                 DOWN       a gateway or the service said it cannot take mail
    500 504, other 5xx      AMBIGUOUS  the request arrived; it may have been accepted
    anything else           AMBIGUOUS

Transport errors: a connection that never opened (refused, DNS, TLS, connect timeout) is DOWN
"connect"; one that broke after the request was written (disconnect, reset, read timeout) is
AMBIGUOUS. Text from a provider goes through `scrub` before it reaches an `Outcome`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson

from providers.base import Outcome, ProviderConfigError, Status, truncate

_ADDRESS_RE = re.compile(r"[^\s@<>\"'(),;:\[\]]+@[^\s@<>\"'(),;:\[\]]+")
REDACTED = "<redacted>"


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer, read whole."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def scrub(text: str, limit: int = 300) -> str:
    """Provider text fit for an `Outcome`: addresses replaced, one line, truncated."""
    return truncate(" ".join(_ADDRESS_RE.sub(REDACTED, text).split()), limit)


def check_url(key: str, url: str) -> None:
    """For an options `__post_init__`: `url` must be http(s)."""
    if not url.startswith(("http://", "https://")):
        raise ProviderConfigError(key, f"{url!r} is not an http(s) URL")


def check_given(key: str, value: str) -> None:
    """For an options `__post_init__`: a required text (a key, a domain) must not be empty."""
    if not value:
        raise ProviderConfigError(key, "is required")


async def post(
    http: aiohttp.ClientSession, provider: str, url: str, budget: float, **request: Any
) -> Answer | Outcome:
    """POST once, without redirects; a transport failure comes back as an `Outcome`.

    The connect phase gets half of `budget` (the provider's timeout), so that a connection that
    never opens (DOWN) is told apart from an answer that never comes (AMBIGUOUS, from `timed`).
    These per-request limits replace the session's own; `timed` bounds the whole call.
    """
    limits = aiohttp.ClientTimeout(sock_connect=budget / 2)
    try:
        async with http.post(
            url, allow_redirects=False, raise_for_status=False, timeout=limits, **request
        ) as response:
            try:
                body = await response.read()
            except aiohttp.ClientError:
                body = b""  # the status line is what counts; the body is a courtesy
            return Answer(response.status, response.headers, body)
    except aiohttp.ClientError as exc:
        return transport_outcome(provider, exc)
    except TimeoutError as exc:  # any other timeout raised inside the transport
        return Outcome(Status.AMBIGUOUS, provider, error="timeout", detail=scrub(str(exc)))


def transport_outcome(provider: str, exc: aiohttp.ClientError) -> Outcome:
    """DOWN when the request cannot have been written, AMBIGUOUS when it may have been."""
    detail = scrub(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Outcome(Status.DOWN, provider, error="connect", detail=detail)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return Outcome(Status.DOWN, provider, error="connect_timeout", detail=detail)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return Outcome(Status.AMBIGUOUS, provider, error="timeout", detail=detail)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return Outcome(Status.AMBIGUOUS, provider, error="disconnected", detail=detail)
    if isinstance(exc, aiohttp.ClientOSError | aiohttp.ClientPayloadError | ConnectionError):
        return Outcome(Status.AMBIGUOUS, provider, error="reset", detail=detail)
    return Outcome(Status.AMBIGUOUS, provider, error="http_client", detail=detail)


def failure(provider: str, answer: Answer, detail: str | None) -> Outcome:
    """The `Outcome` of a non-2xx answer; `detail` is the provider's own (unscrubbed) words."""
    status, words = answer.status, scrub(detail) if detail else None
    error = f"http_{status}"
    if status in (401, 403, 404):
        return Outcome(Status.DOWN, provider, error=error, detail=words, misconfigured=True)
    if status == 413:
        return Outcome(Status.REJECTED, provider, error="too_large", detail=words)
    if status == 429:
        wait = retry_after(answer.headers)
        return Outcome(Status.THROTTLED, provider, error=error, detail=words, retry_after=wait)
    if status == 408 or status in (502, 503):
        return Outcome(Status.DOWN, provider, error=error, detail=words)
    if 400 <= status < 500:
        return Outcome(Status.REJECTED, provider, error=error, detail=words)
    return Outcome(Status.AMBIGUOUS, provider, error=error, detail=words)


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait, from `X-RateLimit-Reset` (epoch seconds) or else `Retry-After`.

    A reset above 1e12 is read as epoch milliseconds and one below 1e9 as seconds from now,
    as some APIs send; the result is never negative.
    """
    now = time.time() if now is None else now
    reset = _number(headers.get("X-RateLimit-Reset"))
    if reset is not None:
        if reset > 1e12:
            reset /= 1000
        return max(0.0, reset - now if reset > 1e9 else reset)
    value = headers.get("Retry-After")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def json_body(body: bytes) -> Any:
    """The decoded JSON body, or None when it is not JSON."""
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def body_text(body: bytes, limit: int = 300) -> str | None:
    """A non-JSON body as text (for example Mailgun's plain "Forbidden")."""
    text = body[: limit * 4].decode("utf-8", "replace").strip()
    return text or None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None
