"""Conversations (classic) on the twin, part three: messages (REST) and a chat user's message
through the SDK (``POST /_twin/simulate/classic/message``, webhooks always fire); see
:mod:`service.twin.classic`.
"""
from __future__ import annotations

import copy

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.twin.classic.events import fire, message_params
from service.twin.classic.services import (
    _classic,
    _closed,
    _conversation,
    _form,
    _meta,
    _one,
    _service,
    _sid,
    _webhook_enabled,
)
from service.twin.errors import invalid, not_found
from service.twin.store import Json, now_iso


def add_message(request: Request, conv: Json, service: Json, author: str, body: str,
                attributes: str = "{}", *, source: str, enabled: bool) -> Json:
    """A new message in ``conv`` (the REST API's or a simulated SDK user's) and its webhook."""
    if conv["state"] == "closed":
        raise _closed(conv)
    classic = _classic(request)
    index = sum(1 for m in classic["messages"].values() if m["conversation_sid"] == conv["sid"])
    participant = next((p["sid"] for p in classic["participants"].values()
                        if p["conversation_sid"] == conv["sid"] and p["identity"] == author), None)
    sid, now = _sid("IM"), now_iso()
    msg = {"sid": sid, "account_sid": conv["account_sid"], "chat_service_sid": service["sid"],
           "conversation_sid": conv["sid"], "body": body, "media": None, "author": author,
           "participant_sid": participant, "attributes": attributes, "date_created": now,
           "date_updated": now, "index": index, "delivery": None, "content_sid": None,
           "url": f"{conv['url']}/Messages/{sid}",
           "links": {"delivery_receipts": f"{conv['url']}/Messages/{sid}/Receipts"}}
    classic["messages"][sid] = msg
    fire(request, service, "onMessageAdded", message_params(msg, source), enabled=enabled)
    return msg


async def create_message(request: Request) -> JSONResponse:
    conv, service = _conversation(request), _service(request)
    pairs = await _form(request)
    msg = add_message(request, conv, service, _one(pairs, "Author") or "system",
                      _one(pairs, "Body") or "", _one(pairs, "Attributes") or "{}",
                      source="API", enabled=_webhook_enabled(request))
    return JSONResponse(copy.deepcopy(msg), status_code=201)


def _message(request: Request) -> tuple[Json, Json, Json]:
    conv, service = _conversation(request), _service(request)
    msg = _classic(request)["messages"].get(request.path_params["Sid"])
    if msg is None or msg["conversation_sid"] != conv["sid"]:
        raise not_found(f"Message {request.path_params['Sid']}")
    return conv, service, msg


async def list_messages(request: Request) -> JSONResponse:
    conv = _conversation(request)
    msgs = [m for m in _classic(request)["messages"].values() if m["conversation_sid"] == conv["sid"]]
    return JSONResponse({"messages": copy.deepcopy(msgs), "meta": _meta("messages", len(msgs))})


async def fetch_message(request: Request) -> JSONResponse:
    return JSONResponse(copy.deepcopy(_message(request)[2]))


async def update_message(request: Request) -> JSONResponse:
    conv, service, msg = _message(request)
    pairs = await _form(request)
    for name, key in (("Body", "body"), ("Author", "author"), ("Attributes", "attributes")):
        value = _one(pairs, name)
        if value is not None:
            msg[key] = value
    msg["date_updated"] = now_iso()
    fire(request, service, "onMessageUpdated",
         {**message_params(msg, "API"), "DateUpdated": msg["date_updated"]},
         enabled=_webhook_enabled(request))
    return JSONResponse(copy.deepcopy(msg))


async def delete_message(request: Request) -> Response:
    conv, service, msg = _message(request)
    del _classic(request)["messages"][msg["sid"]]
    fire(request, service, "onMessageRemoved",
         {**message_params(msg, "API"), "DateRemoved": now_iso()}, enabled=_webhook_enabled(request))
    return Response(status_code=204)


# --- traffic: a chat user writes through the SDK (webhooks always fire) ------------------------

async def simulate_message(request: Request) -> JSONResponse:
    try:
        data = await request.json()
    except ValueError:
        raise invalid("The request body is not JSON") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) and data.get(k)
                                             for k in ("service", "conversation", "author")):
        raise invalid("service, conversation and author are required strings")
    request.path_params["ChatServiceSid"] = data["service"]
    request.path_params["ConversationSid"] = data["conversation"]
    conv, service = _conversation(request), _service(request)
    msg = add_message(request, conv, service, data["author"], str(data.get("body") or ""),
                      source="SDK", enabled=True)
    return JSONResponse(copy.deepcopy(msg), status_code=201)


_CV = "/v1/Services/{ChatServiceSid}/Conversations/{ConversationSid}"
ROUTES = [
    Route(_CV + "/Messages", create_message, methods=["POST"]),
    Route(_CV + "/Messages", list_messages, methods=["GET"]),
    Route(_CV + "/Messages/{Sid}", fetch_message, methods=["GET"]),
    Route(_CV + "/Messages/{Sid}", update_message, methods=["POST"]),
    Route(_CV + "/Messages/{Sid}", delete_message, methods=["DELETE"]),
]
