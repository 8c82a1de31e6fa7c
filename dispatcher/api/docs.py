"""`/docs` (Swagger UI) and the static files it and GraphiQL load, all served from inside the
package (`static/`, checked in with their licences): no page loads anything from another host.

    static/swagger-ui/   swagger-ui-dist 5.35.0 (Apache-2.0)
    static/graphiql/     graphiql 3.9.0, react and react-dom 18.3.1 (MIT)
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

STATIC = Path(str(resources.files("dispatcher.api").joinpath("static")))

_DOCS = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>dispatcher API</title>
  <link rel="icon" href="/static/swagger-ui/favicon-32x32.png">
  <link rel="stylesheet" href="/static/swagger-ui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/static/swagger-ui/swagger-ui-bundle.js"></script>
  <script src="/static/docs.js"></script>
</body>
</html>
"""


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=_DOCS, content_type="text/html")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/docs", docs_page, allow_head=False)
    app.router.add_static("/static", STATIC, append_version=False)
