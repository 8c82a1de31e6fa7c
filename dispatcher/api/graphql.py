"""`/graphql`: strawberry-graphql on aiohttp, over the same records as the REST routes.

    emailSend(id)                                  one message, or null
    emailSends(status, batchId, createdFrom, createdTo, first, after)
                                                   a Relay-style connection, newest first

Queries need the API key like `/v1` (the auth middleware). A browser's GET of `/graphql`
gets GraphiQL 3 with React 18, from this server's static files, never from a CDN.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import strawberry
from aiohttp import web
from strawberry.aiohttp.views import GraphQLView
from strawberry.types import Info

from dispatcher.api.services import SERVICES
from dispatcher.api.views import email_status
from dispatcher.ledger import Record, RecordStatus
from dispatcher.records import MAX_LIMIT, CursorError, Query, encode_cursor


@strawberry.enum
class Status(enum.Enum):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    SENDING = "SENDING"
    SENT = "SENT"
    ERROR = "ERROR"
    DELIVERED = "DELIVERED"
    BOUNCED = "BOUNCED"
    COMPLAINED = "COMPLAINED"


@strawberry.type
class EmailSend:
    id: strawberry.ID
    batch_id: str | None
    status: Status
    provider: str | None
    provider_message_id: str | None
    attempts: int
    error: str | None
    created_by: str | None
    created_at: datetime | None
    updated_at: datetime | None
    bounce_type: str | None  # hard or soft, when BOUNCED
    event_at: datetime | None  # DELIVERED, BOUNCED, COMPLAINED: when the provider saw it
    reason_code: str | None  # the provider's reason (an SMTP status, a bounce subtype)


@strawberry.type
class EmailSendEdge:
    cursor: str
    node: EmailSend


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class EmailSendConnection:
    edges: list[EmailSendEdge]
    page_info: PageInfo


def _node(record: Record) -> EmailSend:
    doc = email_status(record)
    return EmailSend(
        id=strawberry.ID(doc.id),
        batch_id=doc.batch_id,
        status=Status(doc.status),
        provider=doc.provider,
        provider_message_id=doc.provider_message_id,
        attempts=doc.attempts,
        error=doc.error,
        created_by=doc.created_by,
        created_at=doc.created_at,
        updated_at=doc.updated_at,
        bounce_type=doc.bounce_type,
        event_at=doc.event_at,
        reason_code=doc.reason_code,
    )


def _cursor(record: Record) -> str:
    return encode_cursor(int((record.indexed_at or 0) * 1000), record.message_id)


@strawberry.type
class QueryRoot:
    @strawberry.field
    async def email_send(self, info: Info[Any, None], id: strawberry.ID) -> EmailSend | None:
        """One message by id; null if unknown or expired."""
        record = await info.context["app"][SERVICES].records.get(str(id))
        return _node(record) if record else None

    @strawberry.field
    async def email_sends(
        self,
        info: Info[Any, None],
        status: Status | None = None,
        batch_id: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> EmailSendConnection:
        """Messages, newest first, filtered; `after` is an edge's or page's cursor."""
        if not 1 <= first <= MAX_LIMIT:
            raise ValueError(f"first must be 1..{MAX_LIMIT}")
        query = Query(
            status=RecordStatus(status.value) if status else None,
            batch_id=batch_id,
            created_from=created_from.timestamp() if created_from else None,
            created_to=created_to.timestamp() if created_to else None,
            limit=first,
            cursor=after,
        )
        try:
            page = await info.context["app"][SERVICES].records.page(query)
        except CursorError as exc:
            raise ValueError(f"after: {exc}") from None
        edges = [EmailSendEdge(cursor=_cursor(r), node=_node(r)) for r in page.records]
        return EmailSendConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.next_cursor is not None,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=page.next_cursor or (edges[-1].cursor if edges else None),
            ),
        )


SCHEMA = strawberry.Schema(query=QueryRoot)

_GRAPHIQL = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>dispatcher GraphiQL</title>
  <style>body { margin: 0; height: 100vh; } #graphiql { height: 100vh; }</style>
  <link rel="stylesheet" href="/static/graphiql/graphiql.min.css">
</head>
<body>
  <div id="graphiql">Loading GraphiQL...</div>
  <script src="/static/graphiql/react.production.min.js"></script>
  <script src="/static/graphiql/react-dom.production.min.js"></script>
  <script src="/static/graphiql/graphiql.min.js"></script>
  <script src="/static/graphiql.js"></script>
</body>
</html>
"""


class LocalGraphiQLView(GraphQLView[dict[str, Any], None]):
    """Strawberry's view, with the GraphiQL page served from this server."""

    async def render_graphql_ide(self, request: web.Request) -> web.Response:
        return web.Response(text=_GRAPHIQL, content_type="text/html")

    async def get_context(self, request: web.Request, response: Any) -> dict[str, Any]:
        return {"app": request.app, "request": request, "response": response}


def add_routes(app: web.Application) -> None:
    view = LocalGraphiQLView(schema=SCHEMA, graphql_ide="graphiql", allow_queries_via_get=True)
    app.router.add_route("GET", "/graphql", view)
    app.router.add_route("POST", "/graphql", view)
