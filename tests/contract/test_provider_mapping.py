"""The tables behind the provider contract: status and error-code mapping, rate-limit headers,
scrubbing, SES tag values, payload details, the registry and the simulated provider."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
import orjson
import pytest

import providers
from dispatcher.config import ProviderSettings
from dispatcher.dev.fakes.sendgrid import FakeSendGrid
from dispatcher.message import Address
from providers import SendGridOptions, SimulatedOptions, mailgun, sendgrid, ses
from providers._common import Answer, failure, retry_after, scrub, transport_outcome
from providers.base import Outcome, Provider, ProviderConfigError, Status
from tests.support.providers import an_email

NOW = 1_800_000_000.0
SENDER = Address("shop@example.com")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-RateLimit-Reset": str(int(NOW) + 7)}, 7.0),
        ({"X-RateLimit-Reset": str(int(NOW) - 5)}, 0.0),
        ({"X-RateLimit-Reset": str(int(NOW * 1000) + 2500)}, 2.5),
        ({"X-RateLimit-Reset": "30"}, 30.0),
        ({"Retry-After": "12"}, 12.0),
        (
            {"Retry-After": format_datetime(datetime.fromtimestamp(NOW + 60, UTC), usegmt=True)},
            60.0,
        ),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_either_header(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(headers, now=NOW) == expected


@pytest.mark.parametrize(
    ("code", "status", "error", "misconfigured"),
    [
        (400, Status.REJECTED, "http_400", False),
        (422, Status.REJECTED, "http_422", False),
        (401, Status.DOWN, "http_401", True),
        (403, Status.DOWN, "http_403", True),
        (404, Status.DOWN, "http_404", True),
        (408, Status.DOWN, "http_408", False),
        (413, Status.REJECTED, "too_large", False),
        (429, Status.THROTTLED, "http_429", False),
        (500, Status.AMBIGUOUS, "http_500", False),
        (502, Status.DOWN, "http_502", False),
        (503, Status.DOWN, "http_503", False),
        (504, Status.AMBIGUOUS, "http_504", False),
        (302, Status.AMBIGUOUS, "http_302", False),
    ],
)
def test_http_status_table(code: int, status: Status, error: str, misconfigured: bool) -> None:
    outcome = failure("p", Answer(code, {"Retry-After": "3"}, b""), "no")
    assert (outcome.status, outcome.error, outcome.misconfigured) == (status, error, misconfigured)
    assert outcome.retry_after == (3.0 if code == 429 else None)


def test_scrub_removes_addresses_and_keeps_one_short_line() -> None:
    text = "bad <ann@example.org>,\n bob.smith+x@mail.example.co.uk refused " + "x" * 400
    scrubbed = scrub(text)
    assert scrubbed.startswith("bad <<redacted>>, <redacted> refused xxx")
    assert len(scrubbed) == 300
    assert "@" not in scrubbed


@pytest.mark.parametrize(
    ("exc", "status", "error"),
    [
        (aiohttp.ServerDisconnectedError(), Status.AMBIGUOUS, "disconnected"),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), Status.AMBIGUOUS, "reset"),
        (aiohttp.ClientPayloadError("truncated"), Status.AMBIGUOUS, "reset"),
        (aiohttp.SocketTimeoutError("read"), Status.AMBIGUOUS, "timeout"),
        (aiohttp.ConnectionTimeoutError("connect"), Status.DOWN, "connect_timeout"),
    ],
)
def test_transport_errors(exc: aiohttp.ClientError, status: Status, error: str) -> None:
    outcome = transport_outcome("p", exc)
    assert (outcome.status, outcome.error) == (status, error)


def ses_error(code: str, message: str = "", http: int = 400) -> Answer:
    """An SES error answer as the restJson protocol shapes it."""
    headers = {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/"}
    return Answer(http, headers, orjson.dumps({"message": message}))


@pytest.mark.parametrize(
    ("error", "status", "misconfigured"),
    [
        (ses_error("MessageRejected", "Address blacklisted."), Status.REJECTED, False),
        (
            ses_error(
                "MessageRejected",
                "Email address is not verified. The following identities "
                "failed the check in region US-EAST-1: shop@example.com",
            ),
            Status.DOWN,
            True,
        ),
        (
            ses_error(
                "MessageRejected",
                "Email address is not verified. The following identities "
                "failed the check in region US-EAST-1: ann@other.org",
            ),
            Status.REJECTED,
            False,
        ),
        (ses_error("BadRequestException", "Invalid header"), Status.REJECTED, False),
        (ses_error("MailFromDomainNotVerifiedException"), Status.DOWN, True),
        (ses_error("NotFoundException", http=404), Status.DOWN, True),
        (ses_error("UnrecognizedClientException", http=403), Status.DOWN, True),
        (ses_error("SignatureDoesNotMatch", http=403), Status.DOWN, True),
        (ses_error("AccessDeniedException", http=403), Status.DOWN, True),
        (ses_error("SendingPausedException"), Status.DOWN, True),
        (ses_error("AccountSuspendedException"), Status.DOWN, True),
        (ses_error("LimitExceededException", "Daily message quota exceeded."), Status.DOWN, True),
        (ses_error("TooManyRequestsException", http=429), Status.THROTTLED, False),
        (ses_error("Throttling", "Maximum sending rate exceeded."), Status.THROTTLED, False),
        (
            ses_error("LimitExceededException", "Maximum sending rate exceeded."),
            Status.THROTTLED,
            False,
        ),
        (ses_error("LimitExceededException", "Too many contact lists."), Status.REJECTED, False),
        (ses_error("ServiceUnavailable", http=503), Status.DOWN, False),
        (ses_error("InternalFailure", http=500), Status.AMBIGUOUS, False),
        (ses_error("Whatever", http=504), Status.AMBIGUOUS, False),
    ],
)
def test_ses_error_codes(error: Answer, status: Status, misconfigured: bool) -> None:
    outcome = ses.parse("ses", error, SENDER)
    assert (outcome.status, outcome.misconfigured) == (status, misconfigured)
    assert outcome.error == error.headers["x-amzn-ErrorType"].split(":")[0]
    assert "@" not in (outcome.detail or "")


def test_ses_answers_without_an_error_type_header_use_the_body_type() -> None:
    answer = Answer(400, {}, orjson.dumps({"__type": "com.amazon#MessageRejected", "message": "x"}))
    outcome = ses.parse("ses", answer, SENDER)
    assert (outcome.status, outcome.error) == (Status.REJECTED, "MessageRejected")
    sent = ses.parse("ses", Answer(200, {}, orjson.dumps({"MessageId": "m-1"})), SENDER)
    assert (sent.status, sent.provider_message_id) == (Status.SENT, "m-1")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("order-42", "order-42"),
        ("order.42/x", "order_2E42_2Fx"),
        ("a_b", "a_5Fb"),
        ("a_2E", "a_5F2E"),
        ("a.", "a_2E"),
    ],
)
def test_ses_tag_values_are_valid_and_one_to_one(text: str, value: str) -> None:
    assert ses.tag_value(text) == value
    assert len(ses.tag_value("." * 200)) == 64


def test_ses_request_carries_the_configuration_set_and_omits_empty_fields() -> None:
    request = ses.build(an_email(cc=(), bcc=(), reply_to=(), headers=()), "marketing")
    assert request["ConfigurationSetName"] == "marketing"
    assert list(request["Destination"]) == ["ToAddresses"]
    assert "ReplyToAddresses" not in request
    assert "Headers" not in request["Content"]["Simple"]


def test_mailgun_fields_repeat_and_encode_names() -> None:
    fields = mailgun.build(an_email(sender=Address("shop@example.com", "Zoë")))
    assert fields[0] == ("from", "=?utf-8?q?Zo=C3=AB?= <shop@example.com>")
    assert [v for k, v in fields if k == "to"] == [
        "Ann Example <ann@example.org>",
        "bob@example.org",
    ]
    assert ("v:dispatcher_id", "order-42-receipt") in fields


async def test_sendgrid_drops_repeated_addresses_and_lists_reply_tos(
    fake_sendgrid: FakeSendGrid, http: aiohttp.ClientSession
) -> None:
    email = an_email(
        cc=(Address("ANN@example.org"), Address("carl@example.org")),
        reply_to=(Address("a@example.com"), Address("b@example.com", "B")),
    )
    provider = sendgrid.SendGrid(
        "sg", 15.0, SendGridOptions(api_key="test-key", base_url=fake_sendgrid.base_url), http
    )
    assert (await provider.send(email)).status is Status.SENT
    [receipt] = fake_sendgrid.receipts
    assert receipt.payload["personalizations"][0]["cc"] == [{"email": "carl@example.org"}]
    assert receipt.payload["reply_to_list"] == [
        {"email": "a@example.com"},
        {"email": "b@example.com", "name": "B"},
    ]


async def test_sendgrid_refuses_content_that_holds_an_api_key(
    http: aiohttp.ClientSession,
) -> None:
    provider = sendgrid.SendGrid("sg", 15.0, SendGridOptions(api_key="k"), http)
    outcome = await provider.send(an_email(text="SG.abc123.def456 is my key"))
    assert (outcome.status, outcome.error) == (Status.REJECTED, "api_key_in_content")


@pytest.mark.parametrize(
    ("kind", "options", "words"),
    [
        ("postmark", {}, "valid types: mailgun, sendgrid, ses, simulated"),
        ("sendgrid", {}, "api_key is required"),
        ("mailgun", {"api_key": "k"}, "domain is required"),
        ("sendgrid", {"api_key": "k", "base_url": "ftp://h"}, "not an http(s) URL"),
    ],
)
def test_unusable_settings_fail_at_start_up(
    kind: str, options: dict[str, object], words: str
) -> None:
    with pytest.raises(ProviderConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        providers.parse_options(kind, options)


async def test_open_providers_opens_in_order_and_closes_all_on_failure(
    http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []

    class Recording(providers.Simulated):
        async def aclose(self) -> None:
            closed.append(self.name)

    monkeypatch.setitem(providers.PROVIDER_TYPES, "simulated", Recording)
    good = [ProviderSettings(n, "simulated", SimulatedOptions()) for n in ("a", "b")]
    opened = await providers.open_providers(good, http)
    assert [p.name for p in opened] == ["a", "b"]
    assert all(isinstance(p, Provider) for p in opened)
    with pytest.raises(ProviderConfigError):  # a sendgrid entry holding simulated options
        await providers.open_providers(
            [*good, ProviderSettings("c", "sendgrid", SimulatedOptions())], http
        )
    assert closed == ["b", "a"]


def simulated(timeout_seconds: float = 15.0, **options: Any) -> providers.Simulated:
    return providers.Simulated("sim", timeout_seconds, SimulatedOptions(**options))


async def outcomes(sim: providers.Simulated, n: int) -> list[Outcome]:
    return [await sim.send(an_email()) for _ in range(n)]


async def test_simulated_is_seeded_and_counts_what_it_sent() -> None:
    runs = []
    for _ in range(2):
        sim = simulated(latency_ms=0, error_rate=0.5, seed=7)
        found = await outcomes(sim, 200)
        runs.append([(o.status, o.error) for o in found])
        assert sim.sent == sim.outcomes[Status.SENT] == sim.sent_ids["order-42-receipt"]
    assert runs[0] == runs[1]
    statuses = {status for status, _ in runs[0]}
    assert statuses == {Status.SENT, Status.DOWN, Status.THROTTLED, Status.AMBIGUOUS}


async def test_simulated_goes_down_on_command_and_comes_back() -> None:
    sim = simulated(latency_ms=1, seed=1)
    sim.set_fault(down=True)
    assert {o.error for o in await outcomes(sim, 5)} == {"http_503"}
    assert sim.sent == 0
    sim.clear_fault()
    outcome = await sim.send(an_email())
    assert outcome.status is Status.SENT
    assert (outcome.provider_message_id or "").startswith("sim-")


async def test_simulated_latency_beyond_the_timeout_is_ambiguous() -> None:
    sim = simulated(latency_ms=1, seed=1, timeout_seconds=0.05)
    sim.set_fault(latency_ms=500)
    outcome = await sim.send(an_email())
    assert (outcome.status, outcome.error) == (Status.AMBIGUOUS, "timeout")
