"""Provider webhook payloads (already verified) as `FeedbackEvent`s.

    provider  event                                   becomes
    SendGrid  delivered / bounce (type bounce)        DELIVERED / BOUNCED hard
              bounce (type blocked) / spamreport      BOUNCED soft / COMPLAINED
    Mailgun   delivered / failed (permanent)          DELIVERED / BOUNCED hard
              complained                              COMPLAINED
    SES       Delivery / Bounce (Permanent)           DELIVERED / BOUNCED hard
              Bounce (Transient, Undetermined)        BOUNCED soft
              Complaint                               COMPLAINED

Everything else (opens, clicks, deferrals, Mailgun's temporary failures, which it retries) is
left out. Our id comes from `dispatcher_id` (SendGrid custom_args, Mailgun user-variables, SES
tags), the provider's id from `sg_message_id`, the Message-Id header or `mail.messageId`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from dispatcher.feedback import FeedbackEvent
from dispatcher.message_fields import is_identifier

_SES_TAG = re.compile(r"[A-Za-z0-9-]{1,200}")  # kept as is by providers.ses.tag_value


def _our_id(value: object) -> str | None:
    return value if isinstance(value, str) and is_identifier(value) else None


def _text(value: object) -> str:
    return "" if value is None else str(value)[:64]


def sendgrid_events(doc: Any) -> list[FeedbackEvent]:
    if not isinstance(doc, list):
        raise ValueError("expected a JSON array of events")
    return [e for item in doc if isinstance(item, dict) for e in _sendgrid(item)]


def _sendgrid(item: Mapping[str, Any]) -> Iterator[FeedbackEvent]:
    kind = item.get("event")
    if kind == "delivered":
        status, bounce = "DELIVERED", ""
    elif kind == "bounce":
        status, bounce = "BOUNCED", "soft" if item.get("type") == "blocked" else "hard"
    elif kind == "spamreport":
        status, bounce = "COMPLAINED", ""
    else:
        return
    yield FeedbackEvent(
        status=status,
        at=float(item.get("timestamp") or 0),
        recipient=str(item.get("email", "")),
        message_id=_our_id(item.get("dispatcher_id")),
        provider_message_id=str(item.get("sg_message_id", "")).split(".")[0] or None,
        bounce=bounce,
        reason=_text(item.get("status") or item.get("type")),
    )


def mailgun_events(doc: Any) -> list[FeedbackEvent]:
    data = doc.get("event-data") if isinstance(doc, dict) else None
    if not isinstance(data, dict):
        raise ValueError("expected event-data")
    kind, severity = data.get("event"), data.get("severity")
    if kind == "delivered":
        status, bounce = "DELIVERED", ""
    elif kind == "failed" and severity == "permanent":
        status, bounce = "BOUNCED", "hard"
    elif kind == "complained":
        status, bounce = "COMPLAINED", ""
    else:
        return []
    delivery = data.get("delivery-status") or {}
    headers = (data.get("message") or {}).get("headers") or {}
    variables = data.get("user-variables") or {}
    return [
        FeedbackEvent(
            status=status,
            at=float(data.get("timestamp") or 0),
            recipient=str(data.get("recipient", "")),
            message_id=_our_id(variables.get("dispatcher_id")),
            provider_message_id=str(headers.get("message-id", "")).strip("<>") or None,
            bounce=bounce,
            reason=_text(delivery.get("code") or data.get("reason")),
        )
    ]


def ses_events(message: Any) -> list[FeedbackEvent]:
    """The events of one SES notification (identity notifications or event publishing)."""
    if not isinstance(message, dict):
        raise ValueError("expected an SES notification object")
    kind = message.get("notificationType") or message.get("eventType")
    mail = message.get("mail") or {}
    tag = next(iter((mail.get("tags") or {}).get("dispatcher_id") or []), None)
    common: dict[str, Any] = {
        "message_id": tag if isinstance(tag, str) and _SES_TAG.fullmatch(tag) else None,
        "provider_message_id": mail.get("messageId") or None,
    }
    read = _SES_READERS.get(str(kind))
    return read(message, common) if read else []


def _ses_bounces(message: dict[str, Any], common: dict[str, Any]) -> list[FeedbackEvent]:
    bounce = message.get("bounce") or {}
    hard = bounce.get("bounceType") == "Permanent"
    return [
        FeedbackEvent(
            "BOUNCED",
            _iso(bounce.get("timestamp")),
            str(r.get("emailAddress", "")),
            bounce="hard" if hard else "soft",
            reason=_text(r.get("status") or bounce.get("bounceSubType")),
            **common,
        )
        for r in bounce.get("bouncedRecipients") or []
    ]


def _ses_complaints(message: dict[str, Any], common: dict[str, Any]) -> list[FeedbackEvent]:
    complaint = message.get("complaint") or {}
    return [
        FeedbackEvent(
            "COMPLAINED",
            _iso(complaint.get("timestamp")),
            str(r.get("emailAddress", "")),
            reason=_text(complaint.get("complaintFeedbackType")),
            **common,
        )
        for r in complaint.get("complainedRecipients") or []
    ]


def _ses_deliveries(message: dict[str, Any], common: dict[str, Any]) -> list[FeedbackEvent]:
    delivery = message.get("delivery") or {}
    at = _iso(delivery.get("timestamp"))
    return [
        FeedbackEvent("DELIVERED", at, str(r), **common) for r in delivery.get("recipients") or []
    ]


_SES_READERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], list[FeedbackEvent]]] = {
    "Bounce": _ses_bounces,
    "Complaint": _ses_complaints,
    "Delivery": _ses_deliveries,
}


def _iso(text: object) -> float:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
