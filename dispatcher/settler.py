"""Record outcomes, then act on the queue, in batches.

Completed sends accumulate while the previous flush runs, so one flush records many outcomes in
one Redis round trip and deletes in SQS batches of 10. A message is deleted, delayed or
dead-lettered only after the ledger holds its outcome; when Redis cannot be written the
completions wait for the next flush and the messages stay invisible (the heartbeat extends them).
A record that Redis refuses on its own (an error about its key) is retried `RECORD_TRIES` times,
then its message leaves the queue anyway: deleted if it was sent, else dead-lettered with the
reason. At shutdown, sends that were accepted but could not be recorded are kept invisible and
journalled (`dispatcher.journal`), never handed back.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Sequence

import structlog
from redis.exceptions import RedisError

from dispatcher.delivery import Action, Decision
from dispatcher.health.base import HealthStore, Observation
from dispatcher.in_flight import InFlight
from dispatcher.journal import Journal
from dispatcher.ledger import Ledger, RecordStatus, Settlement, SettleVerdict
from dispatcher.queue import MAX_VISIBILITY, Received, SqsQueue

log = structlog.get_logger("dispatcher.send")
RECORD_TRIES = 5  # flushes in which Redis refused one record before its message is let go
# A send the settler is done with: its decision and how the ledger took it (FAILED: given up).
Done = tuple[InFlight, Decision, SettleVerdict]
_REASON_CLASS = re.compile(r"[A-Za-z_ ]+")


def reason_class(reason: str) -> str:
    """A dead-letter reason's class, for a metric label: its leading words, before the first
    digit, colon or semicolon (`invalid message`, `max_attempts`, `internal`, ...)."""
    found = _REASON_CLASS.match(reason)
    return (found.group().strip() if found else "") or "other"


class Settler:
    """Records outcomes in `ledger` and `health`, then acts on `queue`. Each flush returns the
    sends it is done with (recorded, or let go); their in-flight bookkeeping is the caller's."""

    def __init__(self, ledger: Ledger, health: HealthStore, queue: SqsQueue) -> None:
        self._ledger, self._health, self._queue = ledger, health, queue
        self._completions: list[tuple[InFlight, Decision]] = []
        self._observations: list[Observation] = []  # not yet fed to the health windows
        self._deletes: list[Received] = []
        self._delays: list[tuple[Received, int]] = []
        self._dead: list[tuple[Received, str]] = []
        self._wake = asyncio.Event()
        self._redis_failures = 0
        self.redis_errors = 0  # ledger and health writes Redis failed (the metrics read it)
        self.dead_letters: Counter[str] = Counter()  # moved to the DLQ, by reason class
        # One flush at a time: the shutdown's flush must wait for the one in progress, or it
        # would see no completions and hand back messages that are being recorded as SENT.
        self._flushing = asyncio.Lock()

    def complete(self, entry: InFlight, decision: Decision) -> None:
        self._completions.append((entry, decision))
        self._observations.extend(decision.observations)
        self._wake.set()

    def enqueue_delete(self, messages: Sequence[Received]) -> None:
        self._deletes.extend(messages)
        self._wake.set()

    def enqueue_visibility(self, messages: Sequence[tuple[Received, int]]) -> None:
        self._delays.extend(messages)
        self._wake.set()

    def enqueue_dead_letter(self, messages: Sequence[tuple[Received, str]]) -> None:
        self._dead.extend(messages)
        self._wake.set()

    async def next_flush(self) -> list[Done]:
        """Wait for something to settle, then flush; returns what the flush is done with. After
        a flush Redis refused, a growing pause instead, then the same work again."""
        if self._redis_failures:
            await asyncio.sleep(min(5.0, 0.1 * 2 ** min(self._redis_failures, 6)))
        else:
            await self._wake.wait()
        self._wake.clear()
        return await self.flush()

    async def flush(self) -> list[Done]:
        """Record the completions, then act on the queue; returns the sends it is done with."""
        async with self._flushing:
            return await self._flush()

    async def _flush(self) -> list[Done]:
        completions, self._completions = self._completions, []
        done = await self._record(completions) if completions else []
        deletes, self._deletes = self._deletes, []
        delays, self._delays = self._delays, []
        dead, self._dead = self._dead, []
        if deletes or delays or dead:
            await self._act(deletes, delays, dead)
        return done

    async def _record(self, completions: list[tuple[InFlight, Decision]]) -> list[Done]:
        # Each outcome feeds the health windows once, even when the ledger write is retried.
        observations, self._observations = self._observations, []
        settled, observed = await asyncio.gather(
            self._ledger.settle([_settlement(e, d) for e, d in completions]),
            self._observe(observations),
            return_exceptions=True,
        )
        if isinstance(observed, BaseException):  # not a Redis error: _observe handles those
            raise observed
        if isinstance(settled, BaseException):
            if not isinstance(settled, RedisError):
                raise settled
            self._redis_failures += 1
            self.redis_errors += 1
            if self._redis_failures == 1:
                log.warning("ledger_unavailable", error=type(settled).__name__)
            self._completions[:0] = completions
            return []
        if self._redis_failures:
            log.info("ledger_restored", failed_flushes=self._redis_failures)
        self._redis_failures = 0
        done: list[Done] = []
        for (entry, decision), result in zip(completions, settled, strict=True):
            if result.verdict is SettleVerdict.FAILED and not self._give_up(entry, decision):
                self._completions.append((entry, decision))  # tried again at the next flush
                continue
            done.append((entry, decision, result.verdict))
            if result.verdict in (SettleVerdict.FAILED, SettleVerdict.STALE):
                if result.verdict is SettleVerdict.STALE:
                    log.warning("claim_lost", id=entry.email.id)
                continue
            self._act_on(entry, decision, result.verdict)
            _canonical_line(entry, decision, result.attempts)
        return done

    def _act_on(self, entry: InFlight, decision: Decision, verdict: SettleVerdict) -> None:
        """Queue the SQS action that follows a recorded outcome."""
        if verdict is SettleVerdict.SENT or decision.action is Action.DELETE:
            self._deletes.append(entry.received)
        elif decision.action is Action.RETRY:
            self._delays.append((entry.received, decision.delay))
        else:
            self._dead.append((entry.received, decision.reason))

    def _give_up(self, entry: InFlight, decision: Decision) -> bool:
        """After RECORD_TRIES refusals of one record, act without it: a sent message is deleted
        (it must not go out again), any other goes to the DLQ with the reason. True then."""
        entry.record_failures += 1
        if entry.record_failures < RECORD_TRIES:
            return False
        sent = decision.status is RecordStatus.SENT
        log.error("record_failed", id=entry.email.id, sent=sent, tries=entry.record_failures)
        if sent:
            self._deletes.append(entry.received)
        else:
            reason = f"ledger refused the record; {decision.reason or decision.status.value}"
            self._dead.append((entry.received, reason))
        return True

    async def _observe(self, observations: list[Observation]) -> None:
        """Feed the health windows; a failure here never holds a message back."""
        if not observations:
            return
        try:
            await self._health.record(observations)
        except RedisError as exc:
            self.redis_errors += 1
            log.warning("health_record_failed", error=type(exc).__name__)

    async def _act(
        self,
        deletes: list[Received],
        delays: list[tuple[Received, int]],
        dead: list[tuple[Received, str]],
    ) -> None:
        queue = self._queue
        results = await asyncio.gather(
            queue.delete(deletes),
            queue.change_visibility([(m.receipt, s) for m, s in delays]),
            queue.dead_letter(dead),
            return_exceptions=True,
        )
        if dead and isinstance(results[2], list):  # counted once the DLQ holds them
            left = {id(m) for m in results[2]}
            self.dead_letters.update(reason_class(r) for m, r in dead if id(m) not in left)
        for name, result in zip(
            ("delete", "change_visibility", "dead_letter"), results, strict=True
        ):
            if isinstance(result, BaseException) or result:
                # The message stays on the queue and comes back; the ledger decides then.
                log.warning(
                    "queue_action_failed",
                    action=name,
                    error=type(result).__name__
                    if isinstance(result, BaseException)
                    else f"{len(result)} entries",
                )

    def keep_unrecorded(self, journal: Journal) -> list[InFlight]:
        """At shutdown, after the last flush: the sends a provider accepted that Redis has not
        recorded stay invisible as long as SQS allows, journalled for the next start. Returns
        the entries kept; the other unrecorded completions are dropped, to be handed back."""
        completions, self._completions = self._completions, []
        sent = [(e, d) for e, d in completions if d.status is RecordStatus.SENT]
        if not sent:
            return []
        journal.append([(_settlement(e, d), e.received.receipt) for e, d in sent])
        kept = [e for e, _ in sent]
        self._delays.extend((e.received, MAX_VISIBILITY) for e in kept)
        log.error("unrecorded_sends_kept", count=len(kept), journal=str(journal.path))
        return kept

    async def release(self, entries: Sequence[InFlight]) -> None:
        """Hand unfinished messages back at shutdown: claim released, visible again now. A send
        cancelled while a provider was being called may have been accepted: it is recorded as
        ambiguous via that provider (and counted as an attempt) rather than just released."""
        cut: list[InFlight] = []
        untouched: list[InFlight] = []
        for entry in entries:
            mid_call = entry.calls and entry.task is not None and entry.task.cancelled()
            (cut if mid_call else untouched).append(entry)
        for result in await asyncio.gather(
            self._ledger.extend([(e.email.id, e.owner) for e in untouched], 0),
            self._ledger.settle([_interrupted(e) for e in cut]),
            return_exceptions=True,
        ):
            if isinstance(result, BaseException):
                if not isinstance(result, RedisError):
                    raise result
                log.warning("release_claims_failed", error=type(result).__name__)
        try:
            failed = len(
                await self._queue.change_visibility([(e.received.receipt, 0) for e in entries])
            )
        except Exception as exc:  # they reappear after their visibility timeout instead
            log.warning("release_visibility_failed", error=type(exc).__name__)
            failed = len(entries)
        log.info("released", count=len(entries), ambiguous=len(cut), visibility_failed=failed)


