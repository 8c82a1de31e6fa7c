"""Status routes: one email by id, a page of emails by status, batch and time, a batch's counts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from dispatcher.api.errors import ApiError, InvalidRequest, field_errors, json_response
from dispatcher.api.models import BatchStatus, EmailPage, ListQuery, PageQuery
from dispatcher.api.services import SERVICES
from dispatcher.api.views import email_status
from dispatcher.ledger import RecordStatus
from dispatcher.message_fields import is_identifier
from dispatcher.records import CursorError, Page, Query

M = TypeVar("M", bound=BaseModel)


async def get_email(request: web.Request) -> web.Response:
    message_id = request.match_info["id"]
    record = is_identifier(message_id) and await request.app[SERVICES].records.get(message_id)
    if not record:
        raise ApiError(404, "no email with this id (or its record has expired)")
    return _model(email_status(record))


async def list_emails(request: web.Request) -> web.Response:
    q = _query(ListQuery, request.query)
    query = Query(
        status=RecordStatus(q.status) if q.status else None,
        batch_id=q.batch_id,
        created_from=q.created_from.timestamp() if q.created_from else None,
        created_to=q.created_to.timestamp() if q.created_to else None,
        limit=q.limit,
        cursor=q.cursor,
    )
    page = await _page(request, query)
    return _model(
        EmailPage(messages=[email_status(r) for r in page.records], next_cursor=page.next_cursor)
    )


async def get_batch(request: web.Request) -> web.Response:
    batch_id = request.match_info["batch_id"]
    q = _query(PageQuery, request.query)
    records = request.app[SERVICES].records
    counts = await records.batch_counts(batch_id) if is_identifier(batch_id) else None
    if counts is None or counts.total == 0:
        raise ApiError(404, "no batch with this id (or its records have expired)")
    page = await _page(request, Query(batch_id=batch_id, limit=q.limit, cursor=q.cursor))
    return _model(
        BatchStatus(
            batch_id=batch_id,
            total=counts.total,
            counts=counts.by_status,  # type: ignore[arg-type]
            messages=[email_status(r) for r in page.records],
            next_cursor=page.next_cursor,
        )
    )


async def _page(request: web.Request, query: Query) -> Page:
    try:
        return await request.app[SERVICES].records.page(query)
    except CursorError as exc:
        raise InvalidRequest([("cursor", str(exc))]) from None


def _query(model: type[M], params: Mapping[str, str]) -> M:
    known: dict[str, Any] = {k: v for k, v in params.items() if k in model.model_fields}
    try:
        return model.model_validate(known)
    except ValidationError as exc:
        raise InvalidRequest(field_errors(exc)) from None


def _model(model: BaseModel, status: int = 200) -> web.Response:
    return json_response(status, model.model_dump(mode="json"))
