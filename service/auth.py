"""Bearer-token checks for the admin API, the stats and the dashboard's data.

The admin API checks its token once, in :class:`AdminAuth` — middleware on the one
``Mount("/api/v1")`` (:func:`service.admin.routes`), as Starlette mounts a route group with its
middleware — instead of a call at the top of every handler. ``/metrics`` has its own token
(``THREADLINE_METRICS_TOKEN``) and calls :func:`bearer_ok` itself.
"""
from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send


def bearer_ok(request: Request, expected: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())


def admin_refusal(request: Request) -> JSONResponse | None:
    """None when the request carries the admin token; else the answer to give.

    Without ``THREADLINE_ADMIN_TOKEN`` the admin API is off (503), never open.
    """
    expected = request.app.state.settings.admin_token
    if not expected:
        return JSONResponse({"error": "admin API disabled: THREADLINE_ADMIN_TOKEN is not set"}, 503)
    if not bearer_ok(request, expected):
        return JSONResponse(
            {"error": "missing or wrong bearer token"}, 401, headers={"WWW-Authenticate": "Bearer"}
        )
    return None


class AdminAuth:
    """ASGI middleware: a request through the admin Mount goes on only with the admin token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = admin_refusal(Request(scope))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
