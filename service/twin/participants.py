"""Participants of a conversation: create, list, fetch, PUT (v2 has no participant DELETE).

A (channel, address) pair belongs to at most one participant of a conversation: a second one is
a 409 with ``X-Conflicting-Resource-Id`` naming the holder (the spec declares 409 on this
create), so a client that lost the answer to a create can find the participant it made.
"""
from __future__ import annotations

import copy

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.twin import ids
from service.twin.errors import CONFLICT, TwinError, not_found
from service.twin.http import read_json, store
from service.twin.schemas import ParticipantCreate, ParticipantUpdate, dump, parse
from service.twin.store import Json, Store, now_iso, page


def check_addresses(st: Store, conversation_id: str, addresses: list[Json],
                    participant_id: str | None = None) -> None:
    for a in addresses:
        holder = st.holder_of(conversation_id, a["channel"], a["address"])
        if holder is not None and holder != participant_id:
            raise TwinError(409, CONFLICT,
                            f"A participant of this conversation already has the "
                            f"{a['channel']} address", {"X-Conflicting-Resource-Id": holder})


def add_participant(st: Store, conversation_id: str, fields: Json) -> Json:
    now = now_iso()
    participant = {"id": ids.new_id("conv_participant_"), "conversationId": conversation_id,
                   "accountId": st.account_sid, **fields, "createdAt": now, "updatedAt": now}
    participant.setdefault("addresses", [])
    st.participants[conversation_id][participant["id"]] = participant
    return participant


def _participant(st: Store, conv_id: str, participant_id: str) -> Json:
    st.conversation(conv_id)
    participant = st.participants[conv_id].get(participant_id)
    if participant is None:
        raise not_found(f"Participant {participant_id}")
    return participant


async def create_participant(request: Request) -> JSONResponse:
    st = store(request)
    conv_id = request.path_params["ConversationId"]
    st.conversation(conv_id)
    fields = dump(parse(ParticipantCreate, await read_json(request)))
    check_addresses(st, conv_id, fields["addresses"])
    return JSONResponse(copy.deepcopy(add_participant(st, conv_id, fields)), status_code=201)


async def list_participants(request: Request) -> JSONResponse:
    st = store(request)
    conv_id = request.path_params["ConversationId"]
    st.conversation(conv_id)
    items = list(st.participants[conv_id].values())
    return JSONResponse(page("participants", items, request.query_params))


async def fetch_participant(request: Request) -> JSONResponse:
    p = _participant(store(request), request.path_params["ConversationId"],
                     request.path_params["id"])
    return JSONResponse(copy.deepcopy(p))


async def update_participant(request: Request) -> JSONResponse:
    """PUT: the fields given replace the participant's; absent (or null) fields stay."""
    st = store(request)
    conv_id = request.path_params["ConversationId"]
    participant = _participant(st, conv_id, request.path_params["id"])
    fields = dump(parse(ParticipantUpdate, await read_json(request)))
    if "addresses" in fields:
        check_addresses(st, conv_id, fields["addresses"], participant["id"])
    participant.update(fields)
    participant["updatedAt"] = now_iso()
    return JSONResponse(copy.deepcopy(participant))
