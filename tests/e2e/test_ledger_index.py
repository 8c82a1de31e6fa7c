"""Status vocabulary and status indexes on a real Redis: every script that changes a status
moves the id between its shard's indexes; list pages, batch counts, trimming and expiry."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from dispatcher import keys
from dispatcher.intake import Accepted, IntakeLedger, Pending
from dispatcher.ledger import ClaimRequest, Ledger, RecordStatus, Settlement
from dispatcher.records import CursorError, Query, Records, decode_cursor
from tests.support.clock import Clock

TTL = 3600


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def books(redis: Redis, clock: Clock) -> tuple[IntakeLedger, Ledger, Records]:
    return (
        IntakeLedger(redis, "t:", TTL, lease_seconds=30, clock=clock),
        Ledger(redis, "t:", TTL, clock=clock),
        Records(redis, "t:", TTL, clock),
    )


async def where(redis: Redis, message_id: str) -> list[str]:
    """The status indexes that hold `message_id`."""
    shard = keys.shard_of(message_id)
    return [
        s
        for s in keys.STATUSES
        if await redis.zscore(keys.index_status("t:", shard, s), message_id) is not None
    ]


def test_every_key_of_a_record_script_is_in_one_cluster_slot() -> None:
    for message_id in ("a", "order-42", "x" * 200, "c-0f3e"):
        slots = {key_slot(k.encode()) for k in keys.record_keys("d:", message_id, "batch:7")}
        assert len(slots) == 1
    assert len({keys.shard_of(f"m{i}") for i in range(1000)}) == keys.SHARDS


async def test_the_lifecycle_moves_the_id_through_one_index_at_a_time(
    redis: Redis, books: tuple[IntakeLedger, Ledger, Records]
) -> None:
    intake, ledger, records = books
    assert await intake.accept([Pending("m1", "b1")], "req-1", "ops") == [Accepted.NEW]
    assert await where(redis, "m1") == ["PENDING"]
    await intake.enqueued(["m1"], [], "req-1")
    assert await where(redis, "m1") == ["QUEUED"]
    await ledger.claim([ClaimRequest("m1", "w1", "b1")], 30)
    assert await where(redis, "m1") == ["SENDING"]
    await ledger.settle([Settlement("m1", "w1", RecordStatus.QUEUED, "ses", error="http_503")])
    assert await where(redis, "m1") == ["QUEUED"]
    await ledger.claim([ClaimRequest("m1", "w2", "b1")], 30)
    await ledger.settle([Settlement("m1", "w2", RecordStatus.SENT, "ses", "ses-1")])
    assert await where(redis, "m1") == ["SENT"]
    record = await records.get("m1")
    assert record is not None
    assert (record.status, record.created_by, record.batch_id, record.attempts) == (
        RecordStatus.SENT,
        "ops",
        "b1",
        2,
    )
    counts = await records.batch_counts("b1")
    assert (counts.total, counts.by_status["SENT"], counts.by_status["QUEUED"]) == (1, 1, 0)


async def test_a_worker_claims_a_pending_record_and_a_release_queues_it(
    redis: Redis, books: tuple[IntakeLedger, Ledger, Records]
) -> None:
    intake, ledger, _ = books
    await intake.accept([Pending("m2", "b1")], "req-1", "ops")
    [claim] = await ledger.claim([ClaimRequest("m2", "w1", "b1")], 30)  # before QUEUED is marked
    assert claim.attempts == 0
    await intake.enqueued(["m2"], [], "req-1")
    assert await where(redis, "m2") == ["SENDING"]  # the late mark does not step back
    assert await ledger.extend([("m2", "w1")], 0) == [True]
    assert await where(redis, "m2") == ["QUEUED"]


async def test_a_message_enqueued_by_a_producer_is_indexed_at_its_first_claim(
    redis: Redis, books: tuple[IntakeLedger, Ledger, Records], clock: Clock
) -> None:
    _, ledger, records = books
    created = clock.now - 10 * TTL  # older than the retention: indexed at its floor
    await ledger.claim([ClaimRequest("p1", "w1", "direct", created)], 30)
    await ledger.settle([Settlement("p1", "w1", RecordStatus.ERROR, "ses", error="rejected")])
    shard = keys.shard_of("p1")
    assert await redis.zscore(keys.index_all("t:", shard), "p1") == (clock.now - TTL) * 1000
    assert await where(redis, "p1") == ["ERROR"]
    page = await records.page(Query(status=RecordStatus.ERROR))
    assert [r.message_id for r in page.records] == ["p1"]
    assert (await records.batch_counts("direct")).by_status["ERROR"] == 1


async def test_intake_duplicates_retakes_and_leases(
    books: tuple[IntakeLedger, Ledger, Records], clock: Clock
) -> None:
    intake, _, _ = books
    first = [Pending("c1", "camp"), Pending("c2", "camp"), Pending("c1", "camp")]
    assert await intake.accept(first, "up-1", "ops") == [
        Accepted.NEW,
        Accepted.NEW,
        Accepted.DUPLICATE,  # the same upload saw it already
    ]
    await intake.enqueued(["c1"], ["c2"], "up-1")  # SQS refused c2: released at once
    again = [Pending("c1", "camp"), Pending("c2", "camp"), Pending("c3", "camp")]
    assert await intake.accept(again, "up-2", "ops") == [
        Accepted.DUPLICATE,  # queued already
        Accepted.RETAKEN,
        Accepted.NEW,
    ]
    assert await intake.accept([Pending("c3", "camp")], "up-3", "ops") == [Accepted.DUPLICATE]
    clock.now += 31  # up-2 died: its lease lapsed
    assert await intake.accept([Pending("c3", "camp")], "up-3", "ops") == [Accepted.RETAKEN]
    await intake.enqueued(["c3"], [], "up-2")  # the dead intake's late mark changes nothing
    assert (await intake_status(books, "c3")) is RecordStatus.PENDING


async def intake_status(books: tuple[IntakeLedger, Ledger, Records], message_id: str) -> object:
    record = await books[2].get(message_id)
    return record and record.status


async def test_pages_walk_every_shard_newest_first_without_gaps_or_repeats(
    books: tuple[IntakeLedger, Ledger, Records], clock: Clock
) -> None:
    intake, ledger, records = books
    start = clock.now
    for n in range(120):
        clock.now = start + n // 2  # two ids per second: ties are ordered by id
        batch = "even" if n % 2 == 0 else "odd"
        await intake.accept([Pending(f"m{n:03d}", batch)], f"r{n}", "ops")
        await intake.enqueued([f"m{n:03d}"], [], f"r{n}")
    await ledger.claim([ClaimRequest("m007", "w"), ClaimRequest("m008", "w")], 30)
    seen: list[str] = []
    cursor = None
    while True:
        page = await records.page(Query(limit=25, cursor=cursor))
        seen.extend(r.message_id for r in page.records)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [f"m{n:03d}" for n in reversed(range(120))]
    queued_even = await records.page(Query(status=RecordStatus.QUEUED, batch_id="even", limit=1000))
    assert len(queued_even.records) == 59  # m008 is SENDING
    assert queued_even.next_cursor is None
    window = await records.page(Query(created_from=start + 10, created_to=start + 19))
    assert [r.message_id for r in window.records] == [f"m{n:03d}" for n in range(39, 19, -1)]
    with pytest.raises(CursorError):
        decode_cursor("bm90LWEtY3Vyc29y")


async def test_indexes_are_trimmed_past_the_retention_and_expire(
    redis: Redis, books: tuple[IntakeLedger, Ledger, Records], clock: Clock
) -> None:
    intake, _, records = books
    old = [Pending(f"o{n}", "b") for n in range(40)]
    await intake.accept(old, "r1", "ops")
    clock.now += TTL + 1
    new = [Pending(f"n{n}", "b") for n in range(40)]
    await intake.accept(new, "r2", "ops")
    assert (await records.batch_counts("b")).by_status["PENDING"] == 40
    page = await records.page(Query(limit=100))
    assert {r.message_id for r in page.records} == {p.message_id for p in new}
    written = {keys.shard_of(p.message_id) for p in new}
    for shard in range(keys.SHARDS):
        for key in (keys.index_all("t:", shard), keys.index_status("t:", shard, "PENDING")):
            members = {str(m) for m in await redis.zrange(key, 0, -1)}
            if shard in written:  # trimmed by the write; the others expire with their records
                assert not any(m.startswith("b'o") for m in members)
            assert 0 < await redis.ttl(key) <= TTL


async def test_a_claim_resent_after_lost_scripts_still_trims_its_shard(
    redis: Redis, books: tuple[IntakeLedger, Ledger, Records], clock: Clock
) -> None:
    _, ledger, _ = books
    old = "o1"
    new = next(f"n{i}" for i in range(1000) if keys.shard_of(f"n{i}") == keys.shard_of(old))
    await ledger.claim([ClaimRequest(old, "w1")], 30)
    await ledger.settle([Settlement(old, "w1", RecordStatus.SENT, "ses", "ses-1")])
    assert await where(redis, old) == ["SENT"]
    clock.now += TTL + 1  # past the retention, and a trim of the shard is due again
    await redis.script_flush()  # the claim below is answered NOSCRIPT, then sent again
    await ledger.claim([ClaimRequest(new, "w1")], 30)
    assert await where(redis, new) == ["SENDING"]
    assert await where(redis, old) == []  # the resent claim still carried the shard's trim
