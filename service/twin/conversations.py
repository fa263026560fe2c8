"""Conversations v2: conversations, their participants and their communications.

Decisions where the spec is silent (threadline's code relies on them):

- A CLOSED conversation stays CLOSED. PUT/PATCH to ACTIVE or INACTIVE → **400** with code
  ``workers.v2errors.CONVERSATION_CLOSED_CODE`` (50437): the spec declares no 409 on these
  operations. PATCH/PUT to CLOSED again is a harmless 200; name and metadata stay editable.
- A communication posted to a CLOSED conversation → **400**, code 50437 (the same constant the
  delivery code recognizes, see workers/v2errors.py). Posting to an INACTIVE conversation is
  accepted and does not change its status: threadline's lifecycle owns status changes.
- ``resourceId`` upsert: a repeat within the same conversation updates that communication
  (author, content, recipients, channelId replaced; occurredAt replaced when given) and keeps
  its id and createdAt. The answer is **201** either way, because 201 is the only success the
  spec declares for this operation; tell a create from an update by the id.
- A participant whose (channel, address) already belongs to another participant of the same
  conversation → 409 with ``X-Conflicting-Resource-Id`` (the spec declares 409 on this create).
- ``participantId`` on an author or recipient must name a participant of the conversation
  (400 otherwise); when absent the twin fills it in from the matching address, as Twilio does.
- Lists are in creation order. ``GET /v2/Conversations?status=`` takes the parameter repeated
  (``status=ACTIVE&status=INACTIVE``) or comma-separated; ``channelId`` matches a conversation
  when any participant address or communication carries that channelId.
"""
from __future__ import annotations

import copy
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.twin import ids
from service.twin.errors import CONFLICT, TwinError, invalid, not_found
from service.twin.http import idempotent, read_json, store
from service.twin.schemas import (ConversationCreate, ConversationPatch, ConversationUpdate,
                                  CommunicationCreate, ParticipantCreate, ParticipantUpdate,
                                  dump, parse)
from service.twin.store import Json, Store, now_iso, page
from workers.v2errors import CONVERSATION_CLOSED_CODE, CONVERSATION_CLOSED_STATUS

STATUSES = ("ACTIVE", "INACTIVE", "CLOSED")
_CONFIG_FIELDS = ("displayName", "description", "conversationGroupingType", "memoryStoreId",
                  "channelSettings", "statusCallbacks", "intelligenceConfigurationIds",
                  "memoryExtractionEnabled", "conversationsV1Bridge")


def _conversation(st: Store, conversation_id: str) -> Json:
    conv = st.conversation(conversation_id)
    if conv is None:
        raise not_found(f"Conversation {conversation_id}")
    return conv


def _closed(conversation_id: str, what: str) -> TwinError:
    return TwinError(CONVERSATION_CLOSED_STATUS, CONVERSATION_CLOSED_CODE,
                     f"Conversation {conversation_id} is CLOSED: {what}")


# --- participants -----------------------------------------------------------------------------

def _owner_of(st: Store, conversation_id: str, channel: str, address: str) -> str | None:
    for participant in st.participants[conversation_id].values():
        for a in participant.get("addresses", []):
            if a["channel"] == channel and a["address"] == address:
                return participant["id"]
    return None


def _check_addresses(st: Store, conversation_id: str, addresses: list[Json],
                     participant_id: str | None = None) -> None:
    for a in addresses:
        owner = _owner_of(st, conversation_id, a["channel"], a["address"])
        if owner is not None and owner != participant_id:
            raise TwinError(409, CONFLICT,
                            f"A participant of this conversation already has the "
                            f"{a['channel']} address", {"X-Conflicting-Resource-Id": owner})


def _add_participant(st: Store, conversation_id: str, fields: Json) -> Json:
    now = now_iso()
    participant = {"id": ids.new_id("conv_participant_"), "conversationId": conversation_id,
                   "accountId": st.account_sid, **fields, "createdAt": now, "updatedAt": now}
    participant.setdefault("addresses", [])
    st.participants[conversation_id][participant["id"]] = participant
    return participant


async def create_participant(request: Request) -> JSONResponse:
    st = store(request)
    conv_id = request.path_params["ConversationId"]
    _conversation(st, conv_id)
    fields = dump(parse(ParticipantCreate, await read_json(request)))
    _check_addresses(st, conv_id, fields["addresses"])
    return JSONResponse(copy.deepcopy(_add_participant(st, conv_id, fields)), status_code=201)


