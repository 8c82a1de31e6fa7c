"""Every Redis key name the dispatcher uses, in one place.

Keys are hash-tagged (`{...}`) so that every multi-key script touches one cluster slot and the
same scripts run unchanged on Redis Cluster (ElastiCache cluster mode). A message record is a
single key tagged by its own id, so records spread evenly across slots.
"""

from __future__ import annotations


def message(prefix: str, message_id: str) -> str:
    """Hash holding one message's ledger record (status, provider, attempts, claim, times)."""
    return f"{prefix}msg:{{{message_id}}}"
