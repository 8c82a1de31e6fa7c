"""`/v1/suppressions`: the suppression list (`dispatcher.suppression`), by address.

    GET     ?address=a@b      is this address suppressed? (its hash, reason and time)
    GET     ?limit=&cursor=   a page of entries: hash, reason, time (the list holds no address)
    POST    {"addresses": [...], "reason": "manual"}   suppress them
    DELETE  {"addresses": [...]}                       lift them

Addresses are normalised (trimmed, domain case-folded) before hashing, as everywhere. They are
read from the body (or the query string of a check) and never logged.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from dispatcher.api.errors import ApiError, InvalidRequest, json_response
from dispatcher.api.logging import annotate
from dispatcher.api.services import SERVICES
from dispatcher.message_fields import is_address
from dispatcher.suppression import REASONS, Entry, normalise

MAX_ADDRESSES = 1000


async def get_suppressions(request: web.Request) -> web.Response:
    suppressions = request.app[SERVICES].suppressions
    address = request.query.get("address")
    if address is not None:
        digest = _digests(request, [address])[0]
        [entry] = await suppressions.check([digest])
        annotate(request, suppressed=entry is not None)
        return json_response(200, {"suppressed": entry is not None, **_doc(entry, digest)})
    limit, cursor = request.query.get("limit", "100"), request.query.get("cursor", "0")
    if not (limit.isdigit() and 1 <= int(limit) <= 1000 and cursor.isdigit()):
        raise InvalidRequest([("limit", "1..1000, and cursor a cursor from this API")])
    page = await suppressions.page(int(cursor), int(limit))
    return json_response(
        200,
        {
            "suppressions": [_doc(e, e.digest) for e in page.entries],
            "next_cursor": page.next_cursor,
        },
    )


async def post_suppressions(request: web.Request) -> web.Response:
    doc = await _body(request)
    reason = doc.get("reason", "manual")
    if reason not in REASONS:
        raise InvalidRequest([("reason", f"one of {', '.join(REASONS)}")])
    digests = _digests(request, doc.get("addresses"))
    await request.app[SERVICES].suppressions.add(digests, reason, time.time())
    annotate(request, added=len(digests))
    return json_response(200, {"suppressed": len(digests), "hashes": digests})


async def delete_suppressions(request: web.Request) -> web.Response:
    digests = _digests(request, (await _body(request)).get("addresses"))
    await request.app[SERVICES].suppressions.remove(digests)
    annotate(request, removed=len(digests))
    return json_response(200, {"lifted": len(digests), "hashes": digests})


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError(415, "send the body as application/json")
    try:
        doc = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise InvalidRequest([("body", "not JSON")]) from None
    if not isinstance(doc, dict):
        raise InvalidRequest([("body", "a JSON object with `addresses`")])
    return doc


def _digests(request: web.Request, addresses: object) -> list[str]:
    if not isinstance(addresses, list) or not 1 <= len(addresses) <= MAX_ADDRESSES:
        raise InvalidRequest([("addresses", f"a list of 1 to {MAX_ADDRESSES} addresses")])
    errors = [
        (f"addresses[{n}]", "not a valid address")
        for n, a in enumerate(addresses)
        if not isinstance(a, str) or not is_address(normalise(a))
    ]
    if errors:
        raise InvalidRequest(errors)
    hasher = request.app[SERVICES].suppressions.hasher
    return [hasher.digest(a) for a in addresses]


def _doc(entry: Entry | None, digest: str) -> dict[str, Any]:
    return {
        "hash": digest,
        "reason": entry.reason if entry else None,
        "at": entry.at if entry else None,
    }
