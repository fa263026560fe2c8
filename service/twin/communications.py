"""Communications of a conversation: create (a ``resourceId`` upsert), list, fetch.

- ``resourceId`` is the upsert key within a conversation: a repeat updates that communication
  (author, content, recipients, channelId replaced; occurredAt replaced when given) and keeps
  its id and createdAt. The answer is **201** either way, because 201 is the only success the
  spec declares for this operation; tell a create from an update by the id.
- A CLOSED conversation refuses new communications: **400** with code
  ``workers.twilio.errors.CONVERSATION_CLOSED_CODE`` (50437), the constant threadline's delivery
  code recognizes (the spec declares no 409 here). INACTIVE conversations accept them and keep
  their status: threadline's lifecycle owns status changes.
- ``participantId`` on the author or a recipient must name a participant of the conversation
  (400 otherwise); when absent, the twin fills it in from the matching address.
- Recipients may carry ``deliveryStatus`` (the response's enum); that is how a status update is
  sent: an upsert with the same resourceId.
"""
from __future__ import annotations

import copy
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.twin import ids
from service.twin.errors import TwinError, invalid, not_found
from service.twin.http import read_json, store
from service.twin.schemas import CommunicationCreate, dump, parse
from service.twin.store import Json, Store, now_iso, page
from workers.twilio.errors import CONVERSATION_CLOSED_CODE, CONVERSATION_CLOSED_STATUS


def closed(conversation_id: str, what: str) -> TwinError:
    return TwinError(CONVERSATION_CLOSED_STATUS, CONVERSATION_CLOSED_CODE,
                     f"Conversation {conversation_id} is CLOSED: {what}")


def _resolve(st: Store, conv_id: str, who: Json, where: str) -> None:
    if "participantId" in who:
        if who["participantId"] not in st.participants[conv_id]:
            raise invalid(f"{where}.participantId: no participant {who['participantId']} "
                          "in this conversation")
        return
    holder = st.holder_of(conv_id, who["channel"], who["address"])
    if holder is not None:
        who["participantId"] = holder


async def create_communication(request: Request) -> JSONResponse:
    st = store(request)
    conv_id = request.path_params["ConversationId"]
    conv = st.conversation(conv_id)
    fields: dict[str, Any] = dump(parse(CommunicationCreate, await read_json(request)))
    if conv["status"] == "CLOSED":
        raise closed(conv_id, "it takes no new communications")
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
    st.conversation(conv_id)
    channel_id = request.query_params.get("channelId")
    items = [c for c in st.communications[conv_id].values()
             if channel_id is None or c.get("channelId") == channel_id]
    return JSONResponse(page("communications", items, request.query_params))


async def fetch_communication(request: Request) -> JSONResponse:
    st = store(request)
    conv_id = request.path_params["ConversationId"]
    st.conversation(conv_id)
    comm = st.communications[conv_id].get(request.path_params["id"])
    if comm is None:
        raise not_found(f"Communication {request.path_params['id']}")
    return JSONResponse(copy.deepcopy(comm))
