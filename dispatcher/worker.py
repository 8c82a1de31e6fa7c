"""The dispatch loop: poll SQS, claim, send concurrently, record, then delete.

    pollers (N long-polls) -> admit (decode, plan, claim: 1 Redis trip per batch) -> send tasks
    send tasks -> completions -> settler (ledger.settle and health.record: 1 Redis trip per
               flush, `dispatcher.round_trips`) -> queue actions (delete / visibility / DLQ,
               batched by 10); the worker frees the slots of what each flush settled

A message leaves the queue only after its outcome is recorded. `stop()` (SIGTERM) stops
polling, lets sends finish for `drain_seconds`, then hands unfinished messages back; a send that
was accepted but could not be recorded is kept invisible and journalled (`dispatcher.journal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import structlog

from dispatcher.admission import Route
from dispatcher.backoff import PollBackoff
from dispatcher.claims import Claims
from dispatcher.concurrency import AdaptiveLimit, adapt_limit
from dispatcher.config import DispatchSettings
from dispatcher.delivery import Action, Decision, attempt, bound_receives
from dispatcher.drain import finish_sends
from dispatcher.heartbeat import keep_visible
from dispatcher.in_flight import InFlight
from dispatcher.journal import Journal
from dispatcher.ledger import ClaimRequest, Ledger, RecordStatus
from dispatcher.ledger_epoch import LedgerEpoch
from dispatcher.ledger_gate import LedgerGate
from dispatcher.queue import SQS_BATCH, Received, SqsQueue
from dispatcher.router import Router
from dispatcher.settler import Done, Settler
from dispatcher.slots import Slots
from dispatcher.stats import Stats

log = structlog.get_logger("dispatcher.worker")
T = TypeVar("T")


class Worker:
    def __init__(
        self,
        policy: DispatchSettings,
        queue: SqsQueue,
        ledger: Ledger,
        router: Router,
        stats: Stats | None = None,
        rng: random.Random | None = None,
        epoch: LedgerEpoch | None = None,
    ) -> None:
        self.policy = policy
        self.epoch = epoch  # the ledger's epoch, checked on each heartbeat
        self.queue = queue
        self.ledger = ledger
        self.router = router
        self.stats = stats or Stats()
        self.rng = rng or random.Random()
        self.in_flight: dict[str, InFlight] = {}
        self.limit = AdaptiveLimit(policy)
        self.slots = Slots(self.limit.limit)
        self.settler = Settler(ledger, router.health, queue)
        self._stopping = asyncio.Event()
        self._lease = queue.visibility_timeout + 5.0
        self._taking_work = True
        self.ledger_gate = LedgerGate(ledger, self._stopping, self.rng)
        self.claims = self._claims()
        self.journal = Journal(Path(policy.journal_path))

    def _claims(self) -> Claims:
        """The batch decoder and claimer, on this worker's ledger, gate, settler and slots."""
        owner_prefix = f"{socket.gethostname()}:{os.getpid()}:{self.rng.getrandbits(32):x}"
        return Claims(
            self.policy,
            self.ledger,
            self.ledger_gate,
            self.settler,
            self.slots,
            self.stats,
            self.in_flight,
            self.router.providers,
            visibility_timeout=self.queue.visibility_timeout,
            lease=self._lease,
            owner_prefix=owner_prefix,
            release=self.router.health.release,
        )

    def stop(self) -> None:
        """Stop polling and begin the drain (safe to call from a signal handler)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        await self.ledger.load_scripts()
        await self.journal.replay(self.ledger, self.queue)
        async with asyncio.TaskGroup() as group:
            pollers = [group.create_task(self._poll_loop()) for _ in range(self.policy.pollers)]
            heartbeat = group.create_task(
                keep_visible(self.queue, self.ledger, self.in_flight, self._lease, self.epoch)
            )
            limiting = group.create_task(adapt_limit(self.limit, self.slots))
            settling = group.create_task(self._settle())
            await self._stopping.wait()
            # Long polls are let finish (a cancelled one can still take messages on the server
            # side, hiding them for a visibility timeout); what they bring is handed back.
            await finish_sends(self.in_flight, asyncio.gather(*pollers), self.policy.drain_seconds)
            await self._hand_back()
            heartbeat.cancel()
            limiting.cancel()
            self._finished(await self.settler.flush())  # the last: all recorded is acted on
            settling.cancel()
        log.info("worker_stopped", sent=self.stats.sent, released=self.stats.released)

    async def _poll_loop(self) -> None:
        backoff = PollBackoff()
        while not self.stopping:
            if not await self._may_receive(backoff):
                continue
            room = await self._until_stopped(self.slots.acquire(SQS_BATCH))
            if room is None:
                return
            batch = await self._receive(room, backoff)
            if self._stopping.is_set():  # stopped during the long poll: hand the batch back
                self.slots.release(len(batch))
                self.stats.released += len(batch)
                self.settler.enqueue_visibility([(message, 0) for message in batch])
                return
            self.stats.note_receive(len(batch))
            if batch:
                backoff.empty = 0
                admitted = self.claims.decode_batch(batch)
                try:
                    await self._admit(admitted)
                except Exception as exc:  # a bug of ours: hand the batch back, keep polling
                    await self._admit_failed(exc, admitted, backoff)
            elif self.queue.wait_seconds == 0:  # short polls: an empty queue must not spin
                await self._until_stopped(asyncio.sleep(backoff.idle(self.rng)))

    async def _may_receive(self, backoff: PollBackoff) -> bool:
        """Wait while no provider can take work or the ledger is away; True to receive now."""
        try:
            can_take = await self._can_take_work()
        except Exception as exc:  # a bug of ours: never end the loop (nor the worker)
            await self._admit_failed(exc, [], backoff)
            return False
        if not can_take:
            await self._until_stopped(asyncio.sleep(self.router.wait_hint()))
            return False
        if not self.ledger_gate.is_open:
            await self._until_stopped(self.ledger_gate.wait())
            return False
        return True

    async def _receive(self, room: int, backoff: PollBackoff) -> list[Received]:
        """One receive of up to `room` messages; unused slots are given back. After a network
        or AWS error: none, after a growing pause (never a crash of the loop)."""
        try:
            batch = await self.queue.receive(room)
            backoff.failures = 0
        except Exception as exc:
            self.slots.release(room)
            log.warning("receive_failed", error=type(exc).__name__, detail=str(exc)[:200])
            await self._until_stopped(asyncio.sleep(backoff.failed()))
            return []
        self.slots.release(room - len(batch))
        return batch

    async def _can_take_work(self) -> bool:
        """False while no provider can take a message (all open or throttled): then the worker
        stops pulling and the messages wait safely on the queue."""
        eligible = bool((await self.router.refresh()).eligible())
        if eligible != self._taking_work:
            self._taking_work = eligible
            self.stats.shedding(not eligible, time.monotonic())
            if eligible:
                log.info("shedding_ended")
            else:
                log.warning("shedding_started", wait_s=round(self.router.wait_hint(), 2))
        if not eligible:
            self.stats.shed_polls += 1
        return eligible

    async def _until_stopped(self, awaitable: Awaitable[T]) -> T | None:
        """Await `awaitable` unless `stop()` comes first (then cancel it and return None)."""
        work = asyncio.ensure_future(awaitable)
        stop = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if work.done():
            return work.result()
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        return None

    async def _admit(self, admitted: list[tuple[InFlight, ClaimRequest]]) -> None:
        """Plan a route per decoded message, claim them with their first choices recorded (1
        Redis trip), then start a send task per claimed message. An error from the ledger or
        the router comes before any is started or put back."""
        if admitted:
            await self.router.refresh()
            routes = await self.router.plan(len(admitted), [e.email.size for e, _ in admitted])
            claimed = await self.claims.claim(admitted, routes)
            if claimed:
                self.stats.claimed(time.time(), [e.received.sent_at for e, _ in claimed])
                for entry, route in claimed:
                    self._start(entry, route)

    async def _admit_failed(
        self, exc: Exception, admitted: list[tuple[InFlight, ClaimRequest]], backoff: PollBackoff
    ) -> None:
        """After an unexpected error: hand the batch back, then back off."""
        await self.claims.hand_back(exc, admitted)
        await self._until_stopped(asyncio.sleep(backoff.failed()))

    def _start(self, entry: InFlight, route: Route) -> None:
        self.in_flight[entry.email.id] = entry
        entry.task = asyncio.create_task(self._send(entry, route), name=f"send:{entry.email.id}")

    async def _send(self, entry: InFlight, route: Route) -> None:
        if route.delay > 0:  # its rate token is booked a little ahead: wait for its turn
            await asyncio.sleep(route.delay)
        first = route.order[0].name if route.order else None
        started = self.router.begin(first) if first is not None else 0.0
        try:
            decision = await attempt(
                entry.email,
                route,
                self.router.admission,
                entry.attempts_before,
                self.policy,
                self.rng,
                entry.calls,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug of ours: keep the message, retry it later
            log.exception("send_crashed", id=entry.email.id)
            decision = Decision(
                RecordStatus.QUEUED,
                Action.RETRY,
                (),
                reason=f"internal: {type(exc).__name__}",
                delay=30,
                count_attempt=False,
            )
        finally:
            if first is not None:
                self.router.end(first, started)
        for outcome in decision.tried:
            self.stats.record(outcome)
            self.limit.observe(outcome)
        decision = bound_receives(decision, entry.received.receive_count, self.policy)
        self.settler.complete(entry, decision)

    async def _hand_back(self) -> None:
        """Record what finished; give every unfinished message back to the queue now. A send
        accepted but not recorded (Redis away) is never handed back: it is kept and journalled."""
        self._finished(await self.settler.flush())
        for entry in self.settler.keep_unrecorded(self.journal):
            self._forget(entry)
        unfinished = list(self.in_flight.values())
        if unfinished:
            await self.settler.release(unfinished)
            for entry in unfinished:
                self._forget(entry)
            self.stats.released += len(unfinished)

    def _forget(self, entry: InFlight) -> None:
        """This worker is done with `entry`: its slot is free."""
        self.in_flight.pop(entry.email.id, None)
        self.slots.release(1)

    async def _settle(self) -> None:
        """The settler's loop: each flush's finished sends have their slots freed here."""
        while True:
            self._finished(await self.settler.next_flush())

    def _finished(self, done: list[Done]) -> None:
        """The settler is done with these sends: free their slots and count them."""
        for entry, decision, verdict in done:
            self._forget(entry)
            self.stats.settle(decision, verdict)