async def list_participants(request: Request) -> JSONResponse:
    st = store(request)
    conv_id = request.path_params["ConversationId"]
    _conversation(st, conv_id)
    items = list(st.participants[conv_id].values())
    return JSONResponse(page("participants", items, request.query_params))


def _participant(st: Store, conv_id: str, participant_id: str) -> Json:
    _conversation(st, conv_id)
    participant = st.participants[conv_id].get(participant_id)
    if participant is None:
        raise not_found(f"Participant {participant_id}")
    return participant


async def fetch_participant(request: Request) -> JSONResponse:
    p = _participant(store(request), request.path_params["ConversationId"],
                     request.path_params["id"])
    return JSONResponse(copy.deepcopy(p))


async def update_participant(request: Request) -> JSONResponse:
    st = store(request)
    conv_id = request.path_params["ConversationId"]
    participant = _participant(st, conv_id, request.path_params["id"])
    fields = dump(parse(ParticipantUpdate, await read_json(request)))
    if "addresses" in fields:
        _check_addresses(st, conv_id, fields["addresses"], participant["id"])
    participant.update(fields)
    participant["updatedAt"] = now_iso()
    return JSONResponse(copy.deepcopy(participant))


# --- conversations ----------------------------------------------------------------------------

async def create_conversation(request: Request) -> JSONResponse:
    st = store(request)
    body = parse(ConversationCreate, await read_json(request))
    config = st.configurations.get(body.configurationId)
    if config is None:
        raise not_found(f"Configuration {body.configurationId}")
    fields = dump(body)
    inline = fields.pop("participants", [])
    seen: set[tuple[str, str]] = set()
    for i, p in enumerate(inline):
        for a in p.get("addresses", []):
            if (a["channel"], a["address"]) in seen:
                raise invalid(f"participants[{i}].addresses: the {a['channel']} address "
                              "is given to two participants")
            seen.add((a["channel"], a["address"]))
    now = now_iso()
    settings = {k: copy.deepcopy(config[k]) for k in _CONFIG_FIELDS if k in config}
    settings.update(fields.pop("configuration", {}))
    conv = {"id": ids.new_id("conv_conversation_"), "accountId": st.account_sid,
            "status": "ACTIVE", **fields, "configuration": settings,
            "createdAt": now, "updatedAt": now}
    conv.setdefault("metadata", {})
    st.conversations[conv["id"]] = conv
    st.participants[conv["id"]] = {}
    st.communications[conv["id"]] = {}
    for p in inline:
        _add_participant(st, conv["id"], p)
    return JSONResponse(st.conversation_view(conv["id"]), status_code=201)


def _matches(st: Store, conv: Json, statuses: set[str], channel_id: str | None) -> bool:
    if statuses and conv["status"] not in statuses:
        return False
    if channel_id is None:
        return True
    for p in st.participants[conv["id"]].values():
        if any(a.get("channelId") == channel_id for a in p.get("addresses", [])):
            return True
    return any(c.get("channelId") == channel_id for c in st.communications[conv["id"]].values())


async def list_conversations(request: Request) -> JSONResponse:
    st = store(request)
    statuses = {s for raw in request.query_params.getlist("status")
                for s in raw.split(",") if s}
    unknown = statuses - set(STATUSES)
    if unknown:
        raise invalid(f"status: {sorted(unknown)[0]!r} is not one of {', '.join(STATUSES)}")
    channel_id = request.query_params.get("channelId")
    items = [st.conversation_view(c["id"]) for c in st.conversations.values()
             if _matches(st, c, statuses, channel_id)]
    return JSONResponse(page("conversations", items, request.query_params))


async def fetch_conversation(request: Request) -> JSONResponse:
    st = store(request)
    conv = _conversation(st, request.path_params["id"])
    return JSONResponse(st.conversation_view(conv["id"]))


def _set_status(conv: Json, status: str | None) -> None:
    if status is None or status == conv["status"]:
        return
    if conv["status"] == "CLOSED":
        raise _closed(conv["id"], f"a closed conversation cannot become {status}")
    conv["status"] = status


async def update_conversation(request: Request) -> JSONResponse:
    """PUT: ``status`` required; name and metadata replaced when given."""
    st = store(request)
    conv = _conversation(st, request.path_params["id"])
    fields = dump(parse(ConversationUpdate, await read_json(request)))
    _set_status(conv, fields.pop("status"))
    conv.update(fields)
    conv["updatedAt"] = now_iso()
    return JSONResponse(st.conversation_view(conv["id"]))


