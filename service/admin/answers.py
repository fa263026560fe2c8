"""The admin API's JSON answers: one shape for every refusal, one way to read a JSON body.

Every admin endpoint answers a refusal as ``{"error": <plain reason>, …extra}`` so an
operator's script reads one field whatever the endpoint. Redis unreachable is one of them
(:func:`redis_guard`): a 503 with ``redis: down``, as ``/api/v1/stats`` answers, so the dashboard
says so in words instead of showing a blank panel.
"""
from __future__ import annotations

import functools
import json

import redis.exceptions
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


def redis_guard(what: str):
    """Decorate a handler: Redis unreachable → 503 ``"Redis is unreachable: threadline cannot
    read its <what>"`` with ``redis: down``, never a 500."""
    def wrap(handler):
        @functools.wraps(handler)
        async def guarded(request: Request):
            try:
                return await handler(request)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                return error(503, f"Redis is unreachable: threadline cannot read its {what}",
                             redis="down")
        return guarded
    return wrap
