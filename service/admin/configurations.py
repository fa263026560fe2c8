"""``/api/v1/configurations``: the admin API over the versioned configuration store.

- ``GET /api/v1/configurations`` → ``{"configurations": [...]}`` (current versions, by id);
- ``POST /api/v1/configurations`` → 201 (409 when the id exists: PUT replaces);
- ``GET /api/v1/configurations/{id}[?version=N]`` → 200 (an old version too: conversations stay
  pinned to theirs), 404;
- ``PUT /api/v1/configurations/{id}`` → 200, a full replacement as in v2 (omitted fields take
  their defaults; ``id`` in the body may be left out); 404 when absent; 409 when
  ``conversationGroupingType`` would change (it is immutable, the answer says so);
- ``DELETE /api/v1/configurations/{id}`` → 204 (old versions stay readable), 404.

Every answer body of a configuration is its JSON plus read-only ``version`` and ``source``
(``api`` or ``file``); a POST/PUT answer adds ``warnings``: the ``rules check`` warnings that
concern this configuration among the current ones (an overlap with another configuration is
seen when it is made). Read-only fields are ignored on input, so GET → edit → PUT works as
with v2.

Errors: a body that is not JSON → 400; a configuration that does not validate → **422**
``{"error": "invalid configuration", "problems": ["channelSettings.SMS.captureRules[0].from: …"]}``
(every problem, each naming its field); a missing or wrong admin token → 401, no token
configured → 503 (``service.auth.admin_refusal``).
"""
from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.admin.answers import error as _err
from service.admin.answers import redis_guard
from workers import stats
from workers.capture.configuration import ConfigurationError, bridge_conflicts, parse_configuration
from workers.capture.lint import warnings_for
from workers.capture.store import (
    SOURCE_API,
    AlreadyExists,
    AsyncConfigStore,
    GroupingTypeChanged,
    NotFound,
    VersionedConfig,
)
from workers.foundations.log import get_logger

log = get_logger(__name__)
READ_ONLY = ("version", "source", "warnings", "current")


def store(request: Request) -> AsyncConfigStore:
    """The process's store over the app's async Redis client (created on first use)."""
    st = getattr(request.app.state, "config_store", None)
    if st is None:
        st = request.app.state.config_store = AsyncConfigStore(request.app.state.redis)
    return st


def view(vc: VersionedConfig) -> dict[str, Any]:
    return {**vc.config.to_json(), "version": vc.version, "source": vc.source}




async def _count(request: Request, outcome: str) -> None:
    pipe = request.app.state.redis.pipeline(transaction=False)
    stats.add(pipe, {stats.field("config_changes", SOURCE_API, outcome): 1},
              retention_minutes=request.app.state.settings.stats_retention_minutes)
    await pipe.execute()


async def _body(request: Request, path_id: str | None) -> Any:
    """The validated configuration of a POST/PUT body, or the error response to send."""
    try:
        data = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return _err(400, "the body is not JSON")
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in READ_ONLY}
        if path_id is not None:
            if data.get("id", path_id) != path_id:
                await _count(request, "invalid")
                return _err(422, "invalid configuration",
                            problems=[f"id: {data.get('id')!r} does not match the URL's {path_id!r}"])
            data["id"] = path_id
    try:
        return parse_configuration(data)
    except ConfigurationError as exc:
        await _count(request, "invalid")
        return _err(422, "invalid configuration", problems=exc.problems)


async def _write(request: Request, config: Any, mode: str, created_status: int) -> Response:
    if config.conversationsV1Bridge is not None:
        others = [vc.config for vc in await store(request).current() if vc.id != config.id]
        clash = bridge_conflicts([*others, config])
        if clash:
            await _count(request, "invalid")
            return _err(422, "invalid configuration", problems=clash)
    try:
        before = await store(request).get(config.id)
        version = await store(request).put(config, mode=mode, source=SOURCE_API)
    except AlreadyExists as exc:
        return _err(409, str(exc))
    except NotFound as exc:
        return _err(404, str(exc))
    except ConfigurationError as exc:  # BridgeTaken: a concurrent write bridged the service first
        await _count(request, "invalid")
        return _err(422, "invalid configuration", problems=exc.problems)
    except GroupingTypeChanged as exc:
        await _count(request, "refused")
        return _err(409, str(exc), field="conversationGroupingType",
                    current=exc.current, requested=exc.requested)
    changed = before is None or before.version != version
    await _count(request, "applied" if changed else "unchanged")
    log.info("configuration written", extra={"configuration": config.id, "version": version,
                                             "changed": changed})
    body = view(VersionedConfig(config, version, SOURCE_API))
    others = [vc.config for vc in await store(request).current() if vc.id != config.id]
    body["warnings"] = warnings_for(config.id, [*others, config])
    headers = {"Location": f"/api/v1/configurations/{config.id}"}
    return JSONResponse(body, created_status, headers=headers)


@redis_guard("configurations")
async def list_configs(request: Request) -> Response:
    return JSONResponse({"configurations": [view(vc) for vc in await store(request).current()]})


async def create_config(request: Request) -> Response:
    config = await _body(request, None)
    if isinstance(config, Response):
        return config
    return await _write(request, config, "create", 201)


@redis_guard("configurations")
async def get_config(request: Request) -> Response:
    config_id = request.path_params["config_id"]
    raw_version = request.query_params.get("version")
    version = None
    if raw_version is not None:
        if not raw_version.isdigit():
            return _err(400, "version: must be a positive integer")
        version = int(raw_version)
    vc = await store(request).get(config_id, version)
    if vc is None:
        what = f"configuration {config_id!r}" + (f" version {version}" if version else "")
        return _err(404, f"no {what}")
    current = await store(request).current()
    live = next((c for c in current if c.id == config_id), None)
    source = live.source if live is not None and live.version == vc.version else vc.source
    out = {**view(VersionedConfig(vc.config, vc.version, source))}
    if live is None or live.version != vc.version:
        out["current"] = False
    return JSONResponse(out)


async def put_config(request: Request) -> Response:
    config = await _body(request, request.path_params["config_id"])
    if isinstance(config, Response):
        return config
    return await _write(request, config, "replace", 200)


async def delete_config(request: Request) -> Response:
    config_id = request.path_params["config_id"]
    if not await store(request).delete(config_id):
        return _err(404, f"no configuration {config_id!r}")
    await _count(request, "deleted")
    log.info("configuration deleted", extra={"configuration": config_id})
    return Response(status_code=204)


routes = [
    Route("/configurations", list_configs, methods=["GET"]),
    Route("/configurations", create_config, methods=["POST"]),
    Route("/configurations/{config_id}", get_config, methods=["GET"]),
    Route("/configurations/{config_id}", put_config, methods=["PUT"]),
    Route("/configurations/{config_id}", delete_config, methods=["DELETE"]),
]
