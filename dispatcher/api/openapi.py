"""OpenAPI 3.1 for the REST routes, generated from the pydantic models that validate requests
(`dispatcher.api.models`), so the document and the checks cannot drift apart."""

from __future__ import annotations

from functools import cache
from typing import Any, get_args

import orjson
from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from dispatcher.api import models as m
from dispatcher.api.errors import Handler

REF = "#/components/schemas/{model}"
_REQUESTS: tuple[type[BaseModel], ...] = (m.EmailRequest, m.CampaignForm)
_RESPONSES: tuple[type[BaseModel], ...] = (
    m.EmailAccepted,
    m.ErrorBody,
    m.EmailStatus,
    m.EmailPage,
    m.BatchStatus,
    m.CampaignAccepted,
)


@cache
def openapi() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(model, "validation") for model in _REQUESTS]
        + [(model, "serialization") for model in _RESPONSES],
        ref_template=REF,
    )
    components = schemas["$defs"]
    components["CampaignForm"]["properties"]["file"] = {
        "type": "string",
        "contentMediaType": "text/csv",
        "description": components["CampaignForm"]["properties"]["file"].get("description", ""),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dispatcher intake API",
            "version": "1",
            "description": "Send email, upload CSV campaigns and read what became of each "
            "message. The API validates, records and enqueues; the dispatcher sends.",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": _paths(),
    }


def _paths() -> dict[str, Any]:
    return {**_send_paths(), **_status_paths()}


def _send_paths() -> dict[str, Any]:
    """Where mail comes in: single sends (and their listing) and campaign uploads."""
    return {
        "/v1/emails": {
            "post": {
                "summary": "Send one email to each `to` recipient (one queue message each)",
                "operationId": "sendEmail",
                "parameters": [_idempotency()],
                "requestBody": _body("application/json", "EmailRequest"),
                "responses": {
                    "202": _json("accepted and queued", "EmailAccepted"),
                    **_errors(400, 401, 409, 413, 415, 422, 503),
                },
            },
            "get": {
                "summary": "Emails by status, batch and creation time, newest first",
                "operationId": "listEmails",
                "parameters": [
                    _query("status", {"enum": list(get_args(m.Status))}),
                    _query("batch_id", {"type": "string"}),
                    _query("created_from", {"type": "string", "format": "date-time"}),
                    _query("created_to", {"type": "string", "format": "date-time"}),
                    *_paging(),
                ],
                "responses": {"200": _json("a page", "EmailPage"), **_errors(400, 401, 503)},
            },
        },
        "/v1/campaigns": {
            "post": {
                "summary": "Upload a CSV campaign: one email per new address, duplicates skipped",
                "operationId": "uploadCampaign",
                "requestBody": _body("multipart/form-data", "CampaignForm"),
                "responses": {
                    "202": _json("read to the end", "CampaignAccepted"),
                    **_errors(400, 401, 413, 415, 503),
                },
            }
        },
    }


def _status_paths() -> dict[str, Any]:
    """Where state is read: one email, one batch, and the probes."""
    return {
        "/v1/emails/{id}": {
            "get": {
                "summary": "One email's status",
                "operationId": "getEmail",
                "parameters": [_path("id")],
                "responses": {"200": _json("its record", "EmailStatus"), **_errors(401, 404)},
            }
        },
        "/v1/batches/{batch_id}": {
            "get": {
                "summary": "A batch's counts by status and a page of its emails",
                "operationId": "getBatch",
                "parameters": [_path("batch_id"), *_paging()],
                "responses": {
                    "200": _json("counts and a page", "BatchStatus"),
                    **_errors(400, 401, 404, 503),
                },
            }
        },
        "/healthz": _probe("the process answers"),
        "/readyz": _probe("Redis and SQS answer", 503),
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _body(media: str, name: str) -> dict[str, Any]:
    return {"required": True, "content": {media: {"schema": _ref(name)}}}


def _json(text: str, name: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": _ref(name)}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _json("error", "ErrorBody") for code in codes}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _paging() -> list[dict[str, Any]]:
    return [
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}),
        _query("cursor", {"type": "string", "maxLength": 512}),
    ]


def _idempotency() -> dict[str, Any]:
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": 256},
        "description": "same key and body: the same answer, enqueued once; kept idempotency_hours",
    }


def _probe(text: str, *codes: int) -> dict[str, Any]:
    body = {"description": text, "content": {"application/json": {"schema": {"type": "object"}}}}
    return {
        "get": {
            "summary": text,
            "security": [],
            "responses": {"200": body, **{str(c): body for c in codes}},
        }
    }


def openapi_route() -> Handler:
    body = orjson.dumps(openapi())

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    return handler
