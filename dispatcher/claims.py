"""From a received batch to the sends a worker may make: decode, claim, and the rest.

decode   each body into an `Email` and a claim request; a message that cannot be sent is
         dead-lettered alone (the log line and the reason carry no producer data); one this
         worker is already sending keeps its newest receipt
claim    one Redis round trip for the batch, each message's planned first choice recorded as the
         provider it is about to be sent to (`via`); what is not ours to send is dealt with on the
         queue here: already settled (delete), being sent elsewhere (hide for the rest of
         that lease), dead-lettered earlier without a copy (copy, then delete), refused by
         Redis (retry later, then the DLQ after max_receives), addressed to a suppressed
         recipient (the claim script recorded it ERROR `suppressed`: delete, unsent); a probe
         permit booked for a message not claimed is handed back; after an ambiguous outcome,
         under `retry_same`, its route keeps to that provider (`delivery.keep_to`)
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace

import structlog
from redis.exceptions import RedisError

from dispatcher.admission import Route
from dispatcher.config import DispatchSettings
from dispatcher.delivery import keep_to
from dispatcher.health.base import Permit
from dispatcher.in_flight import InFlight
from dispatcher.ledger import Claim, ClaimRequest, ClaimVerdict, Ledger
from dispatcher.ledger_gate import LedgerGate
from dispatcher.message import MessageError, decode
from dispatcher.queue import Received
from dispatcher.settler import Settler
from dispatcher.slots import Slots
from dispatcher.stats import Stats
from providers.base import Provider

log = structlog.get_logger("dispatcher.worker")
ADMIT_RETRY_SECONDS = 1  # a batch handed back after an unexpected error comes back this soon


class Claims:
    def __init__(
        self,
        policy: DispatchSettings,
        ledger: Ledger,
        gate: LedgerGate,
        settler: Settler,
        slots: Slots,
        stats: Stats,
        in_flight: Mapping[str, InFlight],
        providers: Sequence[Provider],
        *,
        visibility_timeout: int,
        lease: float,
        owner_prefix: str,
        release: Callable[[Sequence[Permit]], Awaitable[None]],
    ) -> None:
        self._policy, self._ledger, self._gate, self._settler = policy, ledger, gate, settler
        self._slots, self._stats, self._in_flight = slots, stats, in_flight
        self._providers = tuple(providers)
        self._largest = max((p.max_message_bytes for p in self._providers), default=0)
        self._visibility, self._lease = visibility_timeout, lease
        self._owner_prefix = owner_prefix
        self._owners = itertools.count()
        self._release = release  # hands probe permits back to the health store

    async def claim(
        self, admitted: list[tuple[InFlight, ClaimRequest]], routes: Sequence[Route]
    ) -> list[tuple[InFlight, Route]]:
        """Claim decoded messages in one Redis round trip, each with its route's first choice;
        returns those that are ours to send (their `attempts_before` set), with their routes.
        The others are dealt with on the queue here; when the ledger cannot be reached, all are
        handed back and the ledger gate closes."""
        if not admitted:
            return []
        fresh = [entry for entry, _ in admitted]
        requests = [
            replace(request, first_choice=route.order[0].name if route.order else "")
            for (_, request), route in zip(admitted, routes, strict=True)
        ]
        try:
            claims = await self._ledger.claim(requests, self._lease, self._policy.on_ambiguous)
        except RedisError as exc:
            log.warning("claim_failed", error=type(exc).__name__, count=len(fresh))
            self._settler.enqueue_visibility([(e.received, 5) for e in fresh])
            self._slots.release(len(fresh))
            self._gate.close()  # nobody receives until Redis answers again
            await self._unbook([r.permit for r in routes])
            return []
        claimed: list[tuple[InFlight, Route]] = []
        unused: list[Permit | None] = []
        for entry, claim, route in zip(fresh, claims, routes, strict=True):
            if claim.verdict is ClaimVerdict.CLAIMED:
                entry.attempts_before = claim.attempts
                unused.append(keep_to(route, claim.same_provider, self._providers))
                claimed.append((entry, route))
            else:
                unused.append(route.permit)
                self._slots.release(1)
                self._unclaimed(entry, claim)
        await self._unbook(unused)
        return claimed

    async def _unbook(self, booked: Sequence[Permit | None]) -> None:
        """Hand back the probe permits booked for sends that will not happen (rare: a message
        not claimed, or kept to another provider, while its first choice was half-open)."""
        permits = [p for p in booked if p is not None]
        if permits:
            try:
                await self._release(permits)
            except RedisError as exc:  # they lapse after permit_lease_seconds
                log.warning("release_permits_failed", error=type(exc).__name__)

    def _unclaimed(self, entry: InFlight, claim: Claim) -> None:
        """Act on a message the ledger did not give us to send."""
        if claim.verdict is ClaimVerdict.BUSY:
            self._stats.busy += 1
            self._settler.enqueue_visibility([(entry.received, max(1, round(claim.busy_for)))])
        elif claim.verdict is ClaimVerdict.SUPPRESSED:  # recorded ERROR suppressed: never sent
            log.info("suppressed", id=entry.email.id, batch_id=entry.email.batch_id)
            self._settler.enqueue_delete([entry.received])
        elif claim.verdict is ClaimVerdict.DEAD_LETTER:  # its DLQ copy may have failed
            self._settler.enqueue_dead_letter([(entry.received, claim.reason)])
        elif claim.verdict is ClaimVerdict.FAILED:  # Redis refused this one record
            log.warning("claim_refused", id=entry.email.id, error=claim.reason)
            receives = entry.received.receive_count
            if receives >= self._policy.max_receives:
                reason = f"max_receives {self._policy.max_receives} reached; last {claim.reason}"
                self._settler.enqueue_dead_letter([(entry.received, reason)])
            else:
                self._settler.enqueue_visibility([(entry.received, min(300, 5 * receives))])
        else:
            self._stats.duplicates += 1
            self._settler.enqueue_delete([entry.received])

    async def hand_back(
        self, exc: Exception, admitted: list[tuple[InFlight, ClaimRequest]]
    ) -> None:
        """After an unexpected error: hand back each message that did not start a send (its
        claim released, visible again soon). Logs the error class only."""
        waiting = [entry for entry, _ in admitted if entry.task is None]
        log.warning("admit_failed", error=type(exc).__name__, count=len(waiting))
        if waiting:
            try:  # else a claim taken before the error holds its message until the lease ends
                await self._ledger.extend([(e.email.id, e.owner) for e in waiting], 0)
            except Exception as error:
                log.warning("release_claims_failed", error=type(error).__name__)
            self._slots.release(len(waiting))
            self._settler.enqueue_visibility([(e.received, ADMIT_RETRY_SECONDS) for e in waiting])

    def decode_batch(self, batch: list[Received]) -> list[tuple[InFlight, ClaimRequest]]:
        """Each message's send entry and claim request. A message that fails here in any way
        (a bug of ours included) is dead-lettered alone; the rest of the batch goes on."""
        admitted: list[tuple[InFlight, ClaimRequest]] = []
        for message in batch:
            try:
                entry = self._decode(message)
                if entry is not None:
                    email = entry.email
                    recipients = tuple(a.email for a in (*email.to, *email.cc, *email.bcc))
                    request = ClaimRequest(
                        email.id, entry.owner, email.batch_id, email.created_at, recipients
                    )
                    admitted.append((entry, request))
            except MessageError as exc:
                self._poison(message, exc)
            except Exception as exc:
                self._poison(message, MessageError("message", f"internal: {type(exc).__name__}"))
        return admitted

    def _poison(self, message: Received, error: MessageError) -> None:
        """Dead-letter one message that cannot be sent. The log line and the DLQ reason carry
        only the error's capped field name and fixed reason, never producer data."""
        self._slots.release(1)
        self._stats.poison += 1
        log.warning("poison_message", sqs_id=message.sqs_id, field=error.field, reason=error.reason)
        self._settler.enqueue_dead_letter([(message, f"invalid message: {error}")])

    def _decode(self, message: Received) -> InFlight | None:
        """A send entry for `message`, or None when it was dealt with here; raises
        `MessageError` for a message that cannot be sent."""
        email = decode(message.body)
        held = self._in_flight.get(email.id)
        if held is not None:  # this process is sending it already
            self._slots.release(1)
            if held.received.sqs_id == message.sqs_id:
                held.received = message  # the newest receipt is the one SQS honours
                self._stats.redelivered += 1
            else:
                self._stats.busy += 1
                self._settler.enqueue_visibility([(message, self._visibility)])
            return None
        if email.size > self._largest:  # no configured provider accepts a message this large
            self._slots.release(1)
            self._settler.enqueue_dead_letter([(message, "too large for every provider")])
            return None
        return InFlight(message, email, f"{self._owner_prefix}:{next(self._owners)}", 0)
