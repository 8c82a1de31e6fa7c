"""The aiohttp application: routes, middlewares (log, errors, auth), services in a cleanup
context, and `run`, which leaves the lifecycle to `web.run_app` (SIGTERM: stop accepting, let
in-flight requests finish for `api.shutdown_seconds`, close the services, exit 0)."""

from __future__ import annotations

from collections.abc import Sequence

import uvloop
from aiohttp import web

from dispatcher import logs
from dispatcher.api import (
    campaigns,
    docs,
    emails,
    graphql,
    ops,
    status,
    suppressions,
    webhooks,
)
from dispatcher.api.auth import ApiKey, auth_middleware, load_keys
from dispatcher.api.errors import errors_middleware
from dispatcher.api.logging import access_log
from dispatcher.api.openapi import openapi_route
from dispatcher.api.services import services_context
from dispatcher.config import ConfigError, Settings
from dispatcher.ops.api_metrics import ApiMetrics


def build_app(settings: Settings, keys: Sequence[ApiKey]) -> web.Application:
    metrics = ApiMetrics.create()  # this application's own registry
    app = web.Application(
        client_max_size=settings.api.max_body_bytes,
        middlewares=[metrics.middleware(), access_log, errors_middleware, auth_middleware(keys)],
    )
    app.cleanup_ctx.append(services_context(settings))
    app.router.add_post("/v1/emails", emails.post_emails)
    app.router.add_get("/v1/emails", status.list_emails, allow_head=False)
    app.router.add_get("/v1/emails/{id}", status.get_email, allow_head=False)
    app.router.add_get("/v1/batches/{batch_id}", status.get_batch, allow_head=False)
    app.router.add_post("/v1/campaigns", campaigns.post_campaign)
    app.router.add_get("/v1/suppressions", suppressions.get_suppressions, allow_head=False)
    app.router.add_post("/v1/suppressions", suppressions.post_suppressions)
    app.router.add_delete("/v1/suppressions", suppressions.delete_suppressions)
    app.router.add_post("/v1/webhooks/sendgrid", webhooks.sendgrid)
    app.router.add_post("/v1/webhooks/mailgun", webhooks.mailgun)
    app.router.add_post("/v1/webhooks/ses", webhooks.ses)
    app.router.add_get("/healthz", ops.healthz, allow_head=False)
    app.router.add_get("/readyz", ops.readyz, allow_head=False)
    metrics.add_route(app)
    app.router.add_get("/openapi.json", openapi_route(), allow_head=False)
    docs.add_routes(app)
    graphql.add_routes(app)
    return app


def run(settings: Settings) -> None:
    """`dispatcher api`: serve until SIGTERM or SIGINT."""
    if not settings.api.api_keys_file:
        raise ConfigError("api.api_keys_file", "is required to run the API")
    keys = load_keys(settings.api.api_keys_file)
    logs.configure(settings.log.level)
    web.run_app(
        build_app(settings, keys),
        host=settings.api.host,
        port=settings.api.port,
        shutdown_timeout=settings.api.shutdown_seconds,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )
