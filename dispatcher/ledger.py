"""The Redis ledger: one record per message id, claims with a lease, and settled outcomes.

Statuses, in lifecycle order::

    PENDING  the API accepted it and is putting it on the queue (not there yet)
    QUEUED   on the queue, waiting for a first try, or again for a scheduled retry
    SENDING  a worker holds its claim and a send is under way
    SENT     a provider accepted it: never sent again, whatever SQS redelivers
    ERROR    final failure (rejected, out of attempts, or `suppressed`): never sent again
    DELIVERED, BOUNCED (hard or soft), COMPLAINED   what a provider's webhook said of a SENT one

A claim moves PENDING, QUEUED (or a record not seen before) to SENDING; a settle moves SENDING to
SENT, ERROR or QUEUED; a webhook event (`dispatcher.feedback`) moves SENT onwards. A claim
for a recipient on the suppression list (`dispatcher.suppression`) ends it ERROR `suppressed`,
unsent, in the same script. The script that changes a status also moves the id between its shard's
status indexes (`dispatcher.keys`), in the same call: one script call per message and step, which
reads the record with one HMGET and writes it with one HSET. The indexes of a shard are trimmed
by the first claim or settle there every `TRIM_EVERY_SECONDS` (the ledger keeps the schedule).

Every operation on a batch of messages is one pipelined round trip of scripts that each touch
one shard's slot, so it runs unchanged on Redis Cluster. An error reply about one record
(`WRONGTYPE`, a script error on its data) fails that message alone (`FAILED`); one about Redis
itself fails the whole call.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import RedisCluster
from redis.exceptions import ResponseError

from dispatcher import keys
from dispatcher.ledger_record import (
    Claim,
    ClaimRequest,
    ClaimVerdict,
    Record,
    RecordStatus,
    Settled,
    Settlement,
    SettleVerdict,
    parse_record,
)
from dispatcher.round_trips import RoundTrips
from dispatcher.scripts import Command, LuaScript, RedisClient, load
from dispatcher.suppression import AddressHasher

__all__ = [  # the vocabulary lives in ledger_record.py; it is imported from here too
    "Claim",
    "ClaimRequest",
    "ClaimVerdict",
    "Record",
    "RecordStatus",
    "SettleVerdict",
    "Settled",
    "Settlement",
    "parse_record",
]

T = TypeVar("T")

CLAIM, SETTLE, EXTEND = (LuaScript(name, "_index") for name in ("claim", "settle", "extend"))
SCRIPTS = (CLAIM, SETTLE, EXTEND)
PROBE_TTL_MS = 1000
PER_CALL = 64  # messages settled (or claimed) by one script call on one Redis: bounds its time
TRIM_EVERY_SECONDS = 60  # each ledger trims a shard's indexes at most this often (lua/_index.lua)
FEEDBACK_COUNTER_TTL = 26 * 3600  # hourly counters: 24 h of rates, and some slack


class Ledger:
    """Claims and outcomes per message id. `clock` (epoch seconds) defaults to Redis `TIME`."""

    def __init__(
        self,
        client: RedisClient,
        prefix: str,
        ttl_seconds: int,
        clock: Callable[[], float] | None = None,
        hasher: AddressHasher | None = None,
        trips: RoundTrips | None = None,
    ) -> None:
        self._redis = client
        self._trips = trips or RoundTrips(client)  # shared with the health store by the app
        self._prefix = prefix
        self._ttl = str(ttl_seconds)
        self._clock = clock
        self._hasher = hasher or AddressHasher("", prefix)
        self._next_trim: dict[int, float] = {}  # shard -> when its indexes are next trimmed

    async def load_scripts(self) -> None:
        await load(self._redis, SCRIPTS)

    async def ping(self) -> None:
        """One cheap round trip; raises `RedisError` while Redis cannot be reached (so that a
        worker that could not claim can wait for the ledger before it receives again)."""
        await self._redis.ping()

    async def probe(self) -> None:
        """One small write (a key that expires at once); raises `RedisError` while the ledger
        cannot be written: unreachable, or answering READONLY, OOM, MISCONF, ... (PING still
        answers then). A worker that could not claim waits for this before it receives again."""
        await self._redis.set(keys.ledger_probe(self._prefix), "1", px=PROBE_TTL_MS)

    def _now(self) -> str:
        return str(int(self._clock() * 1000)) if self._clock else ""

    def _key(self, message_id: str) -> str:
        return keys.message(self._prefix, message_id)

    def _keys(self, message_id: str, batch_id: str | None = None) -> list[str]:
        return keys.record_keys(self._prefix, message_id, batch_id)

    async def claim(
        self,
        requests: Sequence[ClaimRequest],
        lease_seconds: float,
        on_ambiguous: str = "retry_same",
    ) -> list[Claim]:
        """Claim every message in one round trip (one script call per group, `_groups`),
        recording each one's planned provider (`via`) before it is called; `on_ambiguous`
        (`dispatch.on_ambiguous`) says what a claim after an ambiguous outcome does."""
        if not requests:
            return []
        now, lease = self._now(), str(int(lease_seconds * 1000))
        groups = self._groups([req.message_id for req in requests])

        commands: list[Command] = []
        for group in groups:
            script_keys: list[str] = []
            args: list[str | int | bytes] = [now, lease, self._ttl, on_ambiguous]
            for i in group:
                self._claim_parts(requests[i], script_keys, args)
            commands.append(CLAIM.call(script_keys, args))
        replies = await self._trips.run(SCRIPTS, commands, isolate=True)
        return _ungroup(groups, replies, lambda i, r: _claim(requests[i].message_id, r))

    def _claim_parts(self, req: ClaimRequest, script_keys: list[str], args: list[Any]) -> None:
        """Append one message's KEYS and ARGV to a claim.lua call (its header lists them)."""
        shard = keys.shard_of(req.message_id)
        script_keys += [
            *self._keys(req.message_id),
            keys.suppression_shard(self._prefix, shard),
            *([keys.index_batch(self._prefix, shard, req.batch_id)] if req.batch_id else []),
        ]
        created = "" if req.created_at is None else str(int(req.created_at * 1000))
        hashes = sorted({self._hasher.digest(r) for r in req.recipients})
        args += [req.owner, req.batch_id or "", created, req.message_id, self._trim_due(shard)]
        args += [req.first_choice, len(hashes), *hashes]

    async def settle(self, settlements: Sequence[Settlement]) -> list[Settled]:
        """Record every outcome in one round trip (one script call per group, `_groups`)."""
        if not settlements:
            return []
        now = self._now()
        groups = self._groups([s.message_id for s in settlements])

        commands: list[Command] = []
        for group in groups:
            script_keys: list[str] = []
            args: list[str | int | bytes] = [now, self._ttl]
            for i in group:
                s = settlements[i]
                found = s.status is RecordStatus.SENT and s.provider_message_id
                script_keys += self._keys(s.message_id)
                if found:
                    script_keys.append(keys.provider_message(self._prefix, s.message_id, found))
                trim = self._trim_due(keys.shard_of(s.message_id))
                args += [*_settle_args(s), s.message_id, trim, *_flag(bool(found))]
            commands.append(SETTLE.call(script_keys, args))
        replies = await self._trips.run(
            SCRIPTS, [*commands, *self._count_sent(settlements)], isolate=True
        )
        return _ungroup(groups, replies, lambda i, r: _settled(settlements[i].message_id, r))

    def _groups(self, message_ids: Sequence[str]) -> list[list[int]]:
        """The positions of `message_ids` that share one script call: on one Redis, runs of up to
        `PER_CALL`; on a cluster, those of one shard (a script touches one slot)."""
        if not isinstance(self._redis, RedisCluster):
            n = len(message_ids)
            return [list(range(i, min(i + PER_CALL, n))) for i in range(0, n, PER_CALL)]
        found: dict[int, list[int]] = {}
        for i, message_id in enumerate(message_ids):
            found.setdefault(keys.shard_of(message_id), []).append(i)
        return list(found.values())

    def _count_sent(self, settlements: Sequence[Settlement]) -> list[Command]:
        """The hour's SENT counters (the bounce and complaint rates: dispatcher.feedback)."""
        sent = Counter(f"{s.provider}:sent" for s in settlements if s.status is RecordStatus.SENT)
        if not sent:
            return []
        counter = keys.feedback_counts(self._prefix, int(time.time() // 3600))
        counts: list[Command] = [("HINCRBY", counter, field, n) for field, n in sent.items()]
        return [*counts, ("EXPIRE", counter, FEEDBACK_COUNTER_TTL)]

    def _trim_due(self, shard: int) -> str:
        """The scripts' trim flag for one shard: the seconds until the next trim when one is due
        (this ledger's first write there, or `TRIM_EVERY_SECONDS` since its last), else ""."""
        at = self._clock() if self._clock else time.monotonic()
        if at < self._next_trim.get(shard, at):
            return ""
        self._next_trim[shard] = at + TRIM_EVERY_SECONDS
        return str(TRIM_EVERY_SECONDS)

    async def extend(self, claims: Sequence[tuple[str, str]], lease_seconds: float) -> list[bool]:
        """Extend (message_id, owner) claims; a lease of 0 hands them back as QUEUED."""
        if not claims:
            return []
        now, lease = self._now(), str(int(lease_seconds * 1000))

        commands = [
            EXTEND.call(self._keys(message_id), [owner, now, lease, self._ttl, message_id])
            for message_id, owner in claims
        ]
        replies = await self._trips.run(SCRIPTS, commands, isolate=True)
        return [not isinstance(held, Exception) and bool(held) for held in replies]

    async def get(self, message_id: str) -> Record | None:
        raw: dict[bytes | str, bytes | str] = await self._redis.hgetall(self._key(message_id))
        return parse_record(message_id, raw)


def _settle_args(s: Settlement) -> list[str]:
    """settle.lua's first 8 ARGV of one settlement (its header lists them)."""
    return [
        *(s.owner, s.status.value),
        *(s.provider or "", s.provider_message_id or "", s.error or ""),
        *_flag(s.count_attempt),
        s.ambiguous_via or "",
        *_flag(s.dead_letter),
    ]


def _ungroup(
    groups: Sequence[Sequence[int]], replies: Sequence[Any], parse: Callable[[int, Any], T]
) -> list[T]:
    """Each message's result, in the callers' order, from one reply per group (a list with one
    entry per message, or an error that fails the whole group)."""
    found: dict[int, T] = {}
    for group, reply in zip(groups, replies, strict=False):
        for n, i in enumerate(group):
            found[i] = parse(i, reply if isinstance(reply, Exception) else reply[n])
    return [found[i] for i in range(len(found))]


def _flag(value: bool) -> tuple[str]:
    return ("1" if value else "0",)


def _claim(message_id: str, reply: Any) -> Claim:
    if isinstance(reply, Exception):
        return Claim(message_id, ClaimVerdict.FAILED, 0, reason=_error(reply))
    verdict, attempts, extra = reply
    kind = ClaimVerdict(_text(verdict))
    if kind is ClaimVerdict.BUSY:
        return Claim(message_id, kind, int(attempts), busy_for=int(extra) / 1000)
    if kind is ClaimVerdict.FAILED:  # an error about this record, caught in the script
        return Claim(message_id, kind, 0, reason=_error(ResponseError(_text(extra))))
    if kind is ClaimVerdict.CLAIMED:
        return Claim(message_id, kind, int(attempts), same_provider=_text(extra))
    return Claim(message_id, kind, int(attempts), reason=_text(extra))


def _settled(message_id: str, reply: Any) -> Settled:
    if isinstance(reply, Exception):
        return Settled(message_id, SettleVerdict.FAILED, 0, error=_error(reply))
    verdict, extra = (_text(v) if isinstance(v, bytes) else v for v in reply)
    if verdict == SettleVerdict.FAILED:  # an error about this record, caught in the script
        return Settled(message_id, SettleVerdict.FAILED, 0, error=_error(ResponseError(extra)))
    return Settled(message_id, SettleVerdict(verdict), int(extra))


def _error(error: Exception) -> str:
    """A Redis error reply, short: its code and first words (never a key or a value)."""
    return f"{type(error).__name__}: {str(error).split(' script:')[0][:80]}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
