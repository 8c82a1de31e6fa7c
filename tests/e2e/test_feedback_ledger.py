"""Feedback on a real Redis: webhook events move SENT records on (never backwards), keep their
indexes, find records by the provider's id, count per provider; suppressed recipients end
ERROR `suppressed` inside the claim script."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from dispatcher import keys
from dispatcher.feedback import Feedback, FeedbackEvent, Verdict, rates
from dispatcher.ledger import ClaimRequest, ClaimVerdict, Ledger, RecordStatus, Settlement
from dispatcher.records import Records
from dispatcher.suppression import AddressHasher, Suppressions, normalise

PREFIX = "t:"
TTL = 3600


def hasher() -> AddressHasher:
    return AddressHasher("s3cret", PREFIX)


def feedback(redis: Redis) -> Feedback:
    return Feedback(redis, PREFIX, TTL, Suppressions(redis, PREFIX, hasher()))


async def sent(redis: Redis, message_id: str, provider_id: str, batch: str = "b1") -> Ledger:
    ledger = Ledger(redis, PREFIX, TTL, hasher=hasher())
    [claim] = await ledger.claim([ClaimRequest(message_id, "w:1", batch)], 60)
    assert claim.verdict is ClaimVerdict.CLAIMED
    await ledger.settle([Settlement(message_id, "w:1", RecordStatus.SENT, "mg", provider_id)])
    return ledger


def event(status: str, *, bounce: str = "", at: float = 1.0, **ids: str) -> FeedbackEvent:
    return FeedbackEvent(status, at, "Ann@Example.ORG ", bounce=bounce, reason="5.1.1", **ids)


async def status_of(redis: Redis, message_id: str) -> RecordStatus | None:
    record = await Records(redis, PREFIX, TTL, time.time).get(message_id)
    return record.status if record else None


async def test_events_move_forward_only_and_keep_the_indexes(redis: Redis) -> None:
    await sent(redis, "m1", "pm-1")
    fb = feedback(redis)
    [done] = await fb.apply([event("DELIVERED", message_id="m1", at=10)])
    assert (done.verdict, done.provider) == (Verdict.APPLIED, "mg")
    [late] = await fb.apply([event("BOUNCED", bounce="soft", provider_message_id="pm-1")])
    assert (late.verdict, late.message_id) == (Verdict.APPLIED, "m1")
    [harder] = await fb.apply([event("BOUNCED", bounce="hard", message_id="m1", at=20)])
    assert harder.verdict is Verdict.APPLIED
    [older] = await fb.apply([event("DELIVERED", message_id="m1")])
    [softer] = await fb.apply([event("BOUNCED", bounce="soft", message_id="m1")])
    assert (older.verdict, softer.verdict) == (Verdict.IGNORED, Verdict.IGNORED)
    record = await Records(redis, PREFIX, TTL, time.time).get("m1")
    assert record is not None
    assert (record.status, record.bounce_type, record.reason_code, record.event_at) == (
        RecordStatus.BOUNCED,
        "hard",
        "5.1.1",
        20.0,
    )
    shard = keys.shard_of("m1")
    for status in keys.STATUSES:
        members = await redis.zrange(keys.index_status(PREFIX, shard, status), 0, -1)
        assert members == ([b"m1"] if status == "BOUNCED" else []), status
    counts = await Records(redis, PREFIX, TTL, time.time).batch_counts("b1")
    assert counts.by_status["BOUNCED"] == 1
    digest = hasher().digest(normalise("Ann@Example.ORG "))
    [entry] = await Suppressions(redis, PREFIX, hasher()).check([digest])
    assert entry is not None
    assert entry.reason == "bounce"


async def test_unknown_ids_and_unsent_records_change_nothing(redis: Redis) -> None:
    fb = feedback(redis)
    ledger = Ledger(redis, PREFIX, TTL)
    await ledger.claim([ClaimRequest("m2", "w:1")], 60)  # SENDING, not SENT yet
    results = await fb.apply(
        [
            event("BOUNCED", bounce="hard", message_id="nope"),
            event("BOUNCED", bounce="hard", provider_message_id="pm-unknown"),
            event("COMPLAINED", message_id="m2"),
        ]
    )
    assert [r.verdict for r in results] == [Verdict.UNKNOWN, Verdict.UNKNOWN, Verdict.EARLY]
    assert await status_of(redis, "m2") is RecordStatus.SENDING
    assert await redis.hlen(keys.suppression_all(PREFIX)) == 0


async def test_the_claim_script_ends_a_suppressed_message_unsent(redis: Redis) -> None:
    suppressions = Suppressions(redis, PREFIX, hasher())
    await suppressions.add([hasher().digest("dead@example.org")], "manual", time.time())
    ledger = Ledger(redis, PREFIX, TTL, hasher=hasher())
    claims = await ledger.claim(
        [
            ClaimRequest("m3", "w:1", "b2", recipients=("ok@example.org", " dead@EXAMPLE.org")),
            ClaimRequest("m4", "w:1", "b2", recipients=("ok@example.org",)),
        ],
        60,
    )
    assert [c.verdict for c in claims] == [ClaimVerdict.SUPPRESSED, ClaimVerdict.CLAIMED]
    record = await ledger.get("m3")
    assert record is not None
    assert (record.status, record.last_error, record.batch_id) == (
        RecordStatus.ERROR,
        "suppressed",
        "b2",
    )
    [again] = await ledger.claim([ClaimRequest("m3", "w:2")], 60)
    assert again.verdict is ClaimVerdict.ERROR
    await suppressions.remove([hasher().digest("dead@example.org")])
    [m5] = await ledger.claim([ClaimRequest("m5", "w:1", recipients=("dead@example.org",))], 60)
    assert m5.verdict is ClaimVerdict.CLAIMED


async def test_rates_count_sends_and_applied_events_per_provider(redis: Redis) -> None:
    await sent(redis, "m6", "pm-6")
    await sent(redis, "m7", "pm-7")
    await feedback(redis).apply([event("COMPLAINED", message_id="m6")])
    [row] = await rates(redis, PREFIX, time.time())
    assert (row.provider, row.sent, row.complained, row.bounced) == ("mg", 2, 1, 0)
    assert row.complaint_rate == 0.5
