"""Fuzzing the way in: arbitrary JSON (much of it a valid message with a few fields mutated) and
arbitrary bytes go through `decode`, then what decodes goes through the real ledger's claim and
settle; and a worker fed fuzzed bodies on moto SQS never dies, dead-letters every bad one with
a reason and sends each good one once."""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from dispatcher.dev.fakes import FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import create_queue_pair
from dispatcher.ledger import (
    ClaimRequest,
    ClaimVerdict,
    Ledger,
    RecordStatus,
    Settlement,
    SettleVerdict,
)
from dispatcher.message import Email, MessageError, decode
from dispatcher.queue import REASON_ATTRIBUTE
from tests.support.configs import sendgrid
from tests.support.harness import (
    alive_and,
    drain_queue,
    empty,
    enqueue,
    eventually,
    running_task,
    sent_ids,
)
from tests.support.harness import settings as worker_settings


def base_doc(index: int = 1) -> dict[str, Any]:
    return email_doc(
        index,
        id=f"fz-{index}",
        cc=[{"email": "cc@example.org", "name": "Cc"}],
        reply_to={"email": "help@example.com"},
        headers={"X-Order": "42"},
        created_at="2026-11-22T18:00:00Z",
    )


# Values a field is likely to choke on, beside arbitrary JSON.
EDGES: list[Any] = [
    1e308,
    -1e308,
    5e-324,
    -1,
    2**63,
    2**64 - 1,
    253_402_300_800,
    True,
    "",
    " ",
    "x" * 999,
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00Z",
    "a\x00b",
    "a\x0bb",
    "a\x85b",
    "a\u2028b",
    "a\r\nBcc: x@example.org",
    "X-SES-SOURCE-ARN",
    "ann@example.org",
    {},
    [],
    [{}],
]
INTEGERS = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson can write
SCALARS = (
    st.none()
    | st.booleans()
    | INTEGERS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=10,
)
VALUES = st.sampled_from(EDGES) | JSON
KEYS = {
    "top": [*base_doc(), "bcc", "surprise"],
    "address": ["email", "name", "nam"],
    "headers": ["X-Order", "Bcc", "X-SES-SOURCE-ARN", "X-Mailgun-Tag", "X-SMTPAPI", "X-A\n"],
    "tags": ["kind", "k k", "x" * 129],
}
# What SQS refuses in a message body (beside lone surrogates, which UTF-8 cannot carry).
NOT_FOR_SQS = frozenset(chr(c) for c in range(32) if chr(c) not in "\t\n\r") | {"\ufffe", "\uffff"}


@st.composite
def mutated_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid message with one to four fields set to a fuzzed value, or removed."""
    doc = base_doc()
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["top", "from", "to", "headers", "tags"]))
        to = doc.get("to")
        target = {
            "from": doc.get("from"),
            "to": to[0] if isinstance(to, list) and to else None,
            "headers": doc.setdefault("headers", {}),
            "tags": doc.setdefault("tags", {}),
        }.get(where, doc)
        if not isinstance(target, dict):
            continue
        names = KEYS["address" if where in ("from", "to") else where]
        key = draw(st.sampled_from(names) | st.text(max_size=8))
        if draw(st.booleans()) and key in target:
            del target[key]
        else:
            target[key] = draw(VALUES)
    return doc


ISO_TIMES = st.datetimes(
    timezones=st.none()
    | st.timedeltas(-timedelta(hours=23, minutes=59), timedelta(hours=23, minutes=59)).map(timezone)
).map(datetime.isoformat)


# One-line text: mostly without controls, so that many such messages decode.
LINES = st.text(
    st.characters(blacklist_categories=["Cc", "Cs", "Zl", "Zp"]), max_size=40
) | st.text(max_size=40)


@st.composite
def plausible_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A message whose fields have the right types but fuzzed contents: many decode."""
    doc = base_doc()
    doc["created_at"] = draw(
        st.none() | st.floats(-1e20, 1e20) | INTEGERS | ISO_TIMES | st.sampled_from([1e308, -1e308])
    )
    doc["subject"] = draw(LINES.filter(str.strip))
    doc["to"][0]["name"] = draw(st.none() | LINES)
    doc["headers"] = draw(
        st.dictionaries(st.from_regex(r"[!-9;-~]{1,12}", fullmatch=True), LINES, max_size=3)
    )
    doc["batch_id"] = draw(st.none() | st.from_regex(r"[A-Za-z0-9._:@/+=-]{1,20}", fullmatch=True))
    return doc


LONE_SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)  # a str can hold them; UTF-8 cannot


def dumped(doc: Any) -> bytes:
    return orjson.dumps(doc)


