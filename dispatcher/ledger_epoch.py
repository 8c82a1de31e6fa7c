"""Noticing a ledger that lost its data: a Redis restarted without persistence, a failover to a
replica that had not caught up, or a FLUSHALL.

The first worker to start sets the epoch key (`keys.ledger_epoch`, no expiry) to a random token
with SET NX; a later worker finds it and keeps the same token. On each heartbeat the worker reads
the key again: missing or different means the data it wrote before is gone (records, so a
redelivered message whose SENT was lost may be sent again). It then logs `ledger_lost_data`
once, counts it, and adopts the new epoch (SET NX again, then GET), so one loss is reported once
per worker, not on every beat. A Redis error while checking is skipped: outages are the ledger
gate's and the resilient health's business, and the next beat checks again.
"""

from __future__ import annotations

import secrets

import structlog
from redis.exceptions import RedisError

from dispatcher import keys
from dispatcher.scripts import RedisClient

log = structlog.get_logger("dispatcher.worker")


class LedgerEpoch:
    """The epoch this worker saw, and how many times it found the ledger's data lost."""

    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self._redis = redis
        self._key = keys.ledger_epoch(prefix)
        self.token: str | None = None  # None until first read (Redis may be away at start)
        self.losses = 0
        self.checks = 0  # checks that reached Redis and compared

    async def start(self) -> None:
        """Create the epoch (first worker) or read the existing one; skipped if Redis is away,
        then the first `check` that reaches Redis adopts it without reporting a loss."""
        try:
            self.token = await self._adopt()
        except (RedisError, OSError) as exc:
            log.warning("ledger_epoch_unchecked", error=type(exc).__name__)

    async def check(self) -> bool:
        """Read the epoch; True (logged and counted once) when it is missing or changed."""
        try:
            seen = _text(await self._redis.get(self._key))
            self.checks += 1
            if seen is not None and seen == self.token:
                return False
            if self.token is None:  # never read before: nothing to compare with
                self.token = await self._adopt()
                return False
            previous, self.token = self.token, await self._adopt()
        except (RedisError, OSError) as exc:
            log.warning("ledger_epoch_unchecked", error=type(exc).__name__)
            return False
        self.losses += 1
        log.error(
            "ledger_lost_data",
            epoch_was=previous,
            epoch_now=self.token,
            found="missing" if seen is None else "changed",
            fix="run Redis with appendonly yes, appendfsync everysec (see Redis durability "
            "in the README); messages redelivered now may be sent a second time",
        )
        return True

    async def _adopt(self) -> str:
        """Set the epoch to a new token unless one exists, and return the one that holds."""
        await self._redis.set(self._key, secrets.token_hex(16), nx=True)
        token = _text(await self._redis.get(self._key))
        if token is None:  # flushed between the two calls: the next beat adopts again
            raise RedisError("ledger epoch vanished while being set")
        return token


def _text(value: bytes | str | None) -> str | None:
    """A reply as text, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else value
