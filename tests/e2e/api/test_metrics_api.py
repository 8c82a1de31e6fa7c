"""The API's own /metrics: request counts and latency by route and status."""

from __future__ import annotations

import aiohttp

from tests.support.api import Api, body
from tests.support.metrics import scrape, value


async def test_the_api_serves_request_counts_by_route_and_status(api: Api) -> None:
    async with api.client.post(f"{api.url}/v1/emails", json=body(1)) as reply:
        assert reply.status == 202
    async with api.client.get(f"{api.url}/v1/emails/nope-{1}") as reply:
        assert reply.status == 404
    async with aiohttp.ClientSession() as http:
        series = await scrape(http, api.url)
    requests = "dispatcher_api_requests_total"
    assert value(series, requests, route="/v1/emails", method="POST", status="202") == 1
    assert value(series, requests, route="/v1/emails/{id}", method="GET", status="404") == 1
    seconds = "dispatcher_api_request_seconds_count"
    assert value(series, seconds, route="/v1/emails", method="POST") == 1