def _interrupted(entry: InFlight) -> Settlement:
    """A send cancelled mid-call at the drain deadline: back to QUEUED, ambiguous via the
    provider it was calling."""
    return Settlement(
        message_id=entry.email.id,
        owner=entry.owner,
        status=RecordStatus.QUEUED,
        error="interrupted at shutdown",
        ambiguous_via=entry.calls[-1],
    )


def _settlement(entry: InFlight, decision: Decision) -> Settlement:
    last = decision.last
    return Settlement(
        message_id=entry.email.id,
        owner=entry.owner,
        status=decision.status,
        provider=last.provider if last else None,
        provider_message_id=last.provider_message_id if last else None,
        error=None if decision.status is RecordStatus.SENT else decision.reason or None,
        count_attempt=decision.count_attempt,
        ambiguous_via=decision.ambiguous_via,
        dead_letter=decision.action is Action.DEAD_LETTER,
    )


def _canonical_line(entry: InFlight, decision: Decision, attempts: int) -> None:
    last = decision.last
    log.info(
        "send",
        id=entry.email.id,
        batch_id=entry.email.batch_id,
        status=decision.status.value,
        action=decision.action.value,
        provider=last.provider if last else None,
        outcome=last.status.value if last else None,
        error=last.error if last and last.error else None,
        latency_ms=round(1000 * sum(o.latency for o in decision.tried), 1),
        attempt=attempts,
        delay_s=decision.delay or None,
        tried=",".join(f"{o.provider}:{o.status.value}" for o in decision.tried) or None,
    )
