"""Conversations v2 control plane: configurations and the operations that write them.

Every write (POST, PUT, PATCH, DELETE) answers 202 with ``statusUrl`` and
``related.configurationId``; the change happens when the operation completes, after the
twin's operation delay (``--operation-delay``, or ``POST /_twin/operation-delay``). Until then
a new configuration is not found (404) and an update is not visible, as with Twilio, so clients
must poll ``GET /v2/ControlPlane/Operations/{id}``.

An operation FAILS (status FAILED, RFC 9457 ``error``) when a PUT or PATCH changes
``conversationGroupingType`` (immutable once conversations exist under it) or when the
configuration was deleted before the operation ran. ``Idempotency-Key`` is honoured on all
four writes (see service/twin/http.py).
"""
from __future__ import annotations

import copy
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.twin import ids
from service.twin.errors import invalid, not_found
from service.twin.http import accepted, idempotent, read_json, store
from service.twin.schemas import ConfigurationCreate, ConfigurationPatch, ConfigurationUpdate, dump, parse
from service.twin.store import Json, Store, now_iso, page

_STORE_ID = re.compile(r"^mem_(store|service)_[0-7][0-9a-z]{25}$")


def _visible(st: Store, config_id: str) -> Json:
    config = st.configurations.get(config_id)
    if config is None:
        raise not_found(f"Configuration {config_id}")
    return config


def _gone(config_id: str) -> Json:
    return {"type": "https://www.twilio.com/docs/errors/20404", "title": "Not Found",
            "status": 404, "detail": f"Configuration {config_id} no longer exists"}


def _immutable(config_id: str) -> Json:
    return {"type": "https://www.twilio.com/docs/errors/20001", "title": "Bad Request",
            "status": 400,
            "detail": f"conversationGroupingType of {config_id} cannot be changed"}


async def create_configuration(request: Request) -> JSONResponse:
    st = store(request)

    async def answer() -> JSONResponse:
        fields = dump(parse(ConfigurationCreate, await read_json(request)))
        config_id = ids.new_id("conv_configuration_")

        def apply() -> Json | None:
            now = now_iso()
            st.configurations[config_id] = {"id": config_id, **fields, "createdAt": now,
                                            "updatedAt": now, "version": 1}
            return None

        return accepted(st.start_operation({"configurationId": config_id}, apply), st)

    return await idempotent(request, answer)


async def list_configurations(request: Request) -> JSONResponse:
    st = store(request)
    store_id = request.query_params.get("memoryStoreId")
    if store_id is not None and not _STORE_ID.match(store_id):
        raise invalid("memoryStoreId: must match ^mem_(store|service)_[0-7][0-9a-z]{25}$")
    items = [c for c in st.configurations.values()
             if store_id is None or c.get("memoryStoreId") == store_id]
    return JSONResponse(page("configurations", items, request.query_params))


async def fetch_configuration(request: Request) -> JSONResponse:
    return JSONResponse(copy.deepcopy(_visible(store(request), request.path_params["id"])))


def _write(st: Store, config_id: str, change: Json, replace: bool) -> JSONResponse:
    """Start an operation that replaces (PUT) or merges (PATCH) ``change`` into the config."""
    _visible(st, config_id)

    def apply() -> Json | None:
        config = st.configurations.get(config_id)
        if config is None:
            return _gone(config_id)
        grouping = change.get("conversationGroupingType")
        if grouping is not None and grouping != config["conversationGroupingType"]:
            return _immutable(config_id)
        if replace:
            kept: dict[str, Any] = {k: config[k] for k in ("id", "createdAt", "displayName") if k in config}
            config.clear()
            config.update(kept)
        for key, value in change.items():
            if key == "channelSettings" and not replace:
                merged = {**config.get("channelSettings", {}), **value}
                config[key] = {k: v for k, v in merged.items() if v is not None}
            else:
                config[key] = value
        config["updatedAt"] = now_iso()
        config["version"] = config.get("version", 0) + 1
        return None

    return accepted(st.start_operation({"configurationId": config_id}, apply), st)


async def update_configuration(request: Request) -> JSONResponse:
    st = store(request)

    async def answer() -> JSONResponse:
        config_id = request.path_params["id"]
        _visible(st, config_id)
        fields = dump(parse(ConfigurationUpdate, await read_json(request)))
        return _write(st, config_id, fields, replace=True)

    return await idempotent(request, answer)


async def patch_configuration(request: Request) -> JSONResponse:
    st = store(request)

    async def answer() -> JSONResponse:
        config_id = request.path_params["id"]
        _visible(st, config_id)
        raw = await read_json(request)
        body = parse(ConfigurationPatch, raw)
        fields = dump(body)
        if body.channelSettings is not None:
            # A channel mapped to null is removed: keep those nulls for the merge.
            fields["channelSettings"] = {
                k: (None if v is None else v.model_dump(by_alias=True, exclude_none=True))
                for k, v in body.channelSettings.items()}
        return _write(st, config_id, fields, replace=False)

    return await idempotent(request, answer)


async def delete_configuration(request: Request) -> JSONResponse:
    st = store(request)

    async def answer() -> JSONResponse:
        config_id = request.path_params["id"]
        _visible(st, config_id)

        def apply() -> Json | None:
            if st.configurations.pop(config_id, None) is None:
                return _gone(config_id)
            return None

        return accepted(st.start_operation({"configurationId": config_id}, apply), st)

    return await idempotent(request, answer)


async def fetch_operation(request: Request) -> JSONResponse:
    st = store(request)
    op = st.operations.get(request.path_params["id"])
    if op is None:
        raise not_found(f"Operation {request.path_params['id']}")
    return JSONResponse(copy.deepcopy(op))