async def patch_conversation(request: Request) -> JSONResponse:
    """PATCH: only given fields change; metadata is a merge patch (a null value removes a key)."""
    st = store(request)
    conv = _conversation(st, request.path_params["id"])
    raw = await read_json(request)
    body = parse(ConversationPatch, raw)
    if body.metadata is not None:
        merged = {**conv.get("metadata", {}), **body.metadata}
        merged = {k: v for k, v in merged.items() if v is not None}
        if len(merged) > 8:
            raise invalid("metadata: at most 8 entries after the merge")
    _set_status(conv, body.status)
    if body.name is not None:
        conv["name"] = body.name
    if body.metadata is not None:
        conv["metadata"] = merged
    if body.configuration is not None and body.configuration.statusCallbacks is not None:
        conv["configuration"]["statusCallbacks"] = dump(body.configuration)["statusCallbacks"]
    conv["updatedAt"] = now_iso()
    return JSONResponse(st.conversation_view(conv["id"]))


async def delete_conversation(request: Request) -> JSONResponse:
    """DELETE: 202 + an operation; the conversation and all it holds go when it completes."""
    st = store(request)
    conv_id = request.path_params["id"]

    async def answer() -> JSONResponse:
        _conversation(st, conv_id)

        def apply() -> Json | None:
            if conv_id not in st.conversations:
                return {"status": 404, "title": "Not Found",
                        "detail": f"Conversation {conv_id} no longer exists"}
            del st.conversations[conv_id]
            del st.participants[conv_id]
            del st.communications[conv_id]
            for key in [k for k in st.by_resource_id if k[0] == conv_id]:
                del st.by_resource_id[key]
            return None

        return accepted(st.start_operation({"conversationId": conv_id}, apply), st)

    return await idempotent(request, answer)


def accepted(op: Json, st: Store) -> JSONResponse:
    """The 202 answer to an asynchronous write: statusUrl, related, and the spec's headers."""
    headers = {"Operation-Id": op["operationId"], "Location": op["statusUrl"],
               "Retry-After": str(max(0, int(-(-st.operation_delay // 1))))}
    return JSONResponse({"statusUrl": op["statusUrl"], "related": op["related"]},
                        status_code=202, headers=headers)


# --- communications ---------------------------------------------------------------------------

def _resolve(st: Store, conv_id: str, who: Json, where: str) -> None:
    if "participantId" in who:
        if who["participantId"] not in st.participants[conv_id]:
            raise invalid(f"{where}.participantId: no participant {who['participantId']} "
                          "in this conversation")
        return
    owner = _owner_of(st, conv_id, who["channel"], who["address"])
    if owner is not None:
        who["participantId"] = owner


async def create_communication(request: Request) -> JSONResponse:
    st = store(request)
    conv_id = request.path_params["ConversationId"]
    conv = _conversation(st, conv_id)
    fields: dict[str, Any] = dump(parse(CommunicationCreate, await read_json(request)))
    if conv["status"] == "CLOSED":
        raise _closed(conv_id, "it takes no new communications")
    _resolve(st, conv_id, fields["author"], "author")
    for i, recipient in enumerate(fields["recipients"]):
        _resolve(st, conv_id, recipient, f"recipients[{i}]")
    now = now_iso()
    resource_id = fields.get("resourceId")
    existing_id = st.by_resource_id.get((conv_id, resource_id)) if resource_id else None
    if existing_id is not None:
        comm = st.communications[conv_id][existing_id]
        comm.pop("channelId", None)
        comm.update(fields)
        comm["updatedAt"] = now
    else:
        comm = {"id": ids.new_id("conv_communication_"), "conversationId": conv_id,
                "accountId": st.account_sid, "occurredAt": now, **fields,
                "createdAt": now, "updatedAt": now}
        st.communications[conv_id][comm["id"]] = comm
        if resource_id:
            st.by_resource_id[(conv_id, resource_id)] = comm["id"]
    return JSONResponse(copy.deepcopy(comm), status_code=201)


async def list_communications(request: Request) -> JSONResponse:
    st = store(request)
    conv_id = request.path_params["ConversationId"]
    _conversation(st, conv_id)
    channel_id = request.query_params.get("channelId")
    items = [c for c in st.communications[conv_id].values()
             if channel_id is None or c.get("channelId") == channel_id]
    return JSONResponse(page("communications", items, request.query_params))


async def fetch_communication(request: Request) -> JSONResponse:
    st = store(request)
    conv_id = request.path_params["ConversationId"]
    _conversation(st, conv_id)
    comm = st.communications[conv_id].get(request.path_params["id"])
    if comm is None:
        raise not_found(f"Communication {request.path_params['id']}")
    return JSONResponse(copy.deepcopy(comm))
