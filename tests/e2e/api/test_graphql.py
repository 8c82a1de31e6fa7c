"""/graphql: emailSend and emailSends (a Relay connection) over the same records; the GraphiQL
page is served from local files."""

from __future__ import annotations

import re
from typing import Any

from tests.support.api import Api, send

PAGE = """
query ($after: String) {
  emailSends(batchId: "g1", status: QUEUED, first: 2, after: $after) {
    edges { cursor node { id status batchId createdBy attempts createdAt } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def graphql(api: Api, query: str, **variables: Any) -> dict[str, Any]:
    doc = {"query": query, "variables": variables}
    async with api.client.post(f"{api.url}/graphql", json=doc) as reply:
        assert reply.status == 200
        result: dict[str, Any] = await reply.json()
        return result


async def test_email_sends_connection_and_email_send(api: Api) -> None:
    ids = await send(api, 3, "g1")
    await send(api, 1, "other")
    seen: list[str] = []
    after = None
    while True:
        result = await graphql(api, PAGE, after=after)
        connection = result["data"]["emailSends"]
        seen += [e["node"]["id"] for e in connection["edges"]]
        assert all(e["node"]["status"] == "QUEUED" for e in connection["edges"])
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert sorted(seen) == sorted(ids)
    one = await graphql(
        api, "query ($id: ID!) { emailSend(id: $id) { id batchId createdBy } }", id=ids[0]
    )
    assert one["data"]["emailSend"] == {"id": ids[0], "batchId": "g1", "createdBy": "ops"}
    missing = await graphql(api, '{ emailSend(id: "nope") { id } }')
    assert missing["data"]["emailSend"] is None
    bad = await graphql(api, "{ emailSends(first: 0) { edges { cursor } } }")
    assert "first must be" in bad["errors"][0]["message"]


async def test_graphiql_is_served_from_local_files(api: Api, http: Any) -> None:
    async with http.get(f"{api.url}/graphql", headers={"Accept": "text/html"}) as reply:
        assert reply.status == 200
        page = await reply.text()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert "/static/graphiql/graphiql.min.js" in assets
    assert all(a.startswith("/static/") for a in assets)
    for asset in assets:
        async with http.get(f"{api.url}{asset}") as reply:
            assert reply.status == 200, asset
