"""Conversations v2 conversations: create (with inline participants), list, fetch, PUT, PATCH,
DELETE. Participants and communications live in their own modules.

Decisions where the spec is silent (threadline's code relies on them):

- A CLOSED conversation stays CLOSED. PUT/PATCH to ACTIVE or INACTIVE → **400** with code
  ``workers.twilio.errors.CONVERSATION_CLOSED_CODE`` (50437), the same refusal as a communication
  posted to it (service/twin/communications.py): the spec declares no 409 on these operations.
  PUT/PATCH to CLOSED again is a harmless 200; name and metadata stay editable.
- PATCH ``metadata`` is a merge patch (a null value removes the key; at most 8 keys after the
  merge); PUT replaces name and metadata when given.
- ``POST /v2/Conversations`` with an unknown ``configurationId`` (or one whose create operation
  has not completed) → 404, which the spec declares for this operation.
- Lists are in creation order. ``GET /v2/Conversations?status=`` takes the parameter repeated
  (``status=ACTIVE&status=INACTIVE``, as the twilio library sends it) or comma-separated;
  ``channelId`` matches a conversation when any participant address or communication carries it.
- DELETE is asynchronous (202 + operation, ``related.conversationId``), honouring Idempotency-Key.
"""
from __future__ import annotations

import copy

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.twin import ids
from service.twin.communications import closed
from service.twin.errors import invalid, not_found
from service.twin.http import accepted, idempotent, read_json, store
from service.twin.participants import add_participant
from service.twin.schemas import ConversationCreate, ConversationPatch, ConversationUpdate, dump, parse
from service.twin.store import Json, Store, now_iso, page

STATUSES = ("ACTIVE", "INACTIVE", "CLOSED")
_CONFIG_FIELDS = ("displayName", "description", "conversationGroupingType", "memoryStoreId",
                  "channelSettings", "statusCallbacks", "intelligenceConfigurationIds",
                  "memoryExtractionEnabled", "conversationsV1Bridge")


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
        add_participant(st, conv["id"], p)
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
    conv = st.conversation(request.path_params["id"])
    return JSONResponse(st.conversation_view(conv["id"]))


def _set_status(conv: Json, status: str | None) -> None:
    if status is None or status == conv["status"]:
        return
    if conv["status"] == "CLOSED":
        raise closed(conv["id"], f"a closed conversation cannot become {status}")
    conv["status"] = status


async def update_conversation(request: Request) -> JSONResponse:
    """PUT: ``status`` required; name and metadata replaced when given."""
    st = store(request)
    conv = st.conversation(request.path_params["id"])
    fields = dump(parse(ConversationUpdate, await read_json(request)))
    _set_status(conv, fields.pop("status"))
    conv.update(fields)
    conv["updatedAt"] = now_iso()
    return JSONResponse(st.conversation_view(conv["id"]))


async def patch_conversation(request: Request) -> JSONResponse:
    """PATCH: only given fields change; metadata is a merge patch (a null value removes a key)."""
    st = store(request)
    conv = st.conversation(request.path_params["id"])
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
        st.conversation(conv_id)

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
