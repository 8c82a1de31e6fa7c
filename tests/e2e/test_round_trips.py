"""`RoundTrips`: the commands queued in one loop turn go to Redis as one, each caller getting
its own replies and its own errors, on one Redis and on the cluster."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from dispatcher.ledger import SCRIPTS as LEDGER_SCRIPTS
from dispatcher.round_trips import RoundTrips
from dispatcher.scripts import Command, RedisClient

pytestmark = pytest.mark.redis_targets("single", "cluster")


def setting(key: str, value: str) -> list[Command]:
    return [("SET", key, value), ("GET", key)]


async def reads(redis: RedisClient) -> int:
    """Read events Redis has served (one per round trip), over every primary."""
    if isinstance(redis, RedisCluster):
        infos = await redis.info("stats", target_nodes=RedisCluster.PRIMARIES)
        return sum(int(info["total_reads_processed"]) for info in infos.values())
    return int((await redis.info("stats"))["total_reads_processed"])


async def test_calls_of_one_loop_turn_share_a_round_trip(redis: Redis) -> None:
    trips = RoundTrips(redis)
    before = await reads(redis)
    together = await asyncio.gather(
        *(trips.run([], setting(f"{{t}}:{i}", str(i))) for i in range(5))
    )
    middle = await reads(redis)
    for i in range(5):
        await trips.run([], setting(f"{{t}}:{i}", str(i)))
    after = await reads(redis)
    assert together == [[True, str(i).encode()] for i in range(5)]  # each caller its own replies
    # the same INFO cost on both sides: five calls in one turn took one read, five apart five
    assert (after - middle) - (middle - before) == 4


async def test_an_error_reply_raises_for_its_own_caller_only(redis: Redis) -> None:
    await redis.set("{t}:text", "words")
    trips = RoundTrips(redis)

    wrong: list[Command] = [("HGET", "{t}:text", "field")]  # WRONGTYPE

    results = await asyncio.gather(
        trips.run([], wrong), trips.run([], setting("{t}:ok", "1")), return_exceptions=True
    )
    assert isinstance(results[0], ResponseError)
    assert results[1] == [True, b"1"]
    isolated = await trips.run([], wrong, isolate=True)  # an error about one key, in place
    assert isinstance(isolated[0], ResponseError)


async def test_lost_scripts_are_loaded_again_for_everyone_in_the_trip(redis: Redis) -> None:
    trips = RoundTrips(redis)
    script = LEDGER_SCRIPTS[0]

    call_script = [script.call(["{t}:missing"], ["", "1000", "60", "retry_same"])]

    await redis.script_flush()  # on the cluster: every primary
    assert await redis.script_exists(script.sha) == [False]
    got = await asyncio.gather(
        trips.run([script], call_script), trips.run([], setting("{t}:x", "y"))
    )
    assert got[1] == [True, b"y"]
    assert not isinstance(got[0][0], Exception)


async def test_a_caller_that_stops_waiting_does_not_cancel_the_others(redis: Redis) -> None:
    trips = RoundTrips(redis)
    impatient = asyncio.create_task(trips.run([], setting("{t}:a", "1")))
    patient = asyncio.create_task(trips.run([], setting("{t}:b", "2")))
    await asyncio.sleep(0)
    impatient.cancel()
    assert await patient == [True, b"2"]
    assert await redis.get("{t}:a") == b"1"  # its calls went out all the same
