"""Bearer-token checks for the admin API, the stats and the dashboard's data."""
from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import JSONResponse


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
