"""The Starlette application: webhooks, the admin API, /metrics, the dashboard, health checks.

Each concern keeps its routes in its own module; this one only assembles them and owns the
resources every request shares (settings, the Redis clients), opened once per process.
"""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from service import admin
from service.views import dashboard, health, metrics
from service.webhooks import endpoints as webhooks
from workers.capture import file as configfile
from workers.foundations import log
from workers.foundations.redis_conn import connect, connect_async
from workers.foundations.settings import Settings, load_settings


async def healthz(request: Request) -> PlainTextResponse:
    """The process is up (no dependency is checked: that is /readyz)."""
    return PlainTextResponse("ok")


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    log.configure(settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.redis = connect_async(settings)
        app.state.redis_sync = connect(settings)  # for RQ enqueues, which are synchronous
        # THREADLINE_CONFIG: loaded now, reloaded on SIGHUP (an invalid file stops the start).
        stop_config = await configfile.start(settings, app.state.redis_sync)
        try:
            async with webhooks.running(app):
                yield
        finally:
            stop_config()
            await app.state.redis.aclose()
            app.state.redis_sync.close()

    routes = [
        *webhooks.routes(),
        Route("/healthz", healthz),
        Route("/readyz", health.readyz, methods=["GET"]),
        Route("/metrics", metrics.metrics, methods=["GET"]),
        *admin.routes(),
        *dashboard.routes,
    ]
    app = ThreadlineApp(routes=routes, lifespan=lifespan)
    app.state.settings = settings
    return app


class ThreadlineApp(Starlette):
    """Starlette, with the webhook endpoints reached before its middleware and router.

    Why: a webhook is the request this process exists for, thousands a second, and the
    general machinery in front of an endpoint (the error and exception middleware, the route
    scan, the per-request exception wrapper) costs it a few percent of its CPU for nothing a
    webhook uses — the endpoints answer every refusal themselves. An exact webhook path goes
    straight to its :class:`service.webhooks.endpoints.Webhook`; anything else (other paths under
    /webhooks/, the admin API, health checks) takes Starlette's usual way. An exception that
    escapes a webhook endpoint (a bug) still becomes a 500: uvicorn answers it and logs it.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hook = webhooks.ENDPOINTS.get(scope["path"])
            if hook is not None:
                scope["app"] = self
                await hook(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
