"""`POST /v1/emails`: validate, record PENDING, enqueue one message per `to`, mark QUEUED."""

from __future__ import annotations

import math
import uuid

import orjson
from aiohttp import web

from dispatcher.api import compose
from dispatcher.api.auth import CLIENT
from dispatcher.api.errors import ApiError, InvalidRequest
from dispatcher.api.idempotency import Verdict, valid_key
from dispatcher.api.logging import annotate
from dispatcher.api.services import SERVICES, Services


async def post_emails(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    if request.content_type != "application/json":
        raise ApiError(415, "send the body as application/json")
    raw = await request.read()
    key = request.headers.get("Idempotency-Key")
    if key is not None and not valid_key(key):
        raise InvalidRequest([("Idempotency-Key", "1 to 256 printable ASCII characters")])
    email = compose.parse_email_request(raw)
    client = request[CLIENT]
    digest = services.idempotency.digest(client, key) if key is not None else None
    batch_id, ids = compose.message_ids(len(email.to), email.batch_id, digest)
    outgoing = compose.compose(email, batch_id, ids)
    annotate(request, batch_id=batch_id, messages=len(outgoing), idempotent=digest is not None)
    token = uuid.uuid4().hex
    if digest is None:
        return await _submit(services, outgoing, token, client, None)
    begun = await services.idempotency.begin(
        digest, compose.fingerprint(request.method, request.path, raw), token
    )
    annotate(request, idempotency=begun.verdict.value)
    if begun.verdict is Verdict.MISMATCH:
        raise ApiError(422, "this Idempotency-Key was used with another request body")
    if begun.verdict is Verdict.BUSY:
        raise ApiError(
            409,
            "a request with this Idempotency-Key is still running",
            headers={"Retry-After": str(max(1, math.ceil(begun.retry_after)))},
        )
    if begun.verdict is Verdict.DONE:
        return web.Response(
            status=begun.status,
            body=begun.body,
            content_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    return await _submit(services, outgoing, token, client, digest)


async def _submit(
    services: Services,
    outgoing: list[compose.Outgoing],
    token: str,
    client: str,
    digest: str | None,
) -> web.Response:
    try:
        submitted = await services.enqueuer.submit(outgoing, token, client)
    except BaseException:
        if digest is not None:
            await _release(services, digest, token)
        raise
    if submitted.not_queued:
        if digest is not None:
            await services.idempotency.finish(digest, token, 503, None)
        not_queued = set(submitted.not_queued)
        raise ApiError(
            503,
            "SQS did not take every message; they are recorded PENDING: retry with the same "
            "Idempotency-Key to enqueue only those",
            headers={"Retry-After": "2"},
            extra={
                "queued": [m.id for m in outgoing if m.id not in not_queued],
                "not_queued": submitted.not_queued,
            },
        )
    skipped = set(submitted.suppressed)
    body = orjson.dumps(
        {
            "batch_id": outgoing[0].batch_id,
            "messages": [
                {"id": m.id, "to": m.to, "result": "suppressed" if m.id in skipped else "queued"}
                for m in outgoing
            ],
        }
    )
    if digest is not None:
        await services.idempotency.finish(digest, token, 202, body)
    return web.Response(status=202, body=body, content_type="application/json")


async def _release(services: Services, digest: str, token: str) -> None:
    """After an unexpected failure, let the next request with the key resume at once."""
    try:
        await services.idempotency.finish(digest, token, 500, None)
    except Exception:  # Redis itself is away: the lease lapses instead
        return
