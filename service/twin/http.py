"""Reading a request the way Twilio does (JSON body, Idempotency-Key), and the 202 answer.

Shared by the resource modules so each of them only says what its resource does.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.twin.errors import CONFLICT, TwinError, invalid
from service.twin.store import Replay, Store

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def accepted(op: dict[str, Any], st: Store) -> JSONResponse:
    """The 202 answer to an asynchronous write: statusUrl, related, and the spec's headers
    (``Retry-After`` is the operation delay rounded up to whole seconds)."""
    headers = {"Operation-Id": op["operationId"], "Location": op["statusUrl"],
               "Retry-After": str(max(0, math.ceil(st.operation_delay)))}
    return JSONResponse({"statusUrl": op["statusUrl"], "related": op["related"]},
                        status_code=202, headers=headers)


def store(request: Request) -> Store:
    return request.app.state.store


async def read_json(request: Request) -> Any:
    """The decoded body; malformed or missing JSON is a 400 (never a 500)."""
    raw = await request.body()
    if not raw.strip():
        raise invalid("The request body is empty; a JSON object is required")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"Malformed JSON in the request body: {exc.__class__.__name__}") from None


async def idempotent(request: Request,
                     answer: Callable[[], Awaitable[JSONResponse]]) -> JSONResponse:
    """Honour ``Idempotency-Key`` (declared on configuration writes and conversation DELETE).

    The same key on the same request returns the first answer again, without a second
    operation. The same key on a different request (method, path or body) is a 409.
    """
    key = request.headers.get("idempotency-key")
    if key is None:
        return await answer()
    if not _UUID.match(key):
        raise invalid("Idempotency-Key: must be a UUID")
    body = await request.body()
    fingerprint = hashlib.sha256(
        request.method.encode() + b" " + request.url.path.encode() + b"\n" + body
    ).hexdigest()
    kept = store(request).idempotency.get(key)
    if kept is not None:
        if kept.fingerprint != fingerprint:
            raise TwinError(409, CONFLICT,
                            "Idempotency-Key was already used for a different request")
        return JSONResponse(kept.body, status_code=kept.status, headers=kept.headers)
    response = await answer()
    if response.status_code < 300:
        store(request).idempotency[key] = Replay(
            fingerprint, response.status_code, json.loads(bytes(response.body)),
            {k: v for k, v in response.headers.items()
             if k.lower() not in ("content-length", "content-type")},
        )
    return response
