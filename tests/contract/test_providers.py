"""One contract, run over every real provider through its real client.

SendGrid and Mailgun talk to their fakes; SES talks to moto for what moto models (acceptance,
payload, rejection, an unverified sender) and to `FakeSes` for injected faults. Each case
asserts on what the provider side received, and that no outcome carries an address, the
subject or the body.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from dispatcher.config import ProviderSettings
from dispatcher.dev.fakes import FAKES, FakeServer, MotoServer
from dispatcher.dev.fakes.views import Seen, from_mailgun, from_sendgrid, from_ses
from dispatcher.dev.stack import free_port
from dispatcher.message import Address, Email
from providers import Provider, Status, open_provider, parse_options
from providers.ses import tag_value
from tests.support.providers import SENDER, an_email, verify_identity

KINDS = ("sendgrid", "mailgun", "ses")


def assert_no_pii(outcome: Any, email: Email) -> None:
    said = f"{outcome.error} {outcome.detail}"
    private = [a.email for a in (*email.to, *email.cc, *email.bcc, *email.reply_to)]
    private += [email.subject, email.text or "", email.html or ""]
    assert not [p for p in private if p and p in said], said


class Harness:
    """One provider kind: its fake (faults), its reference (fake, or moto for SES)."""

    def __init__(
        self, kind: str, fake: FakeServer, http: aiohttp.ClientSession, moto: MotoServer | None
    ) -> None:
        self.kind, self.fake, self.http, self.moto = kind, fake, http, moto
        self._opened: list[Provider] = []

    async def open(
        self, *, reference: bool = False, timeout_seconds: float = 5.0, **overrides: Any
    ) -> Provider:
        url = self.moto.endpoint_url if reference and self.moto else self.fake.base_url
        options: dict[str, Any] = {}
        if self.kind == "ses":
            options |= {"endpoint_url": url, "region": "us-east-1"}
        else:
            options |= {"base_url": url, "api_key": self.fake.api_key}
        if self.kind == "mailgun":
            options["domain"] = "mg.example.com"
        parsed = parse_options(self.kind, options | overrides)
        settings = ProviderSettings(self.kind, self.kind, parsed, timeout_seconds=timeout_seconds)
        provider = await open_provider(settings, self.http)
        self._opened.append(provider)
        return provider

    def seen(self, email: Email) -> list[Seen]:
        """What the reference received for `email`, read back from its wire format."""
        if self.moto is not None:
            bodies = [r["body"] for r in self.moto.requests()]
            wanted = {"Name": "dispatcher_id", "Value": tag_value(email.id)}
            return [from_ses(b) for b in bodies if wanted in b.get("EmailTags", [])]
        view = from_sendgrid if self.kind == "sendgrid" else from_mailgun
        return [view(r.payload) for r in self.fake.by_dispatcher_id(email.id)]

    def accepted(self, *, reference: bool = True) -> list[str]:
        """The provider ids of every message accepted so far."""
        if reference and self.moto is not None:
            return [m["id"] for m in self.moto.ses_messages()]
        return [r.provider_id for r in self.fake.receipts]

    async def close(self) -> None:
        for provider in self._opened:
            await provider.aclose()


@pytest.fixture(params=KINDS)
async def harness(
    request: pytest.FixtureRequest, http: aiohttp.ClientSession
) -> AsyncIterator[Harness]:
    kind: str = request.param
    moto: MotoServer | None = request.getfixturevalue("moto") if kind == "ses" else None
    async with FAKES[kind]() as fake:
        harness = Harness(kind, fake, http, moto)
        if moto is not None:
            await verify_identity(moto, SENDER.domain)
        yield harness
        await harness.close()


async def test_sent_keeps_the_provider_message_id(harness: Harness) -> None:
    provider = await harness.open(reference=True)
    email = an_email()
    outcome = await provider.send(email)
    assert outcome.status is Status.SENT, outcome
    assert outcome.provider == harness.kind
    assert outcome.latency > 0
    assert outcome.provider_message_id is not None
    assert harness.accepted() == [outcome.provider_message_id]
    assert_no_pii(outcome, email)


async def test_the_provider_receives_the_whole_message(harness: Harness) -> None:
    provider = await harness.open(reference=True)
    email = an_email()
    assert (await provider.send(email)).status is Status.SENT
    assert harness.seen(email) == [
        Seen(
            sender=("Shöp, Inc.", "shop@example.com"),
            to=(("Ann Example", "ann@example.org"), ("", "bob@example.org")),
            cc=(("Carl", "carl@example.org"),),
            bcc=(("", "dora@example.org"),),
            reply_to=(("Help Desk", "help@example.com"),),
            subject="Your receipt #42",
            text="Thanks for your order.",
            html="<p>Thanks for your order.</p>",
            headers=(("X-Order", "42"),),
            tags=(("dispatcher_id", "order-42-receipt"), ("kind", "receipt")),
        )
    ]


async def test_html_only_message_is_sent_without_text(harness: Harness) -> None:
    provider = await harness.open(reference=True)
    email = an_email(id="html-only", text=None, cc=(), bcc=(), reply_to=(), headers=(), tags=())
    assert (await provider.send(email)).status is Status.SENT
    [seen] = harness.seen(email)
    assert (seen.text, seen.html, seen.cc, seen.reply_to) == (None, email.html, (), ())


async def test_invalid_recipient_is_rejected_and_nothing_is_sent(harness: Harness) -> None:
    provider = await harness.open(reference=True)
    email = an_email(to=(Address("nobody@"),))
    outcome = await provider.send(email)
    assert outcome.status is Status.REJECTED, outcome
    assert not outcome.failover
    assert not outcome.misconfigured
    assert harness.accepted() == []
    assert_no_pii(outcome, email)


async def test_a_bad_key_or_unverified_sender_is_misconfigured(harness: Harness) -> None:
    if harness.kind == "ses":
        provider = await harness.open(reference=True)
        email = an_email(sender=Address("news@unverified.example.net"))
    else:
        provider = await harness.open(reference=True, api_key="wrong-key")
        email = an_email()
    outcome = await provider.send(email)
    assert (outcome.status, outcome.misconfigured) == (Status.DOWN, True), outcome
    assert outcome.failover
    assert harness.accepted() == []
    assert_no_pii(outcome, email)


async def test_throttled_carries_the_reset_time(harness: Harness) -> None:
    provider = await harness.open()
    harness.fake.faults.throttle(reset_in=7, count=1)
    outcome = await provider.send(an_email())
    assert outcome.status is Status.THROTTLED, outcome
    assert outcome.failover
    if harness.kind == "ses":
        assert outcome.retry_after is None  # SES sends no rate-limit headers
    else:
        assert outcome.retry_after is not None
        assert 5.5 <= outcome.retry_after <= 8
    assert harness.accepted(reference=False) == []
    assert (await provider.send(an_email())).status is Status.SENT  # count=1: the next is fine


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (503, Status.DOWN),
        (502, Status.DOWN),
        (500, Status.AMBIGUOUS),
        (504, Status.AMBIGUOUS),
        (400, Status.REJECTED),
    ],
)
async def test_http_errors_map_onto_the_vocabulary(
    harness: Harness, code: int, status: Status
) -> None:
    provider = await harness.open()
    email = an_email()
    harness.fake.faults.fail(code, message=f"{code} for ann@example.org, subject {email.subject}")
    outcome = await provider.send(email)
    assert outcome.status is status, outcome
    assert outcome.detail is not None
    assert "<redacted>" in outcome.detail
    assert harness.accepted(reference=False) == []
    assert harness.fake.answered == {code: 1}  # one request: no client-side retry
    assert_no_pii(replace(outcome, detail=outcome.detail.replace(email.subject, "")), email)


async def test_connection_refused_is_down(harness: Harness) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    if harness.kind == "ses":
        provider = await harness.open(endpoint_url=closed)
    else:
        provider = await harness.open(base_url=closed)
    outcome = await provider.send(an_email())
    assert (outcome.status, outcome.error) == (Status.DOWN, "connect"), outcome


async def test_no_answer_is_ambiguous_and_may_still_be_accepted(harness: Harness) -> None:
    provider = await harness.open(timeout_seconds=0.3)
    harness.fake.faults.hang()
    outcome = await provider.send(an_email())
    assert (outcome.status, outcome.error) == (Status.AMBIGUOUS, "timeout"), outcome
    assert not outcome.failover
    assert harness.accepted(reference=False) == []
    harness.fake.faults.release()  # the provider goes on and accepts it after all
    async with asyncio.timeout(5):
        late = await harness.fake.wait_for(1)
    assert [r.dispatcher_id for r in late] == [
        tag_value("order-42-receipt") if harness.kind == "ses" else "order-42-receipt"
    ]


async def test_connection_reset_after_the_request_is_ambiguous(harness: Harness) -> None:
    provider = await harness.open()
    harness.fake.faults.abort(count=1)
    outcome = await provider.send(an_email())
    assert outcome.status is Status.AMBIGUOUS, outcome
    assert outcome.error in ("disconnected", "reset")
    assert harness.fake.faults.injected["abort"] == 1
    assert harness.accepted(reference=False) == []
