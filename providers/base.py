"""The `Provider` protocol and the closed outcome vocabulary every provider maps onto.

A provider never raises for a provider answer: `send` returns an `Outcome` whose `status` is one
of five values, and the dispatcher decides what to do from that alone::

    Status
    ├── SENT        accepted; `provider_message_id` holds the provider's id
    ├── REJECTED    permanent for this message (bad address, content refused): never failed over
    ├── THROTTLED   rate-limited; `retry_after` when the provider said; not an outage
    ├── DOWN        the provider cannot take mail now (5xx before acceptance, refused connection,
    │               paused account, or `misconfigured`: bad key, unverified sender)
    └── AMBIGUOUS   the request was written but no answer came (timeout, reset, 500/504):
                    the provider may have accepted it

Exceptions are kept for our own faults. `ProviderConfigError` (also a `ValueError`) is raised at
start-up for a provider whose settings cannot work; it names the key.

Each provider module is one class, registered under its config `type` in `providers` (see
`ProviderType`): it parses and validates its own options, and opens itself.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import aiohttp

from dispatcher.message import Email


class Status(enum.StrEnum):
    SENT = "sent"
    REJECTED = "rejected"
    THROTTLED = "throttled"
    DOWN = "down"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one provider answered for one email."""

    status: Status
    provider: str
    latency: float = 0.0  # seconds spent in the provider call
    provider_message_id: str | None = None
    error: str | None = None  # short machine-readable class, e.g. "http_503", "timeout"
    detail: str | None = None  # provider's own words, truncated; never contains recipients
    retry_after: float | None = None  # seconds, from X-RateLimit-Reset / Retry-After
    misconfigured: bool = False  # DOWN because of our credentials or sender: open for long

    @property
    def failover(self) -> bool:
        """Whether another provider may be tried for this message right away."""
        return self.status in (Status.THROTTLED, Status.DOWN)


class ProviderError(Exception):
    """Base of the errors a provider module raises for our own faults."""


class ProviderConfigError(ProviderError, ValueError):
    """Provider settings that cannot work (missing key, bad URL); raised at start-up.

    `key` is the provider's own key, e.g. `api_key`; the config loader prefixes the entry
    (`providers[1].api_key`). `reason` never quotes a secret.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key} {reason}")
        self.key = key
        self.reason = reason


SECRET_MARK = "<secret>"  # what an outcome shows in place of a provider's key


@runtime_checkable
class Provider(Protocol):
    """One email provider. Build the request, post it, parse the answer into an `Outcome`."""

    @property
    def name(self) -> str:
        """The configured name (unique per dispatcher), used in logs, health and the ledger."""
        ...

    @property
    def max_message_bytes(self) -> int:
        """The largest message this provider accepts; larger ones are routed elsewhere."""
        ...

    async def send(self, email: Email) -> Outcome:
        """Send one email. Returns an `Outcome`; raises only on cancellation."""
        ...

    async def aclose(self) -> None:
        """Release sessions and clients."""
        ...


class ProviderType(Protocol):
    """What the registry holds for each config `type`: a provider class, whose class methods
    parse its options and open it. `providers.sendgrid` is the template."""

    def parse_options(self, raw: Mapping[str, object]) -> object:
        """The provider's own keys of one `[[providers]]` entry (the common ones removed), as a
        frozen options object; raises `ProviderConfigError` naming a bad key."""
        ...

    async def open(
        self, name: str, timeout_seconds: float, options: object, http: aiohttp.ClientSession
    ) -> Provider:
        """A provider with these options; an HTTP provider posts through `http`."""
        ...


class BaseProvider(abc.ABC):
    """What every provider shares: its name, its size limit, and `exchange`, which runs one
    exchange with the provider (post, parse) under the configured timeout and blanks its
    `secrets` (an API key) out of the outcome's detail, should the provider's answer quote one.

    Each provider's own `send` reads the message and builds the request; only that request
    (bytes, an id) goes into `exchange`, so the message never leaves the provider's module."""

    def __init__(
        self,
        name: str,
        timeout_seconds: float,
        max_message_bytes: int,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self._name = name
        self._timeout = timeout_seconds
        self._max_message_bytes = max_message_bytes
        self._secrets = tuple(s for s in secrets if s)

    @property
    def name(self) -> str:
        return self._name

    @property
    def max_message_bytes(self) -> int:
        return self._max_message_bytes

    @abc.abstractmethod
    async def send(self, email: Email) -> Outcome:
        """Build the request for `email` and run it through `exchange`."""

    async def exchange(self, call: Awaitable[Outcome]) -> Outcome:
        """Await `call` (post the built request, parse the answer) within the timeout."""
        outcome = await timed(self._name, call, self._timeout)
        if self._secrets and outcome.detail:
            return redact(outcome, self._secrets)
        return outcome

    async def aclose(self) -> None:
        """Nothing of its own to release by default (a shared session belongs to the caller)."""
        return None


def redact(outcome: Outcome, secrets: tuple[str, ...]) -> Outcome:
    """`outcome` with each of `secrets` in its `detail` (the provider's words; `error` is our own
    vocabulary) replaced by `<secret>`."""
    return replace(outcome, detail=outcome.detail and _blank(outcome.detail, secrets))


def _blank(text: str, secrets: tuple[str, ...]) -> str:
    """`text` without `secrets`, nor the start (4 characters or more) of one that truncation
    cut off before its closing `…`."""
    for secret in secrets:
        text = text.replace(secret, SECRET_MARK)
        if text.endswith("…"):
            head = text[:-1]
            cut = next((n for n in range(len(secret) - 1, 3, -1) if head.endswith(secret[:n])), 0)
            text = f"{head[: len(head) - cut]}{SECRET_MARK if cut else ''}…"
    return text


def truncate(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def timed(provider: str, call: Awaitable[Outcome], seconds: float) -> Outcome:
    """Await one provider call for at most `seconds`, stamping its latency; a timeout is
    AMBIGUOUS."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(seconds):
            outcome = await call
    except TimeoutError:
        return Outcome(
            Status.AMBIGUOUS,
            provider,
            time.perf_counter() - started,
            error="timeout",
            detail=f"no answer within {seconds:g}s",
        )
    return replace(outcome, latency=time.perf_counter() - started)
