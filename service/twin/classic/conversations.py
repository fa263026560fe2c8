"""Conversations (classic) on the twin, part two: conversations and participants, with the
post-events their changes fire (:mod:`service.twin.classic` says what the twin plays)."""
from __future__ import annotations

import copy

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.twin.classic.events import conversation_params, fire, participant_params
from service.twin.classic.services import (
    BASE,
    STATES,
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
from service.twin.errors import TwinError, invalid, not_found
from service.twin.store import now_iso

# --- conversations -----------------------------------------------------------------------------

async def create_conversation(request: Request) -> JSONResponse:
    service = _service(request)
    pairs = await _form(request)
    state = _one(pairs, "State") or "active"
    if state not in STATES:
        raise invalid("Invalid parameter State: expected active, inactive or closed")
    sid, now = _sid("CH"), now_iso()
    url = f"{BASE}/{service['sid']}/Conversations/{sid}"
    conv = {"sid": sid, "account_sid": service["account_sid"], "chat_service_sid": service["sid"],
            "messaging_service_sid": None, "friendly_name": _one(pairs, "FriendlyName"),
            "unique_name": _one(pairs, "UniqueName"), "attributes": _one(pairs, "Attributes") or "{}",
            "date_created": now, "date_updated": now, "state": state, "timers": {},
            "url": url, "bindings": None,
            "links": {"participants": f"{url}/Participants", "messages": f"{url}/Messages"}}
    _classic(request)["conversations"][sid] = conv
    fire(request, service, "onConversationAdded", conversation_params(conv),
         enabled=_webhook_enabled(request))
    return JSONResponse(copy.deepcopy(conv), status_code=201)


async def list_conversations(request: Request) -> JSONResponse:
    service = _service(request)
    convs = [c for c in _classic(request)["conversations"].values()
             if c["chat_service_sid"] == service["sid"]]
    return JSONResponse({"conversations": copy.deepcopy(convs),
                         "meta": _meta("conversations", len(convs))})


async def fetch_conversation(request: Request) -> JSONResponse:
    request.path_params["ConversationSid"] = request.path_params["Sid"]
    return JSONResponse(copy.deepcopy(_conversation(request)))


async def update_conversation(request: Request) -> JSONResponse:
    request.path_params["ConversationSid"] = request.path_params["Sid"]
    conv, service = _conversation(request), _service(request)
    pairs = await _form(request)
    state = _one(pairs, "State")
    if state is not None and state not in STATES:
        raise invalid("Invalid parameter State: expected active, inactive or closed")
    if conv["state"] == "closed" and state not in (None, "closed"):
        raise _closed(conv)
    for name, key in (("FriendlyName", "friendly_name"), ("UniqueName", "unique_name"),
                      ("Attributes", "attributes")):
        value = _one(pairs, name)
        if value is not None:
            conv[key] = value
    before, now = conv["state"], now_iso()
    conv["date_updated"] = now
    if state:
        conv["state"] = state
    enabled = _webhook_enabled(request)
    fire(request, service, "onConversationUpdated", conversation_params(conv), enabled=enabled)
    if state and state != before:
        fire(request, service, "onConversationStateUpdated", {
            "ConversationSid": conv["sid"], "StateFrom": before, "StateTo": state,
            "StateUpdated": now, "Reason": "API", "Source": "API"}, enabled=enabled)
    return JSONResponse(copy.deepcopy(conv))


async def delete_conversation(request: Request) -> Response:
    request.path_params["ConversationSid"] = request.path_params["Sid"]
    conv, service = _conversation(request), _service(request)
    classic = _classic(request)
    del classic["conversations"][conv["sid"]]
    for kind in ("participants", "messages"):
        for sid in [s for s, r in classic[kind].items() if r["conversation_sid"] == conv["sid"]]:
            del classic[kind][sid]
    fire(request, service, "onConversationRemoved",
         {**conversation_params(conv), "DateRemoved": now_iso()}, enabled=_webhook_enabled(request))
    return Response(status_code=204)


# --- participants ------------------------------------------------------------------------------

async def create_participant(request: Request) -> JSONResponse:
    conv, service = _conversation(request), _service(request)
    pairs = await _form(request)
    identity = _one(pairs, "Identity")
    if not identity:
        raise TwinError(400, 50313, "Identity is required for a chat participant")
    classic = _classic(request)
    if any(p["conversation_sid"] == conv["sid"] and p["identity"] == identity
           for p in classic["participants"].values()):
        raise TwinError(409, 50433, "Participant already exists")
    sid, now = _sid("MB"), now_iso()
    part = {"sid": sid, "account_sid": conv["account_sid"], "chat_service_sid": service["sid"],
            "conversation_sid": conv["sid"], "identity": identity,
            "attributes": _one(pairs, "Attributes") or "{}", "messaging_binding": None,
            "role_sid": None, "date_created": now, "date_updated": now,
            "url": f"{conv['url']}/Participants/{sid}", "last_read_message_index": None,
            "last_read_timestamp": None}
    classic["participants"][sid] = part
    fire(request, service, "onParticipantAdded", participant_params(part),
         enabled=_webhook_enabled(request))
    return JSONResponse(copy.deepcopy(part), status_code=201)


async def list_participants(request: Request) -> JSONResponse:
    conv = _conversation(request)
    parts = [p for p in _classic(request)["participants"].values() if p["conversation_sid"] == conv["sid"]]
    return JSONResponse({"participants": copy.deepcopy(parts), "meta": _meta("participants", len(parts))})


async def delete_participant(request: Request) -> Response:
    conv, service = _conversation(request), _service(request)
    part = _classic(request)["participants"].get(request.path_params["Sid"])
    if part is None or part["conversation_sid"] != conv["sid"]:
        raise not_found(f"Participant {request.path_params['Sid']}")
    del _classic(request)["participants"][part["sid"]]
    fire(request, service, "onParticipantRemoved",
         {**participant_params(part), "DateRemoved": now_iso()}, enabled=_webhook_enabled(request))
    return Response(status_code=204)

