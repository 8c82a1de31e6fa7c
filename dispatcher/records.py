"""Reading the ledger's records back: by id, list pages from the status indexes, batch counts.

A list page asks every shard (`dispatcher.keys`) for its newest `limit + 1` ids after the
cursor, in one pipelined round trip of `lua/page.lua`, merges them by (index time, id), keeps
`limit`, and reads those records in a second round trip. The cursor is the (time, id) of the
last id returned, so pages never skip or repeat an id, whatever is written meanwhile (an id
changing status may show in a later page of another status). Index entries older than the
retention, or whose record has expired, are left out.

Batch counts are `ZINTERCARD` of the batch index with each status index (Redis 7.0 or later),
less the members past the retention not trimmed yet: `lua/counts.lua`, per shard, in one round
trip.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dispatcher import keys
from dispatcher.ledger import Record, RecordStatus, parse_record
from dispatcher.scripts import LuaScript, RedisClient, run_batch

PAGE, COUNTS = LuaScript("page"), LuaScript("counts")
SCRIPTS = (PAGE, COUNTS)
MAX_LIMIT = 1000


class CursorError(ValueError):
    """A cursor this module did not write."""


@dataclass(frozen=True, slots=True)
class Query:
    status: RecordStatus | None = None
    batch_id: str | None = None
    created_from: float | None = None  # epoch seconds, inclusive
    created_to: float | None = None  # epoch seconds, inclusive
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    records: tuple[Record, ...]
    next_cursor: str | None  # None on the last page


@dataclass(frozen=True, slots=True)
class BatchCounts:
    total: int
    by_status: dict[str, int]


class Records:
    """Read-only access to records and their indexes. `clock` (epoch s) is for the retention
    floor; `ttl_seconds` is the records' retention."""

    def __init__(
        self, client: RedisClient, prefix: str, ttl_seconds: int, clock: Callable[[], float]
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl = ttl_seconds
        self._clock = clock

    async def get(self, message_id: str) -> Record | None:
        raw = await self._redis.hgetall(keys.message(self._prefix, message_id))
        return parse_record(message_id, raw)

    async def page(self, query: Query) -> Page:
        floor = self._floor()
        lower = max(floor, _millis(query.created_from, floor))
        upper = _millis(query.created_to, 2**53)
        cursor_time, cursor_id = decode_cursor(query.cursor) if query.cursor else ("", "")
        want = query.limit + 1
        args: list[str | int] = [upper, lower, cursor_time, cursor_id, want]

        pages = [PAGE.call(self._index_keys(shard, query), args) for shard in range(keys.SHARDS)]
        replies = await run_batch(self._redis, SCRIPTS, pages)
        found = sorted(
            ((int(float(r[i + 1])), _text(r[i])) for r in replies for i in range(0, len(r), 2)),
            reverse=True,
        )
        kept = found[: query.limit]
        records = await self._records([message_id for _, message_id in kept])
        more = len(found) > query.limit
        return Page(
            records=tuple(r for r in records if r is not None),
            next_cursor=encode_cursor(*kept[-1]) if more else None,
        )

    async def batch_counts(self, batch_id: str) -> BatchCounts:
        floor = self._floor()

        counts = [
            COUNTS.call(
                [
                    keys.index_batch(self._prefix, shard, batch_id),
                    *(keys.index_status(self._prefix, shard, s) for s in keys.STATUSES),
                ],
                [floor],
            )
            for shard in range(keys.SHARDS)
        ]
        rows = await run_batch(self._redis, SCRIPTS, counts)
        by_status = {
            status: sum(int(row[1 + n]) for row in rows) for n, status in enumerate(keys.STATUSES)
        }
        return BatchCounts(total=sum(int(row[0]) for row in rows), by_status=by_status)

    def _floor(self) -> int:
        return int((self._clock() - self._ttl) * 1000)

    def _index_keys(self, shard: int, query: Query) -> list[str]:
        status = query.status and keys.index_status(self._prefix, shard, query.status.value)
        batch = query.batch_id and keys.index_batch(self._prefix, shard, query.batch_id)
        found = [k for k in (batch, status) if k]
        return found or [keys.index_all(self._prefix, shard)]

    async def _records(self, ids: list[str]) -> list[Record | None]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for message_id in ids:
                pipe.hgetall(keys.message(self._prefix, message_id))
            replies: list[Any] = await pipe.execute()
        return [parse_record(i, raw) for i, raw in zip(ids, replies, strict=True)]


def encode_cursor(millis: int, message_id: str) -> str:
    return base64.urlsafe_b64encode(f"{millis}:{message_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """(time ms, id) from a cursor; raises CursorError for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        millis, _, message_id = text.partition(":")
        if not message_id or not millis.isdigit():
            raise ValueError(text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise CursorError("not a cursor from this API") from None
    return millis, message_id


def _millis(seconds: float | None, default: int) -> int:
    return default if seconds is None else int(seconds * 1000)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
