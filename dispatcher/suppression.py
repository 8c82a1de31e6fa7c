"""The suppression list: addresses that must not be mailed again (a hard bounce, a complaint, or
an operator's word), kept in Redis as keyed hashes so the list itself holds no address.

An address is normalised (trimmed, its domain case-folded; the local part is the mailbox
owner's) and hashed with HMAC-SHA-256 under `suppression.secret` (when that is empty, under a
key derived from the Redis key prefix: set a secret in production, or anyone who can read the
list can test guesses against it). The list lives in `SHARDS + 1` places (`dispatcher.keys`):
one hash `hash -> reason|time ms` that the API lists and checks, and one set per ledger shard
that the claim script reads in its record's own slot. Every add or remove writes all of them in
one pipelined round trip; writes are idempotent, so a retry after a partial failure repairs it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dispatcher import keys
from dispatcher.scripts import RedisClient

REASONS = ("bounce", "complaint", "manual")


def normalise(address: str) -> str:
    """Trimmed, with the domain case-folded (the local part is the mailbox owner's)."""
    local, at, domain = address.strip().rpartition("@")
    return f"{local}{at}{domain.casefold()}" if at else address.strip()


class AddressHasher:
    """Keyed hashes of normalised addresses: 32 hex digits (128 bits) of HMAC-SHA-256."""

    def __init__(self, secret: str, prefix: str) -> None:
        key = secret or f"dispatcher-suppression:{prefix}"
        self._key = key.encode()

    def digest(self, address: str) -> str:
        mac = hmac.new(self._key, normalise(address).encode(), hashlib.sha256)
        return mac.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Entry:
    digest: str
    reason: str
    at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class EntryPage:
    entries: tuple[Entry, ...]
    next_cursor: str | None


class Suppressions:
    def __init__(self, client: RedisClient, prefix: str, hasher: AddressHasher) -> None:
        self._redis = client
        self._prefix = prefix
        self.hasher = hasher

    async def add(self, digests: Iterable[str], reason: str, at: float) -> None:
        """Suppress address hashes (again: the newest reason and time are kept)."""
        found = sorted(set(digests))
        if found:
            await self._write(found, f"{reason}|{int(at * 1000)}")

    async def remove(self, digests: Iterable[str]) -> None:
        found = sorted(set(digests))
        if found:
            await self._write(found, None)

    async def check(self, digests: Sequence[str]) -> list[Entry | None]:
        """The entry of each hash, or None when it is not suppressed (one round trip)."""
        if not digests:
            return []
        values = await self._redis.hmget(keys.suppression_all(self._prefix), list(digests))
        return [_entry(d, v) if v else None for d, v in zip(digests, values, strict=True)]

    async def page(self, cursor: int, limit: int) -> EntryPage:
        """About `limit` entries after `cursor` (HSCAN: a cursor of 0 starts; None ends)."""
        reply: tuple[int, dict[bytes, bytes]] = await self._redis.hscan(
            keys.suppression_all(self._prefix), cursor, count=limit
        )  # type: ignore[assignment]  # redis-py's stub unions the reply of its other modes
        following, raw = reply
        entries = tuple(sorted((_entry(_text(d), v) for d, v in raw.items()), key=_digest))
        return EntryPage(entries, str(following) if int(following) else None)

    async def _write(self, digests: list[str], value: str | None) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for shard in range(keys.SHARDS):
                key = keys.suppression_shard(self._prefix, shard)
                (pipe.sadd if value else pipe.srem)(key, *digests)
            whole = keys.suppression_all(self._prefix)
            if value:
                pipe.hset(whole, mapping=dict.fromkeys(digests, value))
            else:
                pipe.hdel(whole, *digests)
            await pipe.execute()


def _digest(entry: Entry) -> str:
    return entry.digest


def _entry(digest: str, value: Any) -> Entry:
    reason, _, millis = _text(value).partition("|")
    return Entry(digest, reason, int(millis or 0) / 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
