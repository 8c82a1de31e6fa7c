"""/openapi.json is valid OpenAPI 3.1 and matches the models; /docs and its assets are local."""

from __future__ import annotations

import re
from typing import Any

from openapi_spec_validator import validate

from dispatcher.api.models import EmailRequest
from tests.support.api import Api


async def test_the_document_is_valid_openapi_3_1_from_the_models(api: Api, http: Any) -> None:
    async with http.get(f"{api.url}/openapi.json") as reply:
        assert reply.status == 200
        spec = await reply.json()
    validate(spec)
    assert spec["openapi"] == "3.1.0"
    request = spec["components"]["schemas"]["EmailRequest"]
    assert set(request["properties"]) == {
        f.alias or name for name, f in EmailRequest.model_fields.items()
    }
    assert request["properties"]["to"]["maxItems"] == 1000
    assert request["additionalProperties"] is False
    assert {"/v1/emails", "/v1/emails/{id}", "/v1/batches/{batch_id}", "/v1/campaigns"} <= set(
        spec["paths"]
    )


async def test_docs_load_only_local_assets(api: Api, http: Any) -> None:
    async with http.get(f"{api.url}/docs") as reply:
        assert reply.status == 200
        page = await reply.text()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets
    assert all(a.startswith("/static/") for a in assets)
    for asset in assets:
        async with http.get(f"{api.url}{asset}") as reply:
            assert reply.status == 200, asset
