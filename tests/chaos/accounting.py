"""The accounting: every message id put in ends in exactly one class, from the evidence.

    sent        the ledger says SENT (or later: DELIVERED, ...) and a fake received it
    error       the ledger says ERROR with a reason
    dlq         in the dead-letter queue with a reason (poison, and ERRORs that went there)
    lost        anything else: no record and no receipt, SENT with no receipt, still
                QUEUED/SENDING, ERROR without a reason, poison not in the DLQ

A receipt beyond the first is a duplicate. It is explained when the ledger records an
ambiguous outcome for the id (`ambiguous_via`), or when its receipts straddle a Redis restart
without persistence (the ledger forgot the send); otherwise it is unexplained.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from dispatcher.dev.fakes import Receipt
from dispatcher.ledger_record import Record, RecordStatus
from tests.chaos.load import Sent
from tests.chaos.schedule import Window

SENT_OR_LATER = {
    RecordStatus.SENT,
    RecordStatus.DELIVERED,
    RecordStatus.BOUNCED,
    RecordStatus.COMPLAINED,
}
COLUMNS = ("in flight", "sent", "errors", "DLQ", "dup expl.", "dup unexpl.", "lost")


@dataclass
class Outcome:
    """One id's class, with the time span it was alive (put in -> last evidence)."""

    kind: str  # sent | error | dlq | lost
    born: float
    settled: float
    duplicates: int = 0
    explained: bool = True
    why: str = ""


@dataclass
class Evidence:
    sent: Sent
    receipts: Mapping[str, Sequence[Receipt]]  # dispatcher id -> receipts, all fakes
    records: Mapping[str, Record | None]
    api_status: Mapping[str, str | None]  # GET /v1/emails/{id} status, None for a 404
    dlq: Mapping[str, str]  # message id or poison token -> reason
    volatile_restarts: Sequence[Window] = ()


@dataclass
class Account:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    api_disagrees: list[str] = field(default_factory=list)
    unexpected_receipts: int = 0

    def count(self, ids: Iterable[str] | None = None) -> dict[str, int]:
        chosen = self.outcomes.values() if ids is None else [self.outcomes[i] for i in ids]
        kinds = Counter(o.kind for o in chosen)
        return {
            "in flight": len(chosen),
            "sent": kinds["sent"],
            "errors": kinds["error"],
            "DLQ": kinds["dlq"],
            "dup expl.": sum(o.duplicates for o in chosen if o.explained),
            "dup unexpl.": sum(o.duplicates for o in chosen if not o.explained),
            "lost": kinds["lost"],
        }

    def during(self, window: Window) -> list[str]:
        return [
            i
            for i, o in self.outcomes.items()
            if o.born <= window.ended and o.settled >= window.started
        ]

    def failures(self) -> list[str]:
        """Why the run fails: lost ids, unexplained duplicates, API disagreements."""
        bad = [f"{i}: {o.why}" for i, o in self.outcomes.items() if o.kind == "lost"]
        bad += [f"{i}: unexplained duplicate" for i, o in self.outcomes.items() if not o.explained]
        bad += [f"{i}: status API disagrees" for i in self.api_disagrees]
        if self.unexpected_receipts:
            bad.append(f"{self.unexpected_receipts} receipts for ids nobody put in")
        return bad


def account(evidence: Evidence) -> Account:
    result = Account()
    for message_id, born in evidence.sent.enqueued_at.items():
        outcome = _classify(message_id, born, evidence)
        result.outcomes[message_id] = outcome
        if not _api_agrees(message_id, evidence):
            result.api_disagrees.append(message_id)
    for token, born in evidence.sent.poison.items():
        reason = evidence.dlq.get(token)
        kind, why = ("dlq", "") if reason else ("lost", "poison not in the DLQ with a reason")
        result.outcomes[token] = Outcome(kind, born, born, why=why)
    known = evidence.sent.ids()
    result.unexpected_receipts = sum(len(r) for i, r in evidence.receipts.items() if i not in known)
    return result


def _classify(message_id: str, born: float, evidence: Evidence) -> Outcome:
    receipts = evidence.receipts.get(message_id, ())
    record = evidence.records.get(message_id)
    last = max([born, *(r.received_at for r in receipts)])
    if record is not None and record.updated_at:
        last = max(last, record.updated_at)
    outcome = Outcome("lost", born, last, max(0, len(receipts) - 1))
    outcome.explained = outcome.duplicates == 0 or _explained(record, receipts, evidence)
    if record is None:
        forgotten = _forgotten(receipts, evidence.volatile_restarts)
        outcome.kind, outcome.why = ("sent", "") if forgotten else ("lost", "no record")
        if message_id in evidence.dlq:
            outcome.kind = "dlq"
    elif record.status in SENT_OR_LATER:
        outcome.kind, outcome.why = ("sent", "") if receipts else ("lost", "SENT, never received")
    elif record.status is RecordStatus.ERROR:
        reason = record.last_error or evidence.dlq.get(message_id)
        outcome.kind = ("dlq" if message_id in evidence.dlq else "error") if reason else "lost"
        outcome.why = "" if reason else "ERROR without a reason"
    else:
        outcome.why = f"still {record.status.value}"
    return outcome


def _explained(record: Record | None, receipts: Sequence[Receipt], evidence: Evidence) -> bool:
    """A duplicate follows an ambiguous outcome, or spans a restart that lost the ledger."""
    if record is not None and record.ambiguous_via:
        return True
    first, last = receipts[0].received_at, receipts[-1].received_at
    return any(first <= w.ended and last >= w.started for w in evidence.volatile_restarts)


def _forgotten(receipts: Sequence[Receipt], restarts: Sequence[Window]) -> bool:
    """Received before a restart without persistence ended: its record went with the data."""
    return bool(receipts) and any(receipts[0].received_at <= w.ended for w in restarts)


def _api_agrees(message_id: str, evidence: Evidence) -> bool:
    """The status API says what the ledger says, and SENT exactly when a fake received it
    (an ERROR after an ambiguous send may have been received too)."""
    record = evidence.records.get(message_id)
    shown = evidence.api_status.get(message_id)
    if record is None:
        return shown is None
    if shown != record.status.value:
        return False
    delivered = bool(evidence.receipts.get(message_id))
    if record.status in SENT_OR_LATER:
        return delivered
    return not delivered or bool(record.ambiguous_via)


def table(account: Account, windows: Sequence[Window]) -> str:
    """One row per fault (the ids alive during it) and a total row."""
    name_width = max([len("total"), *(len(w.name) for w in windows)])
    head = f"{'fault':<{name_width}}  {'s':>5}  " + "  ".join(f"{c:>11}" for c in COLUMNS)
    lines = [head + "  injected", "-" * len(head)]
    for window in windows:
        counts = account.count(account.during(window))
        seconds = window.ended - window.started
        injected = ", ".join(f"{k} {n}" for k, n in sorted(window.injected.items()) if n)
        row = _row(window.name, f"{seconds:5.1f}", counts, name_width)
        lines.append(f"{row}  {injected or '-'}")
    lines.append("-" * len(head))
    lines.append(_row("total", "", account.count(), name_width))
    return "\n".join(lines)


def _row(name: str, seconds: str, counts: Mapping[str, int], width: int) -> str:
    cells = "  ".join(f"{counts[c]:>11,}" for c in COLUMNS)
    return f"{name:<{width}}  {seconds:>5}  {cells}"
