"""``GET /dashboard``: one self-contained page over ``/api/v1/stats`` and the dead letters.

The page and its assets ship inside the package (``service/views/static``) and load nothing from
elsewhere — it works offline, and the Content-Security-Policy below makes any attempt to
reach a CDN fail loudly in the browser. The HTML itself is public (it holds no data); every
number comes from the admin API with the token the page asks for once and keeps in
``sessionStorage`` for the browser session.
"""
from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def dashboard(request: Request) -> FileResponse:
    return FileResponse(STATIC / "dashboard.html", headers=HEADERS)


async def dashboard_slash(request: Request) -> RedirectResponse:
    return RedirectResponse("/dashboard", 308)


routes = [
    Route("/dashboard", dashboard, methods=["GET"]),
    Route("/dashboard/", dashboard_slash, methods=["GET"]),
    Mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static"),
]
