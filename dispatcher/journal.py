"""Sent messages whose outcome Redis could not take at shutdown, kept on disk for the next start.

A worker that stops while Redis is away may hold sends that a provider has accepted but that
the ledger has not recorded. Handing those back to the queue would send them again, so instead
their visibility is pushed to the SQS maximum (12 hours from their receipt) and their
settlements are appended here, one JSON line each with its receipt handle. The next start
(`Journal.replay`, before the first receive) writes them to the ledger and deletes the messages
with those receipts; a redelivery that comes back anyway meets a `SENT` record and is deleted.

The file must outlive the process: in a container, put `dispatch.journal_path` on a volume.
Without it, a message kept this way comes back after 12 hours, its claim has lapsed, and it is
sent again, recorded as ambiguous (`ambiguous_via` holds the provider its claim recorded as
`via`, or `unknown`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import orjson
import structlog
from redis.exceptions import RedisError

from dispatcher.ledger import Ledger, RecordStatus, Settlement, SettleVerdict
from dispatcher.queue import Received, SqsQueue

log = structlog.get_logger("dispatcher.journal")


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, entries: Sequence[tuple[Settlement, str]]) -> bool:
        """Append (settlement, receipt handle) pairs and sync them to disk; False on failure."""
        lines = b"".join(
            orjson.dumps({"settlement": asdict(s), "receipt": receipt}) + b"\n"
            for s, receipt in entries
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as out:
                out.write(lines)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            log.error("journal_write_failed", path=str(self.path), error=type(exc).__name__)
            return False
        return True

    def read(self) -> list[tuple[Settlement, str]]:
        """Every entry in the journal (none when it does not exist)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        entries = []
        for line in raw.splitlines():
            if not line.strip():
                continue
            doc = orjson.loads(line)
            fields = doc["settlement"]
            fields["status"] = RecordStatus(fields["status"])
            entries.append((Settlement(**fields), str(doc["receipt"])))
        return entries

    async def replay(self, ledger: Ledger, queue: SqsQueue) -> int:
        """Record every journalled outcome and delete its message; the journal is removed once
        all are recorded. Returns how many were recorded (0 when Redis is away: kept for later)."""
        entries = self.read()
        if not entries:
            return 0
        try:
            results = await ledger.settle([s for s, _ in entries])
        except RedisError as exc:
            log.warning("journal_replay_deferred", count=len(entries), error=type(exc).__name__)
            return 0
        recorded = [  # a delete needs only the receipt, which is all the journal keeps
            Received(sqs_id="", receipt=receipt, body="", receive_count=0)
            for (_, receipt), result in zip(entries, results, strict=True)
            if result.verdict is not SettleVerdict.FAILED
        ]
        try:
            await queue.delete(recorded)
        except Exception as exc:  # they come back in time and meet their SENT record
            log.warning("journal_delete_failed", count=len(recorded), error=type(exc).__name__)
        if len(recorded) == len(entries):
            self.path.unlink(missing_ok=True)
        log.info("journal_replayed", recorded=len(recorded), failed=len(entries) - len(recorded))
        return len(recorded)
