"""The admin API's JSON answers: one shape for every refusal, one way to read a JSON body.

Every admin endpoint answers a refusal as ``{"error": <plain reason>, …extra}`` so an
operator's script reads one field whatever the endpoint.
"""
from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse


def error(status: int, reason: str, /, **extra: object) -> JSONResponse:
    return JSONResponse({"error": reason, **extra}, status)


async def json_object(request: Request) -> dict | JSONResponse:
    """The request's JSON object, or the 400 to send (not JSON, or not an object)."""
    try:
        body = json.loads(await request.body() or b"null")
    except (ValueError, UnicodeDecodeError):
        return error(400, "body: not JSON")
    if not isinstance(body, dict):
        return error(400, "body: must be a JSON object")
    return body
