"""Every Redis key name the dispatcher uses, in one place.

Keys are hash-tagged (`{...}`) so that every multi-key script touches one cluster slot and the
same scripts run unchanged on Redis Cluster (ElastiCache cluster mode). A message record is a
single key tagged by its own id, so records spread evenly across slots.
"""

from __future__ import annotations


def message(prefix: str, message_id: str) -> str:
    """Hash holding one message's ledger record (status, provider, attempts, claim, times)."""
    return f"{prefix}msg:{{{message_id}}}"


def ledger_probe(prefix: str) -> str:
    """String written, with a short expiry, to learn whether the ledger takes writes again."""
    return f"{prefix}probe:{{ledger}}"


# Provider health: every key of one deployment shares the tag `{<prefix>health}`, so one script
# can read and write the health of every provider on Redis Cluster (one slot, one shard).


def health_tag(prefix: str) -> str:
    """The hash tag shared by every health key of the deployment using `prefix`."""
    return f"{{{prefix}health}}"


def health_window(prefix: str, provider: str) -> str:
    """Hash of time-bucketed counters `<bucket>:<counter>` for one provider's sliding window."""
    return f"{health_tag(prefix)}:win:{provider}"


def health_state(prefix: str, provider: str) -> str:
    """Hash of one provider's breaker state, generation, peak-EWMA latency and throttle-until."""
    return f"{health_tag(prefix)}:state:{provider}"


def health_permits(prefix: str, provider: str) -> str:
    """Sorted set of one provider's half-open probe permits: token -> lease expiry (ms)."""
    return f"{health_tag(prefix)}:permits:{provider}"


def health_rate(prefix: str, provider: str) -> str:
    """String holding one provider's GCRA theoretical arrival time (ms)."""
    return f"{health_tag(prefix)}:rate:{provider}"
