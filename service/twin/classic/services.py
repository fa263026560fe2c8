"""Conversations (classic) on the twin, part one: services, their webhook configuration, and the
lookups every classic resource shares (:mod:`service.twin.classic` says what the twin plays).
"""
from __future__ import annotations

import copy
import secrets
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.twin.errors import TwinError, invalid, not_found
from service.twin.http import store
from service.twin.store import Json, now_iso

BASE = "https://conversations.twilio.com/v1/Services"
# The Filters values twilio_conversations_v1.json lists (pre-events are accepted, never sent).
FILTERS = ("onParticipantAdd", "onParticipantAdded", "onDeliveryUpdated", "onConversationUpdated",
           "onConversationRemove", "onParticipantRemove", "onConversationUpdate", "onMessageAdd",
           "onMessageRemoved", "onParticipantUpdated", "onConversationAdded", "onMessageAdded",
           "onConversationAdd", "onConversationRemoved", "onParticipantUpdate", "onMessageRemove",
           "onMessageUpdated", "onParticipantRemoved", "onMessageUpdate", "onConversationStateUpdated")
STATES = ("active", "inactive", "closed")
CLOSED_CODE = 50353  # refusing a change to a closed conversation


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


async def _form(request: Request) -> list[tuple[str, str]]:
    raw = await request.body()
    try:
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise invalid("The request body is not UTF-8 form data") from None


def _one(pairs: list[tuple[str, str]], name: str) -> str | None:
    return next((v for n, v in pairs if n == name), None)


def _webhook_enabled(request: Request) -> bool:
    return request.headers.get("x-twilio-webhook-enabled", "").lower() == "true"


def _classic(request: Request) -> dict[str, dict[str, Json]]:
    return store(request).classic


def _service(request: Request) -> Json:
    sid = request.path_params["ChatServiceSid"]
    service = _classic(request)["services"].get(sid)
    if service is None:
        raise not_found(f"Service {sid}")
    return service


def _conversation(request: Request) -> Json:
    service = _service(request)
    sid = request.path_params["ConversationSid"]
    conv = _classic(request)["conversations"].get(sid)
    if conv is None or conv["chat_service_sid"] != service["sid"]:
        raise not_found(f"Conversation {sid}")
    return conv


def _closed(conv: Json) -> TwinError:
    return TwinError(400, CLOSED_CODE, f"Conversation {conv['sid']} is closed")


async def create_service(request: Request) -> JSONResponse:
    pairs = await _form(request)
    name = _one(pairs, "FriendlyName")
    if not name:
        raise TwinError(400, 20001, "Missing required parameter FriendlyName in the post body")
    st = store(request)
    sid, now = _sid("IS"), now_iso()
    service = {"sid": sid, "account_sid": st.account_sid, "friendly_name": name,
               "date_created": now, "date_updated": now, "url": f"{BASE}/{sid}",
               "links": {"conversations": f"{BASE}/{sid}/Conversations",
                         "configuration": f"{BASE}/{sid}/Configuration"}}
    st.classic["services"][sid] = service
    st.classic["webhooks"][sid] = {"account_sid": st.account_sid, "chat_service_sid": sid,
                                   "pre_webhook_url": None, "post_webhook_url": None,
                                   "filters": [], "method": "POST",
                                   "url": f"{BASE}/{sid}/Configuration/Webhooks"}
    return JSONResponse(copy.deepcopy(service), status_code=201)


async def list_services(request: Request) -> JSONResponse:
    services = list(_classic(request)["services"].values())
    return JSONResponse({"services": copy.deepcopy(services), "meta": _meta("services", len(services))})


async def fetch_service(request: Request) -> JSONResponse:
    return JSONResponse(copy.deepcopy(_service(request)))


async def fetch_webhooks(request: Request) -> JSONResponse:
    service = _service(request)
    return JSONResponse(copy.deepcopy(_classic(request)["webhooks"][service["sid"]]))


async def update_webhooks(request: Request) -> JSONResponse:
    service = _service(request)
    pairs = await _form(request)
    hooks = _classic(request)["webhooks"][service["sid"]]
    for name, key in (("PreWebhookUrl", "pre_webhook_url"), ("PostWebhookUrl", "post_webhook_url")):
        value = _one(pairs, name)
        if value is not None:
            if value and not value.startswith(("http://", "https://")):
                raise invalid(f"Invalid parameter {name}: expected an absolute URL")
            hooks[key] = value or None
    method = _one(pairs, "Method")
    if method is not None:
        if method.upper() not in ("GET", "POST"):
            raise invalid("Invalid parameter Method: expected GET or POST")
        hooks["method"] = method.upper()
    filters = [v for n, v in pairs if n == "Filters"]
    if filters:
        unknown = [f for f in filters if f not in FILTERS]
        if unknown:
            raise invalid(f"Invalid parameter Filters: {unknown[0]} is not a webhook event")
        hooks["filters"] = filters
    return JSONResponse(copy.deepcopy(hooks))


def _meta(key: str, n: int) -> dict[str, Any]:
    return {"page": 0, "page_size": max(n, 50), "first_page_url": None, "previous_page_url": None,
            "url": None, "next_page_url": None, "key": key}




_S = "/v1/Services/{ChatServiceSid}"
ROUTES = [
    Route("/v1/Services", create_service, methods=["POST"]),
    Route("/v1/Services", list_services, methods=["GET"]),
    Route(_S, fetch_service, methods=["GET"]),
    Route(_S + "/Configuration/Webhooks", fetch_webhooks, methods=["GET"]),
    Route(_S + "/Configuration/Webhooks", update_webhooks, methods=["POST"]),
]
