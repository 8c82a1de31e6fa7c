"""Ledger scripts on a real Redis and on a three-primary cluster: claims, leases, settle fencing,
extend and release, index trimming."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from dispatcher import keys
from dispatcher.ledger import (
    TRIM_EVERY_SECONDS,
    ClaimRequest,
    ClaimVerdict,
    Ledger,
    RecordStatus,
    Settlement,
    SettleVerdict,
)
from tests.support.clock import Clock

pytestmark = pytest.mark.redis_targets("single", "cluster")


def ledger(redis: Redis, clock: Clock | None = None) -> Ledger:
    return Ledger(redis, "t:", ttl_seconds=3600, clock=clock)


async def test_claim_then_settle_sent_blocks_every_later_claim(redis: Redis) -> None:
    book = ledger(redis)
    [claim] = await book.claim([ClaimRequest("m1", "w1:1", "b1", 1_700_000_000.0)], 60)
    assert (claim.verdict, claim.attempts) == (ClaimVerdict.CLAIMED, 0)
    [done] = await book.settle([Settlement("m1", "w1:1", RecordStatus.SENT, "sendgrid", "sg-9")])
    assert (done.verdict, done.attempts) == (SettleVerdict.OK, 1)
    [again] = await book.claim([ClaimRequest("m1", "w2:1")], 60)
    assert again.verdict is ClaimVerdict.SENT
    record = await book.get("m1")
    assert record is not None
    assert record.status is RecordStatus.SENT
    assert (record.provider, record.provider_message_id, record.batch_id) == (
        "sendgrid",
        "sg-9",
        "b1",
    )
    assert record.created_at == 1_700_000_000.0
    assert record.sent_at is not None
    assert await redis.ttl(keys.message("t:", "m1")) > 3000


async def test_a_live_lease_makes_other_owners_busy_until_it_expires(redis: Redis) -> None:
    clock = Clock()
    book = ledger(redis, clock)
    [first] = await book.claim([ClaimRequest("m2", "a")], 30)
    assert first.verdict is ClaimVerdict.CLAIMED
    clock.now += 10
    [busy] = await book.claim([ClaimRequest("m2", "b")], 30)
    assert busy.verdict is ClaimVerdict.BUSY
    assert 19 <= busy.busy_for <= 20
    clock.now += 21
    [taken] = await book.claim([ClaimRequest("m2", "b")], 30)
    assert taken.verdict is ClaimVerdict.CLAIMED
    # The first owner's late failure is fenced off; its late success is still recorded.
    [stale] = await book.settle([Settlement("m2", "a", RecordStatus.QUEUED, error="timeout")])
    assert stale.verdict is SettleVerdict.STALE
    [late_sent] = await book.settle([Settlement("m2", "a", RecordStatus.SENT, "ses", "s-1")])
    assert late_sent.verdict is SettleVerdict.OK
    [after] = await book.settle([Settlement("m2", "b", RecordStatus.SENT, "mailgun", "m-1")])
    assert after.verdict is SettleVerdict.SENT
    record = await book.get("m2")
    assert record is not None
    assert (record.status, record.provider) == (RecordStatus.SENT, "ses")


async def test_retries_count_attempts_and_misconfigured_ones_do_not(redis: Redis) -> None:
    book = ledger(redis)
    for owner, counted in (("o1", True), ("o2", False), ("o3", True)):
        [claim] = await book.claim([ClaimRequest("m3", owner)], 60)
        assert claim.verdict is ClaimVerdict.CLAIMED
        await book.settle(
            [
                Settlement(
                    "m3",
                    owner,
                    RecordStatus.QUEUED,
                    "sendgrid",
                    error="http_503",
                    count_attempt=counted,
                    ambiguous_via="sendgrid" if owner == "o3" else None,
                )
            ]
        )
    [claim] = await book.claim([ClaimRequest("m3", "o4")], 60)
    assert claim.attempts == 2
    await book.settle(
        [
            Settlement(
                "m3", "o4", RecordStatus.ERROR, "sendgrid", error="rejected by sendgrid: http_400"
            )
        ]
    )
    [final] = await book.claim([ClaimRequest("m3", "o5")], 60)
    assert final.verdict is ClaimVerdict.ERROR
    record = await book.get("m3")
    assert record is not None
    assert record.attempts == 3
    assert record.last_error == "rejected by sendgrid: http_400"
    assert record.ambiguous_via == ("sendgrid",)


async def test_extend_keeps_the_lease_and_release_hands_it_back(redis: Redis) -> None:
    clock = Clock()
    book = ledger(redis, clock)
    await book.claim([ClaimRequest("m4", "a"), ClaimRequest("m5", "a")], 10)
    clock.now += 8
    assert await book.extend([("m4", "a"), ("m5", "zz")], 10) == [True, False]
    clock.now += 5
    [m4, m5] = await book.claim([ClaimRequest("m4", "b"), ClaimRequest("m5", "b")], 10)
    assert m4.verdict is ClaimVerdict.BUSY
    assert m5.verdict is ClaimVerdict.CLAIMED
    assert await book.extend([("m4", "a")], 0) == [True]
    record = await book.get("m4")
    assert record is not None
    assert record.status is RecordStatus.QUEUED
    [m4_again] = await book.claim([ClaimRequest("m4", "b")], 10)
    assert m4_again.verdict is ClaimVerdict.CLAIMED


async def test_scripts_reload_after_redis_forgets_them(redis: Redis) -> None:
    book = ledger(redis)
    await book.load_scripts()
    await redis.script_flush()
    [claim] = await book.claim([ClaimRequest("m6", "a")], 10)
    assert claim.verdict is ClaimVerdict.CLAIMED
    assert await book.get("missing") is None


async def test_a_settle_retried_after_its_reply_was_lost_is_acted_on_once(redis: Redis) -> None:
    book = ledger(redis, Clock())
    await book.claim([ClaimRequest("m-1", "owner-a")], 30)
    retry = Settlement("m-1", "owner-a", RecordStatus.QUEUED, "sendgrid", error="down")
    first = await book.settle([retry])
    again = await book.settle([retry])  # the first reply never arrived: the settler retries
    assert [(s.verdict, s.attempts) for s in first + again] == [
        (SettleVerdict.OK, 1),
        (SettleVerdict.OK, 1),  # acted on, and the attempt is not counted twice
    ]
    record = await book.get("m-1")
    assert record is not None
    assert (record.status, record.attempts) == (RecordStatus.QUEUED, 1)


async def test_an_error_about_one_record_fails_that_message_alone(redis: Redis) -> None:
    book = ledger(redis)
    await redis.set(keys.message("t:", "m-bad"), "not a hash")  # WRONGTYPE for every script on it
    claims = await book.claim(
        [ClaimRequest("m-1", "o1"), ClaimRequest("m-bad", "o2"), ClaimRequest("m-2", "o3")], 30
    )
    assert [c.verdict for c in claims] == [
        ClaimVerdict.CLAIMED,
        ClaimVerdict.FAILED,
        ClaimVerdict.CLAIMED,
    ]
    assert "WRONGTYPE" in claims[1].reason
    settled = await book.settle(
        [
            Settlement("m-1", "o1", RecordStatus.SENT, "sendgrid"),
            Settlement("m-bad", "o2", RecordStatus.SENT, "sendgrid"),
            Settlement("m-2", "o3", RecordStatus.SENT, "sendgrid"),
        ]
    )
    assert [s.verdict for s in settled] == [
        SettleVerdict.OK,
        SettleVerdict.FAILED,
        SettleVerdict.OK,
    ]
    assert await book.extend([("m-1", "o1"), ("m-bad", "o2")], 30) == [False, False]


async def test_a_lapsed_claim_taken_over_is_marked_ambiguous_and_a_live_one_is_busy(
    redis: Redis,
) -> None:
    clock = Clock()
    book = ledger(redis, clock)
    await book.claim([ClaimRequest("m-1", "dead-worker")], 10)
    [busy] = await book.claim([ClaimRequest("m-1", "next-worker")], 10)
    assert busy.verdict is ClaimVerdict.BUSY
    clock.now += 11
    [taken] = await book.claim([ClaimRequest("m-1", "next-worker")], 10)
    assert taken.verdict is ClaimVerdict.CLAIMED
    record = await book.get("m-1")
    assert record is not None
    assert record.ambiguous_via == ("unknown",)


async def members(redis: Redis, ids: list[str], status: str) -> set[str]:
    """Which of `ids` the `all` index and the `status` index of their shards still hold."""
    held = set()
    for i in ids:
        shard = keys.shard_of(i)
        in_all = await redis.zscore(keys.index_all("t:", shard), i) is not None
        in_status = await redis.zscore(keys.index_status("t:", shard, status), i) is not None
        if in_all or in_status:
            held.add(i)
    return held


async def test_claims_trim_each_shard_once_per_interval_and_the_retention_still_holds(
    redis: Redis,
) -> None:
    clock, ttl = Clock(), 10  # a retention shorter than the interval shows the lag's bound
    book = Ledger(redis, "t:", ttl_seconds=ttl, clock=clock)
    first = [f"a-{n}" for n in range(64)]  # every shard
    await book.claim([ClaimRequest(i, "o") for i in first], 5)
    clock.now += ttl + 1  # `first` is past the retention, but no shard is due a trim yet
    second = [f"b-{n}" for n in range(64)]
    await book.claim([ClaimRequest(i, "o") for i in second], 5)
    assert await members(redis, first, "SENDING") == set(first)
    clock.now = Clock().now + TRIM_EVERY_SECONDS  # every shard is due: one trim each
    third = [f"c-{n}" for n in range(64)]
    await book.settle([Settlement(i, "o", RecordStatus.SENT, "ses") for i in third])
    assert await members(redis, first + second, "SENDING") == set()
    assert await members(redis, third, "SENT") == set(third)
    for shard in {keys.shard_of(i) for i in third}:
        expires = await redis.ttl(keys.index_all("t:", shard))
        assert ttl < expires <= ttl + TRIM_EVERY_SECONDS  # alive until the next trim is due


async def test_a_record_expires_from_its_creation_and_a_settle_writes_one_hash(
    redis: Redis,
) -> None:
    clock = Clock()
    book = ledger(redis, clock)
    await book.claim([ClaimRequest("m-1", "o1", created_at=clock.now - 5)], 30)
    await redis.expire(keys.message("t:", "m-1"), 100)  # as if created 3500 s ago
    await book.settle([Settlement("m-1", "o1", RecordStatus.SENT, "ses", "p-1", error=None)])
    assert 0 < await redis.ttl(keys.message("t:", "m-1")) <= 100  # the settle kept it
    record = await book.get("m-1")
    assert record is not None
    assert (record.status, record.attempts, record.provider_message_id) == ("SENT", 1, "p-1")
    [again] = await book.claim([ClaimRequest("m-1", "o2")], 30)
    assert again.verdict is ClaimVerdict.SENT


@pytest.mark.redis_targets("single")  # reads one server's INFO commandstats
async def test_a_batch_is_one_script_call_and_a_bad_record_fails_alone(redis: Redis) -> None:
    book = ledger(redis)
    await book.load_scripts()
    await redis.set(keys.message("t:", "m-bad"), "not a hash")
    ids = [f"m-{i}" for i in range(9)] + ["m-bad"]
    await redis.config_resetstat()
    claims = await book.claim([ClaimRequest(i, "o") for i in ids], 30)
    settled = await book.settle([Settlement(i, "o", RecordStatus.SENT, "ses") for i in ids])
    stats = await redis.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 2  # one claim call, one settle call
    assert [c.verdict for c in claims] == [ClaimVerdict.CLAIMED] * 9 + [ClaimVerdict.FAILED]
    assert [s.verdict for s in settled] == [SettleVerdict.OK] * 9 + [SettleVerdict.FAILED]
    assert "WRONGTYPE" in settled[-1].error
