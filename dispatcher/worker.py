"""The dispatch loop: poll SQS, claim, send concurrently, record, then delete.

    pollers (N long-polls) -> admit (decode, claim: 1 Redis trip per batch) -> send tasks
    send tasks -> completions -> settler (ledger.settle: 1 Redis trip per flush)
               -> queue actions (delete / visibility / DLQ, batched by 10)

A message leaves the queue only after its outcome is recorded. `stop()` (SIGTERM) stops
polling, lets sends finish for `drain_seconds`, then hands unfinished messages back; a send that
was accepted but could not be recorded is kept invisible and journalled (`dispatcher.journal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import socket
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import structlog
from redis.exceptions import RedisError

from dispatcher.concurrency import AdaptiveLimit
from dispatcher.config import DispatchSettings
from dispatcher.delivery import Action, Decision, attempt, bound_receives, unfit
from dispatcher.journal import Journal
from dispatcher.ledger import Claim, ClaimRequest, ClaimVerdict, Ledger, RecordStatus
from dispatcher.message import Email, MessageError, decode
from dispatcher.queue import SQS_BATCH, Received, SqsQueue
from dispatcher.router import Route, Router
from dispatcher.settler import Settler
from dispatcher.slots import Slots
from dispatcher.stats import Stats
from dispatcher.upkeep import LedgerGate, adapt_limit, keep_visible

log = structlog.get_logger("dispatcher.worker")
T = TypeVar("T")
ADMIT_RETRY_SECONDS = 1  # a batch handed back after an unexpected error comes back this soon


@dataclass(slots=True)
class InFlight:
    received: Received
    email: Email
    owner: str
    attempts_before: int
    started: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None
    calls: list[str] = field(default_factory=list)  # providers called so far, in order
    record_failures: int = 0  # flushes in which Redis refused this record


class Worker:
    def __init__(
        self,
        policy: DispatchSettings,
        queue: SqsQueue,
        ledger: Ledger,
        router: Router,
        stats: Stats | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self.queue = queue
        self.ledger = ledger
        self.router = router
        self.stats = stats or Stats()
        self.rng = rng or random.Random()
        self.in_flight: dict[str, InFlight] = {}
        self.limit = AdaptiveLimit(policy)
        self.slots = Slots(self.limit.limit)
        self.settler = Settler(self)
        self._stopping = asyncio.Event()
        self._owner_prefix = f"{socket.gethostname()}:{os.getpid()}:{self.rng.getrandbits(32):x}"
        self._owners = itertools.count()
        self._lease = queue.visibility_timeout + 5.0
        self._taking_work = True
        self.ledger_gate = LedgerGate(ledger, self._stopping, self.rng)
        self.journal = Journal(Path(policy.journal_path))

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
            heartbeat = group.create_task(keep_visible(self, self._lease))
            limiting = group.create_task(adapt_limit(self))
            settling = group.create_task(self.settler.run())
            await self._stopping.wait()
            # Long polls are let finish (a cancelled one can still take messages on the server
            # side, hiding them for a visibility timeout); what they bring is handed back.
            await self._finish_sends(asyncio.gather(*pollers))
            await self._hand_back()
            heartbeat.cancel()
            limiting.cancel()
            await self.settler.close()
            settling.cancel()
        log.info("worker_stopped", sent=self.stats.sent, released=self.stats.released)

    async def _poll_loop(self) -> None:
        failures = empty = 0
        while not self.stopping:
            try:
                can_take = await self._can_take_work()
            except Exception as exc:  # a bug of ours: never end the loop (nor the worker)
                failures += 1
                await self._admit_failed(exc, [], failures)
                continue
            if not can_take:
                await self._until_stopped(asyncio.sleep(self.router.wait_hint()))
                continue
            if not self.ledger_gate.is_open:
                await self._until_stopped(self.ledger_gate.wait())
                continue
            room = await self._until_stopped(self.slots.acquire(SQS_BATCH))
            if room is None:
                return
            try:
                batch = await self.queue.receive(room)
                failures = 0
            except Exception as exc:  # network or AWS error: back off, never crash the loop
                self.slots.release(room)
                failures += 1
                log.warning("receive_failed", error=type(exc).__name__, detail=str(exc)[:200])
                await self._until_stopped(asyncio.sleep(min(10.0, 0.2 * 2 ** min(failures, 6))))
                continue
            self.slots.release(room - len(batch))
            if self._stopping.is_set():  # stopped during the long poll: hand the batch back
                self.slots.release(len(batch))
                self.stats.released += len(batch)
                self.settler.enqueue_visibility([(message, 0) for message in batch])
                return
            if batch:
                empty = 0
                self.stats.received += len(batch)
                admitted = self._decode_batch(batch)
                try:
                    await self._admit(admitted)
                except Exception as exc:  # a bug of ours: hand the batch back, keep polling
                    failures += 1
                    await self._admit_failed(exc, admitted, failures)
            elif self.queue.wait_seconds == 0:  # short polls: an empty queue must not spin
                empty += 1
                pause = min(1.0, 0.05 * 2 ** min(empty, 5)) * self.rng.uniform(0.5, 1.0)
                await self._until_stopped(asyncio.sleep(pause))

    async def _can_take_work(self) -> bool:
        """False while no provider can take a message (all open or throttled): then the worker
        stops pulling and the messages wait safely on the queue."""
        eligible = bool((await self.router.refresh()).eligible())
        if eligible != self._taking_work:
            self._taking_work = eligible
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
        """Claim decoded messages (1 Redis trip), then start a send task per claimed message.
        An error from the ledger or the router comes before any is started or put back."""
        if not admitted:
            return
        fresh = [entry for entry, _ in admitted]
        try:
            claims = await self.ledger.claim([request for _, request in admitted], self._lease)
        except RedisError as exc:
            log.warning("claim_failed", error=type(exc).__name__, count=len(fresh))
            self.settler.enqueue_visibility([(e.received, 5) for e in fresh])
            self.slots.release(len(fresh))
            self.ledger_gate.close()  # nobody receives until Redis answers again
            return
        claimed = [
            (e, c) for e, c in zip(fresh, claims, strict=True) if c.verdict is ClaimVerdict.CLAIMED
        ]
        if claimed:
            await self.router.refresh()
            routes = await self.router.plan(len(claimed), [e.email.size for e, _ in claimed])
            for (entry, claim), route in zip(claimed, routes, strict=True):
                self._start(entry, claim.attempts, route)
        for entry, claim in zip(fresh, claims, strict=True):
            if claim.verdict is not ClaimVerdict.CLAIMED:
                self.slots.release(1)
                self._unclaimed(entry, claim)

    def _unclaimed(self, entry: InFlight, claim: Claim) -> None:
        """Act on a message the ledger did not give us to send."""
        if claim.verdict is ClaimVerdict.BUSY:
            self.stats.busy += 1
            self.settler.enqueue_visibility([(entry.received, max(1, round(claim.busy_for)))])
        elif claim.verdict is ClaimVerdict.DEAD_LETTER:  # its DLQ copy may have failed
            self.settler.enqueue_dead_letter([(entry.received, claim.reason)])
        elif claim.verdict is ClaimVerdict.FAILED:  # Redis refused this one record
            log.warning("claim_refused", id=entry.email.id, error=claim.reason)
            receives = entry.received.receive_count
            if receives >= self.policy.max_receives:
                reason = f"max_receives {self.policy.max_receives} reached; last {claim.reason}"
                self.settler.enqueue_dead_letter([(entry.received, reason)])
            else:
                self.settler.enqueue_visibility([(entry.received, min(300, 5 * receives))])
        else:
            self.stats.duplicates += 1
            self.settler.enqueue_delete([entry.received])

    async def _admit_failed(
        self, exc: Exception, admitted: list[tuple[InFlight, ClaimRequest]], failures: int
    ) -> None:
        """After an unexpected error: hand back each message that did not start a send (its
        claim released, visible again soon), then back off. Logs the error class only."""
        waiting = [entry for entry, _ in admitted if entry.task is None]
        log.warning("admit_failed", error=type(exc).__name__, count=len(waiting))
        if waiting:
            try:  # else a claim taken before the error holds its message until the lease ends
                await self.ledger.extend([(e.email.id, e.owner) for e in waiting], 0)
            except Exception as error:
                log.warning("release_claims_failed", error=type(error).__name__)
            self.slots.release(len(waiting))
            self.settler.enqueue_visibility([(e.received, ADMIT_RETRY_SECONDS) for e in waiting])
        await self._until_stopped(asyncio.sleep(min(10.0, 0.2 * 2 ** min(failures, 6))))

    def _decode_batch(self, batch: list[Received]) -> list[tuple[InFlight, ClaimRequest]]:
        """Each message's send entry and claim request. A message that fails here in any way
        (a bug of ours included) is dead-lettered alone; the rest of the batch goes on."""
        admitted: list[tuple[InFlight, ClaimRequest]] = []
        for message in batch:
            try:
                entry = self._decode(message)
                if entry is not None:
                    email = entry.email
                    request = ClaimRequest(email.id, entry.owner, email.batch_id, email.created_at)
                    admitted.append((entry, request))
            except MessageError as exc:
                self._poison(message, exc)
            except Exception as exc:
                self._poison(message, MessageError("message", f"internal: {type(exc).__name__}"))
        return admitted

    def _poison(self, message: Received, error: MessageError) -> None:
        """Dead-letter one message that cannot be sent. The log line and the DLQ reason carry
        only the error's capped field name and fixed reason, never producer data."""
        self.slots.release(1)
        self.stats.poison += 1
        log.warning("poison_message", sqs_id=message.sqs_id, field=error.field, reason=error.reason)
        self.settler.enqueue_dead_letter([(message, f"invalid message: {error}")])

    def _decode(self, message: Received) -> InFlight | None:
        """A send entry for `message`, or None when it was dealt with here; raises
        `MessageError` for a message that cannot be sent."""
        email = decode(message.body)
        held = self.in_flight.get(email.id)
        if held is not None:  # this process is sending it already
            self.slots.release(1)
            if held.received.sqs_id == message.sqs_id:
                held.received = message  # the newest receipt is the one SQS honours
                self.stats.redelivered += 1
            else:
                self.stats.busy += 1
                self.settler.enqueue_visibility([(message, self.queue.visibility_timeout)])
            return None
        if unfit(email, self.router.providers):
            self.slots.release(1)
            self.settler.enqueue_dead_letter([(message, "too large for every provider")])
            return None
        return InFlight(message, email, f"{self._owner_prefix}:{next(self._owners)}", 0)

    def _start(self, entry: InFlight, attempts_before: int, route: Route) -> None:
        entry.attempts_before = attempts_before
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
                self.router,
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

    async def _finish_sends(self, pollers: asyncio.Future[list[None]]) -> None:
        """Let in-flight sends finish for `drain_seconds`, then cancel the rest. A poller that
        was admitting a batch when the stop came may still start sends: those are waited for
        too, and the hand-back only begins once every poller has returned."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.policy.drain_seconds
        log.info("draining", in_flight=len(self.in_flight), deadline_s=self.policy.drain_seconds)
        while True:
            sends = {e.task for e in self.in_flight.values() if e.task and not e.task.done()}
            waiting = sends | ({pollers} if not pollers.done() else set())
            if not waiting:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.wait(waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        await pollers  # a long poll is let end; what it brings is handed back
        late = [e.task for e in self.in_flight.values() if e.task and not e.task.done()]
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def _hand_back(self) -> None:
        """Record what finished; give every unfinished message back to the queue now. A send
        accepted but not recorded (Redis away) is never handed back: it is kept and journalled."""
        await self.settler.flush()
        self.settler.keep_unrecorded(self.journal)
        unfinished = list(self.in_flight.values())
        if unfinished:
            await self.settler.release(unfinished)
