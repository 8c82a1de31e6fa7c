"""`dispatcher provider drain|resume|open|close NAME [--for DURATION]`: an operator's override
of one provider, kept in Redis under the health hash tag (`keys.health_override`) with a TTL.

The health snapshot script reads it with the rest of a provider's health, so every replica
honours it at its next routing decision at no extra round trip (`health.base.with_override`);
`resume` deletes it, and it expires by itself. While Redis is away, each process keeps the last
override it saw (`MemoryHealth.remember_overrides`).
"""

from __future__ import annotations

import re

from redis.asyncio import Redis

from dispatcher import keys
from dispatcher.health.base import Override

DEFAULT_SECONDS = 3600.0  # an override without --for lasts an hour
MAX_SECONDS = 30 * 86_400.0
ACTIONS = ("drain", "resume", "open", "close")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def parse_duration(text: str) -> float:
    """Seconds from `90`, `90s`, `15m`, `2h`, `1d` or `500ms`; ValueError otherwise."""
    found = _DURATION.match(text)
    if not found:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 2h, 1d)")
    seconds = float(found.group(1)) * _UNIT_SECONDS[found.group(2) or "s"]
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"duration {text!r} must be more than 0 and at most 30 days")
    return seconds


async def apply(redis: Redis, prefix: str, provider: str, action: str, seconds: float) -> str:
    """Set (drain, open, close) or clear (resume) one provider's override; a line saying so."""
    key = keys.health_override(prefix, provider)
    if action == "resume":
        removed = await redis.delete(key)
        return f"{provider}: override cleared" if removed else f"{provider}: no override was set"
    mode = Override(action)
    await redis.set(key, mode.value, px=max(1, round(seconds * 1000)))
    return f"{provider}: {mode.value} for {seconds:g} s"
