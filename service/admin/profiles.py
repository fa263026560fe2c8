"""``/api/v1/profiles``: the local profile directory (GROUP_BY_PROFILE without a Memory store).

An operator links a customer's second address to the profile of the first, so both group into
one conversation (the seeds' "SMS from Kiran's other phone"):

- ``GET /api/v1/profiles?limit=&offset=`` newest first, with ``total``; ``?address=+1415…`` →
  the one profile holding that address (404 if none).
- ``POST /api/v1/profiles`` ``{"addresses": ["+1415…", "whatsapp:+1415…"]}`` → 201 a new profile;
  409 (naming them) when an address already belongs to another profile.
- ``GET|DELETE /api/v1/profiles/{id}``.
- ``POST /api/v1/profiles/{id}/addresses`` ``{"address": "+1555…"}`` → link (moving the address
  from the profile it had; the answer names it as ``previousProfile``).
- ``DELETE /api/v1/profiles/{id}/addresses/{address}`` → unlink (its next event gets a profile
  of its own).

Addresses are normalized as capture normalizes them (``whatsapp:`` / ``rcs:`` prefixes stripped,
phone numbers E.164), so a link holds across SMS, voice and WhatsApp. Conversations already open
keep their grouping; the link applies to traffic from now on. Memory-backed configurations link
identifiers in Memory itself, not here.
"""
from __future__ import annotations

from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.admin.answers import error as _err
from service.admin.answers import json_object
from workers.delivery.directory import AddressTaken, LocalDirectory
from workers.foundations.addresses import normalize

MAX_LIMIT = 500




def _dir(request: Request) -> LocalDirectory:
    d = getattr(request.app.state, "profile_directory", None)
    if d is None:
        d = request.app.state.profile_directory = LocalDirectory(request.app.state.redis)
    return d


def _bare(raw: object, field: str) -> str | JSONResponse:
    bare = normalize(raw) if isinstance(raw, str) else None
    if not bare:
        return _err(400, f"{field}: not an address (E.164 number, whatsapp:/rcs: number, "
                         "client: identity or sip: URI)")
    return bare




def _int(value: str | None, default: int, field: str, *, low: int, high: int) -> int | JSONResponse:
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except ValueError:
        return _err(400, f"{field}: not an integer")
    if not low <= n <= high:
        return _err(400, f"{field}: must be between {low} and {high}")
    return n


async def profiles(request: Request) -> Response:
    directory = _dir(request)
    if request.method == "POST":
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        raw = body.get("addresses")
        if not isinstance(raw, list) or not raw:
            return _err(400, "addresses: a non-empty list of addresses is required")
        bares: list[str] = []
        for i, a in enumerate(raw):
            bare = _bare(a, f"addresses[{i}]")
            if isinstance(bare, JSONResponse):
                return bare
            if bare not in bares:
                bares.append(bare)
        try:
            pid = await directory.create(bares)
        except AddressTaken as exc:
            owners = {a: await directory.profile_of(a) for a in exc.addresses}
            return _err(409, "addresses already linked to another profile", addresses=owners)
        return JSONResponse(await directory.get(pid), 201)
    address = request.query_params.get("address")
    if address is not None:
        bare = _bare(address, "address")
        if isinstance(bare, JSONResponse):
            return bare
        owner = await directory.profile_of(bare)
        view = await directory.get(owner) if owner else None
        return JSONResponse(view) if view else _err(404, "no profile holds that address")
    limit = _int(request.query_params.get("limit"), 100, "limit", low=1, high=MAX_LIMIT)
    offset = _int(request.query_params.get("offset"), 0, "offset", low=0, high=10**9)
    if isinstance(limit, JSONResponse):
        return limit
    if isinstance(offset, JSONResponse):
        return offset
    page, total = await directory.list(offset=offset, limit=limit)
    out: dict = {"profiles": page, "total": total}
    if offset + len(page) < total:
        out["next"] = offset + len(page)
    return JSONResponse(out)


async def profile(request: Request) -> Response:
    pid = request.path_params["profile_id"]
    directory = _dir(request)
    if request.method == "DELETE":
        return Response(status_code=204) if await directory.delete(pid) else _err(404, "no such profile")
    view = await directory.get(pid)
    return JSONResponse(view) if view else _err(404, "no such profile")


async def link(request: Request) -> Response:
    pid = request.path_params["profile_id"]
    body = await json_object(request)
    if isinstance(body, JSONResponse):
        return body
    bare = _bare(body.get("address"), "address")
    if isinstance(bare, JSONResponse):
        return bare
    directory = _dir(request)
    try:
        previous = await directory.link(pid, bare)
    except KeyError:
        return _err(404, "no such profile")
    out = await directory.get(pid) or {}
    if previous and previous != pid:
        out["previousProfile"] = previous
    return JSONResponse(out)


async def unlink(request: Request) -> Response:
    pid = request.path_params["profile_id"]
    bare = _bare(unquote(request.path_params["address"]), "address")
    if isinstance(bare, JSONResponse):
        return bare
    if await _dir(request).unlink(pid, bare):
        return Response(status_code=204)
    return _err(404, "that address is not linked to that profile")


routes = [
    Route("/profiles", profiles, methods=["GET", "POST"]),
    Route("/profiles/{profile_id}", profile, methods=["GET", "DELETE"]),
    Route("/profiles/{profile_id}/addresses", link, methods=["POST"]),
    Route("/profiles/{profile_id}/addresses/{address:path}", unlink, methods=["DELETE"]),
]
