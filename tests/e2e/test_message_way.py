"""The way of one message (issue 9): the calls that carry it from module to module, measured on
a real worker by `bench.trace_path`, stay few, begin at the receive, end at the delete, and
never call back up into the worker."""

from __future__ import annotations

from pathlib import Path

from bench.message_way import MessageWay
from bench.trace_path import trace
from dispatcher.dev.stack import Fauxqs, RedisServer
from dispatcher.queue import Received

ROOT = Path(__file__).resolve().parents[2]


def test_a_call_carries_the_message_only_when_it_hands_the_message_on() -> None:
    way = MessageWay(ROOT, "m-7")
    received = Received("sqs-1", "receipt-1", '{"id":"m-7"}', 1)
    assert way.carries(received)
    assert way.carries([received])
    assert way.carries({"x": (received,)})
    assert not way.carries("m-7")  # a bare id names the message; it does not carry it
    assert not way.carries(Received("sqs-2", "receipt-2", '{"id":"m-8"}', 1))
    assert not way.carries(3)


async def test_a_call_handed_over_unstarted_carries_what_it_holds() -> None:
    way = MessageWay(ROOT, "m-7")
    received = Received("sqs-1", "receipt-1", '{"id":"m-7"}', 1)

    async def send(message: Received) -> None:
        return None

    started = send(received)
    assert way.carries(started)  # a coroutine whose argument is the message
    started.close()
    assert way.carries(lambda: received)  # a closure over it
    assert not way.carries(lambda: "m-7")
    other = send(Received("sqs-2", "receipt-2", '{"id":"m-8"}', 1))
    assert not way.carries(other)
    other.close()


async def test_one_message_takes_at_most_twelve_calls_across_eight_modules(
    redis_server: RedisServer, fauxqs: Fauxqs
) -> None:
    recorder = await trace(str(fauxqs.endpoint_url), redis_server.url)
    calls = sorted(recorder.way)
    callees = {f"{callee[0]}.{callee[1]}" for _, callee in calls}
    modules = {site[0] for call in calls for site in call}
    assert len(calls) <= 12, calls
    assert len(modules) <= 8, sorted(modules)
    assert "providers.base" not in modules  # the provider's own module takes the message
    assert "dispatcher.queue.SqsQueue.receive" in callees
    assert "dispatcher.queue.SqsQueue.delete" in callees
    assert "dispatcher.ledger.Ledger.claim" in callees
    assert "dispatcher.ledger.Ledger.settle" in callees
    assert not [c for c in callees if c.startswith("dispatcher.worker.")]  # nothing calls back up
    assert len(recorder.calls) > len(calls)  # the deep count saw the helpers too
