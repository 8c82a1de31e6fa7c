"""Every Redis key name the dispatcher uses, in one place.

Keys are hash-tagged (`{...}`) so that every multi-key script touches one cluster slot and the
same scripts run unchanged on Redis Cluster (ElastiCache cluster mode).

Message records and their status indexes are split into `SHARDS` shards by a CRC-32 of the
message id. A record and the indexes of its shard share the tag `{<prefix>s<n>}`, so the one
script that changes a status also moves the id between that shard's indexes (one slot, one call).
A list query reads every shard in one pipelined round trip and merges by time
(`dispatcher.records`). `SHARDS` is fixed for the life of the data: changing it would move
records to other keys.

Per shard, with `T = {<prefix>s<n>}`::

    T:m:<id>               hash   one message's record (status, provider, attempts, claim, times)
    T:all                  zset   every id of the shard, scored by its index time (ms)
    T:st:<STATUS>          zset   the ids in that status, same score
    T:b:<batch_id>         zset   the ids of one batch, same score
    T:pm:<provider msg id> string the message id a provider's own id belongs to (set by settle
                                  when SENT, with the record's TTL): webhooks without our id
    T:sup                  set    this shard's copy of the suppression list (keyed hashes of
                                  addresses), read by the claim script in the record's own slot

The suppression list is kept once per shard as well as once whole (`{<prefix>sup}:all`, a hash
hash -> reason and time, for the API): on Redis Cluster a script may only touch one slot, and
the claim script must see the list in its record's slot. An address is added or removed in all
`SHARDS + 1` places in one pipelined round trip (`dispatcher.suppression`).

The index time is the record's `created_at`, clamped into the retention window when first
indexed. An id joins `all` once; a status change moves it between status indexes. Members older
than the retention are trimmed (`ZREMRANGEBYSCORE`) and the index's expiry refreshed: by the
intake, feedback and redrive scripts on each index they write, and by the worker's claim and
settle for the whole shard once per `ledger.TRIM_EVERY_SECONDS` (the expiry then covers the
interval too), so no index outlives its records for long. A record expires `ttl` after it is
created; a batch index, `ttl` after its newest member joined.
"""

from __future__ import annotations

import zlib

SHARDS = 32
# the ledger's vocabulary, in lifecycle order (the last three come from provider webhooks)
STATUSES = ("PENDING", "QUEUED", "SENDING", "SENT", "ERROR", "DELIVERED", "BOUNCED", "COMPLAINED")


def shard_of(message_id: str) -> int:
    return zlib.crc32(message_id.encode()) % SHARDS


def shard_tag(prefix: str, shard: int) -> str:
    """The hash tag shared by one shard's records and indexes."""
    return f"{{{prefix}s{shard}}}"


def message(prefix: str, message_id: str) -> str:
    """Hash holding one message's ledger record."""
    return f"{shard_tag(prefix, shard_of(message_id))}:m:{message_id}"


def index_all(prefix: str, shard: int) -> str:
    """Sorted set of every id of one shard, by index time."""
    return f"{shard_tag(prefix, shard)}:all"


def index_status(prefix: str, shard: int, status: str) -> str:
    """Sorted set of one shard's ids in `status`, by index time."""
    return f"{shard_tag(prefix, shard)}:st:{status}"


def index_batch(prefix: str, shard: int, batch_id: str) -> str:
    """Sorted set of one shard's ids of batch `batch_id`, by index time."""
    return f"{shard_tag(prefix, shard)}:b:{batch_id}"


def record_keys(prefix: str, message_id: str, batch_id: str | None = None) -> list[str]:
    """The KEYS of every script that writes a record: the record, `all`, one index per status
    (in `STATUSES` order) and, when `batch_id` is given, the batch index."""
    shard = shard_of(message_id)
    found = [
        message(prefix, message_id),
        index_all(prefix, shard),
        *(index_status(prefix, shard, s) for s in STATUSES),
    ]
    return [*found, index_batch(prefix, shard, batch_id)] if batch_id else found


def provider_message(prefix: str, message_id: str, provider_message_id: str) -> str:
    """String holding `message_id`, found by a provider's id for it (in the record's shard)."""
    return f"{shard_tag(prefix, shard_of(message_id))}:pm:{provider_message_id}"


def provider_message_in(prefix: str, shard: int, provider_message_id: str) -> str:
    """The same key, for a lookup that asks every shard (the message id is not known)."""
    return f"{shard_tag(prefix, shard)}:pm:{provider_message_id}"


def suppression_shard(prefix: str, shard: int) -> str:
    """Set: one shard's copy of the suppression list (address hashes)."""
    return f"{shard_tag(prefix, shard)}:sup"


def suppression_all(prefix: str) -> str:
    """Hash: the whole suppression list, address hash -> `reason|time ms`."""
    return f"{{{prefix}sup}}:all"


def webhook_seen(prefix: str, provider: str, digest: str) -> str:
    """String set once (NX, with a TTL) per webhook token or signature: replays are refused."""
    return f"{prefix}hook:{provider}:{{{digest}}}"


def idempotency(prefix: str, digest: str) -> str:
    """Hash of one idempotency key's request: state, body hash, lease, stored response.
    `digest` is the SHA-256 of the client's name and its key (never the key itself)."""
    return f"{prefix}idem:{{{digest}}}"


def ledger_probe(prefix: str) -> str:
    """String written, with a short expiry, to learn whether the ledger takes writes again."""
    return f"{prefix}probe:{{ledger}}"


def ledger_epoch(prefix: str) -> str:
    """String holding a random token set once (NX) by the first worker and never expired: when
    it is missing or changed, the ledger lost its data (`dispatcher.ledger_epoch`)."""
    return f"{prefix}epoch:{{ledger}}"


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


def feedback_counts(prefix: str, hour: int) -> str:
    """Hash of one hour's counters `<provider>:<sent|delivered|bounced|complained>`."""
    return f"{health_tag(prefix)}:fb:{hour}"


def health_rate(prefix: str, provider: str) -> str:
    """String holding one provider's GCRA theoretical arrival time (ms)."""
    return f"{health_tag(prefix)}:rate:{provider}"


def health_override(prefix: str, provider: str) -> str:
    """String holding an operator's override of one provider (`drain`, `open` or `close`), with
    the TTL it was set for; read by the health snapshot (`dispatcher.ops.overrides` sets it)."""
    return f"{health_tag(prefix)}:override:{provider}"
