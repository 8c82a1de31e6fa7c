"""`POST /v1/webhooks/{sendgrid,mailgun,ses}`: provider events, verified, then recorded.

Each request is verified first (`webhook_auth`, `sns`): a bad or missing signature is answered
401, a stale timestamp, a replay or a foreign topic 403, each with one `webhook_rejected` log
line naming the provider and the reason, and nothing changes. A verified request is recorded
at once (`dispatcher.feedback`: one round trip for the records, one for suppression and
counters) and answered 200; events for ids we do not know, or for records that failed, are
ignored with a `webhook_ignored` line. An event for a record not settled yet (the webhook beat
our own settle) is answered 503 with Retry-After, its replay token released, so the provider
sends it again; the events applied meanwhile are ignored the second time (no regression).
A webhook whose key is not configured is 404.
No address, subject or key is ever logged; message ids may be.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

import orjson
import structlog
from aiohttp import web

from dispatcher.api.errors import ApiError
from dispatcher.api.logging import annotate
from dispatcher.api.services import SERVICES, Services
from dispatcher.api.webhook_auth import Rejected, check_age, verify_mailgun, verify_sendgrid
from dispatcher.api.webhook_events import mailgun_events, sendgrid_events, ses_events
from dispatcher.feedback import FeedbackEvent

log = structlog.get_logger("dispatcher.api")
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


async def sendgrid(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    key = services.hooks.sendgrid_key
    if key is None:
        raise ApiError(404, "the SendGrid webhook is not configured")
    body = await request.read()
    signature, stamp = request.headers.get(SIGNATURE, ""), request.headers.get(TIMESTAMP, "")
    max_age = services.settings.webhooks.max_age_seconds
    try:
        verify_sendgrid(key, signature, stamp, body)
        check_age(stamp, time.time(), max_age)
        events = sendgrid_events(_json(body))
    except Rejected as exc:
        return _rejected(request, "sendgrid", exc)
    except (ValueError, TypeError, AttributeError):
        return _rejected(request, "sendgrid", Rejected(400, "events not in the expected shape"))
    return await _record(request, services, "sendgrid", signature, 2 * max_age, events)


async def mailgun(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    signing_key = services.settings.webhooks.mailgun_signing_key
    if not signing_key:
        raise ApiError(404, "the Mailgun webhook is not configured")
    max_age = services.settings.webhooks.max_age_seconds
    try:
        doc = _json(await request.read())
        sig = doc.get("signature") if isinstance(doc, dict) else None
        if not isinstance(sig, dict):
            raise Rejected(401, "missing signature")
        stamp, token = str(sig.get("timestamp", "")), str(sig.get("token", ""))
        verify_mailgun(signing_key, stamp, token, str(sig.get("signature", "")))
        check_age(stamp, time.time(), max_age)
        events = mailgun_events(doc)
    except Rejected as exc:
        return _rejected(request, "mailgun", exc)
    except (ValueError, TypeError, AttributeError):
        return _rejected(request, "mailgun", Rejected(400, "events not in the expected shape"))
    return await _record(request, services, "mailgun", token, 2 * max_age, events)


async def ses(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    verifier = services.hooks.sns
    if verifier is None:
        raise ApiError(404, "the SES (SNS) webhook is not configured")
    try:
        doc = _json(await request.read())
        if not isinstance(doc, dict):
            raise Rejected(401, "not an SNS message")
        await verifier.verify(doc, time.time())
        kind = doc.get("Type")
        if kind == "SubscriptionConfirmation":
            await verifier.confirm(doc)
            log.info("sns_subscribed", topic=str(doc.get("TopicArn", ""))[:256])
            return web.Response(status=200)
        if kind != "Notification":
            return web.Response(status=200)
        events = ses_events(_json(str(doc.get("Message", "")).encode()))
    except Rejected as exc:
        return _rejected(request, "ses", exc)
    except (ValueError, TypeError, AttributeError):
        return _rejected(request, "ses", Rejected(400, "events not in the expected shape"))
    ttl = 2 * services.settings.webhooks.sns_max_age_seconds
    return await _record(request, services, "ses", str(doc.get("MessageId")), ttl, events)


async def _record(
    request: web.Request,
    services: Services,
    provider: str,
    token: str,
    ttl: int,
    events: Sequence[FeedbackEvent],
) -> web.Response:
    try:
        await services.replays.first(provider, token, ttl)
    except Rejected as exc:
        return _rejected(request, provider, exc)
    try:
        results = await services.feedback.apply(events)
    except BaseException:
        await services.replays.forget(provider, token)  # so that the provider's retry counts
        raise
    verdicts = Counter(r.verdict.value.lower() for r in results)
    annotate(request, webhook=provider, events=len(events), **verdicts)
    if verdicts["early"]:
        await services.replays.forget(provider, token)
        body = orjson.dumps({"error": "a message is not settled yet: send the events again"})
        headers = {"Retry-After": "5"}
        return web.Response(status=503, body=body, content_type="application/json", headers=headers)
    for r in results:
        if r.verdict.value in ("UNKNOWN", "NOT_SENT"):
            log.info(
                "webhook_ignored",
                provider=provider,
                verdict=r.verdict.value,
                id=r.message_id or r.event.message_id,
                provider_message_id=r.event.provider_message_id,
                status=r.event.status,
            )
    return web.Response(status=200)


def _rejected(request: web.Request, provider: str, exc: Rejected) -> web.Response:
    log.warning("webhook_rejected", provider=provider, status=exc.status, reason=exc.reason)
    annotate(request, webhook=provider, rejected=exc.reason)
    body = orjson.dumps({"error": f"webhook refused: {exc.reason}"})
    return web.Response(status=exc.status, body=body, content_type="application/json")


def _json(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Rejected(401, "body is not JSON") from None
