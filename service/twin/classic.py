"""Conversations (classic) on the twin: services, their webhook configuration, conversations,
participants and messages (``/v1/Services/{ChatServiceSid}/…``, form-encoded, as the
``twilio_conversations_v1.json`` spec has them), and the post-event webhooks a service sends.

What Twilio does and the twin plays (issue 17):

- A service's post-event webhook (``PostWebhookUrl``, ``Method``, ``Filters``) gets the
  post-events its ``Filters`` name, and every change goes to the Event Streams sinks subscribed
  to it (:mod:`service.twin.classic_events`, in order, through the twin's one signed sender).
- A change made through the REST API fires its webhooks **only when the request carries
  ``X-Twilio-Webhook-Enabled: true``**; without it the change happens silently (Event Streams
  still carries it). A change made by a chat user through the Conversations SDK always fires
  them: the twin plays that with ``POST /_twin/simulate/classic/message {"service",
  "conversation", "author", "body"}`` (``Source=SDK``); ``POST /_twin/classic/drained`` answers
  once every queued webhook and event was sent.
- Dates are ISO 8601 UTC to the millisecond (Twilio's are to the second).
- ``State=closed`` fires ``onConversationUpdated`` and ``onConversationStateUpdated``
  (``Reason=API``); a closed conversation takes no new messages (Twilio's 50353-style 400).

Not modelled: pre-event webhooks, per-conversation webhooks, the account-level (global)
webhook, users, roles, bindings, media, delivery receipts.
"""
from __future__ import annotations

import copy
import secrets
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.twin import classic_events
from service.twin.classic_events import conversation_params, fire, message_params, participant_params
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


# --- services and their webhook configuration -------------------------------------------------

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


# --- messages ----------------------------------------------------------------------------------

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


def _meta(key: str, n: int) -> dict[str, Any]:
    return {"page": 0, "page_size": max(n, 50), "first_page_url": None, "previous_page_url": None,
            "url": None, "next_page_url": None, "key": key}


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


_S = "/v1/Services/{ChatServiceSid}"
_CV = _S + "/Conversations/{ConversationSid}"
ROUTES = [
    Route("/v1/Services", create_service, methods=["POST"]),
    Route("/v1/Services", list_services, methods=["GET"]),
    Route(_S, fetch_service, methods=["GET"]),
    Route(_S + "/Configuration/Webhooks", fetch_webhooks, methods=["GET"]),
    Route(_S + "/Configuration/Webhooks", update_webhooks, methods=["POST"]),
    Route(_S + "/Conversations", create_conversation, methods=["POST"]),
    Route(_S + "/Conversations", list_conversations, methods=["GET"]),
    Route(_S + "/Conversations/{Sid}", fetch_conversation, methods=["GET"]),
    Route(_S + "/Conversations/{Sid}", update_conversation, methods=["POST"]),
    Route(_S + "/Conversations/{Sid}", delete_conversation, methods=["DELETE"]),
    Route(_CV + "/Participants", create_participant, methods=["POST"]),
    Route(_CV + "/Participants", list_participants, methods=["GET"]),
    Route(_CV + "/Participants/{Sid}", delete_participant, methods=["DELETE"]),
    Route(_CV + "/Messages", create_message, methods=["POST"]),
    Route(_CV + "/Messages", list_messages, methods=["GET"]),
    Route(_CV + "/Messages/{Sid}", fetch_message, methods=["GET"]),
    Route(_CV + "/Messages/{Sid}", update_message, methods=["POST"]),
    Route(_CV + "/Messages/{Sid}", delete_message, methods=["DELETE"]),
]
CONTROL_ROUTES = [
    Route("/_twin/simulate/classic/message", simulate_message, methods=["POST"]),
    Route("/_twin/classic/drained", classic_events.drained, methods=["POST"]),
]
