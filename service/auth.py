"""Bearer-token checks for the admin API, the stats and the dashboard's data.

The admin API checks its token once, in :class:`AdminAuth` — middleware on the one
``Mount("/api/v1")`` (:func:`service.admin.routes`), as Starlette mounts a route group with its
middleware — instead of a call at the top of every handler. ``/metrics`` has its own token
(``THREADLINE_METRICS_TOKEN``) and calls :func:`bearer_ok` itself.

Every refusal is counted (``auth_refused|<reason>``: ``missing``, ``wrong``, ``too_long``) and
logged with the path and the peer, never the token: a stream of wrong tokens is someone
guessing. A header longer than :data:`MAX_TOKEN_LENGTH` is refused before it is compared.
"""
from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from workers import stats
from workers.foundations.log import get_logger
from workers.stats.buffer import shared

logger = get_logger("threadline.auth")

MAX_TOKEN_LENGTH = 512  # far above any token an operator generates; anything longer is noise


def bearer_ok(request: Request, expected: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if len(header) > MAX_TOKEN_LENGTH + 16:
        return _refused(request, "too_long")
    if not token.strip():
        return _refused(request, "missing")
    if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode()):
        return True
    return _refused(request, "wrong")


def _refused(request: Request, reason: str) -> bool:
    """Count and log a refused bearer token (never the token itself); always False."""
    settings = request.app.state.settings
    shared(settings).add({stats.field("auth_refused", reason): 1})
    client = request.client
    logger.warning("bearer token refused", extra={"reason": reason, "path": request.url.path,
                                                   "peer": client.host if client else None})
    return False


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