BODIES: st.SearchStrategy[bytes | str] = (
    plausible_docs().map(dumped)
    | plausible_docs().map(dumped)  # twice: these reach the ledger most often
    | mutated_docs().map(dumped)
    | JSON.map(dumped)
    | st.binary(max_size=200)
    | st.text(max_size=200)  # a str body, as SQS hands it over
    | st.lists(st.characters() | LONE_SURROGATES, max_size=40).map("".join)
    | st.text(st.characters(codec="utf-8"), max_size=200).map(str.encode)
)


def decoded(body: bytes | str) -> Email | MessageError:
    try:
        return decode(body)
    except MessageError as error:
        return error


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=BODIES)
async def test_decode_claim_and_settle_raise_nothing_but_a_message_error(
    redis: Redis, body: bytes | str
) -> None:
    email = decoded(body)
    event("decoded" if isinstance(email, Email) else "refused")
    if isinstance(email, MessageError):
        assert email.field
        assert email.reason
        assert len(email.field) <= 64
        assert email.field.isascii()
        assert email.field.isprintable()
        return
    ledger = Ledger(redis, f"fz-{uuid.uuid4().hex}:", 60)
    request = ClaimRequest(email.id, "fuzz:1", email.batch_id, email.created_at)
    [claim] = await ledger.claim([request], 30)
    assert claim.verdict is ClaimVerdict.CLAIMED
    sent = Settlement(email.id, "fuzz:1", RecordStatus.SENT, provider="fake")
    [settled] = await ledger.settle([sent])
    assert settled.verdict is SettleVerdict.OK
    record = await ledger.get(email.id)
    assert record is not None
    assert (record.status, record.batch_id) == (RecordStatus.SENT, email.batch_id)
    if email.created_at is not None:
        assert record.created_at == int(email.created_at * 1000) / 1000


def for_sqs(body: bytes) -> str:
    """`body` as text SQS carries: invalid UTF-8 replaced, characters it refuses dropped."""
    return "".join(c for c in body.decode("utf-8", "replace") if c not in NOT_FOR_SQS)


def refused(body: str) -> bool:
    try:
        decode(body)
    except MessageError:
        return True
    return False


SQS_BAD_BODIES = (
    ((plausible_docs() | mutated_docs() | JSON).map(dumped) | st.binary(min_size=1, max_size=200))
    .map(for_sqs)
    .filter(lambda body: body != "" and refused(body))
)


@settings(
    max_examples=3,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
@given(
    bad=st.lists(SQS_BAD_BODIES, min_size=8, max_size=20),
    typed=st.lists(plausible_docs(), min_size=4, max_size=10),
)
async def test_a_worker_fed_fuzzed_bodies_dead_letters_each_bad_one_and_keeps_sending(
    sqs: Any, redis_url: str, sqs_endpoint: str, bad: list[str], typed: list[dict[str, Any]]
) -> None:
    """`bad` bodies are all refused; `typed` ones (fuzzed contents, unique ids) go either way,
    and three good ones are sent: each refused one ends in the DLQ with a reason, each
    accepted one is sent once, and the worker is still running at the end."""
    run = uuid.uuid4().hex[:12]
    good = [orjson.dumps(email_doc(i, id=f"good-{run}-{i}")).decode() for i in range(3)]
    typed_bodies = [for_sqs(dumped({**d, "id": f"typed-{run}-{i}"})) for i, d in enumerate(typed)]
    accepted = [e for e in map(decoded, typed_bodies + good) if isinstance(e, Email)]
    refused_bodies = bad + [b for b in typed_bodies if refused(b)]
    queues = await create_queue_pair(sqs, f"fz-{run}")
    try:
        await enqueue(sqs, queues.url, [b.encode() for b in bad + typed_bodies + good])
        async with FakeSendGrid() as sg:
            config = worker_settings(queues.url, sqs_endpoint, redis_url, [sendgrid(sg)])
            async with running_task(config) as (worker, task):
                stats = worker.stats
                # At least: SQS may deliver a message twice, and then it is dead-lettered twice.
                dead_at_least, sent = len(refused_bodies), len(accepted)
                done = alive_and(task, lambda: stats.poison >= dead_at_least and stats.sent == sent)
                await eventually(done, 60, "each body dead-lettered or sent")
                await eventually(empty(sqs, queues.url), 30, "queue empty")
                assert not task.done()
        dead = await drain_queue(sqs, queues.dlq_url)
    finally:
        for url in queues:
            with contextlib.suppress(ClientError):
                await sqs.delete_queue(QueueUrl=url)
    assert {m["Body"] for m in dead} == set(refused_bodies)
    for message in dead:
        reason = message["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]
        assert reason.startswith("invalid message: ")
        assert len(reason) > len("invalid message: ")
    assert sent_ids(sg) == sorted(e.id for e in accepted)
