"""The stock twilio-python client, unchanged, against the twin over real HTTP.

The client's URLs are https://conversations.twilio.com/…; workers.twilio.rest rebases them onto
the twin exactly as THREADLINE_TWILIO_BASE_URL does for threadline. The library sends every unset
optional field as JSON null, so these tests also prove the twin reads a null as "absent".
"""
from __future__ import annotations

import json
import time

from twilio.rest.conversations.v2.communication import CommunicationList
from twilio.rest.conversations.v2.configuration import ConfigurationList
from twilio.rest.conversations.v2.conversation import ConversationList
from twilio.rest.conversations.v2.participant import ParticipantList

from tests.twin_fixtures import TwinHandle

AGENT = "+18005550100"
CUSTOMER = "+14155550123"


def _config_request() -> ConfigurationList.CreateConfigurationRequest:
    return ConfigurationList.CreateConfigurationRequest({
        "displayName": "Support",
        "description": "Support line",
        "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
        "memoryStoreId": "mem_store_00000000000000000000000000",
        "channelSettings": {"SMS": {"statusTimeouts": {"inactive": 10, "closed": 15}}},
    })


def _text(conversation_id: str, text: str, resource_id: str | None = None):
    payload = {
        "author": {"address": CUSTOMER, "channel": "SMS"},
        "content": {"type": "TEXT", "text": text},
        "recipients": [{"address": AGENT, "channel": "SMS"}],
    }
    if resource_id:
        payload["resourceId"] = resource_id
    return CommunicationList.CreateCommunicationInConversationRequest(payload)


def test_configuration_operation_is_followed_to_completion(twin: TwinHandle) -> None:
    twin.set_operation_delay(1.0)  # long enough to see PENDING even on a loaded machine
    client = twin.client()
    v2 = client.conversations.v2
    accepted = v2.configurations.create(create_configuration_request=_config_request())
    assert accepted.status_url.startswith(
        "https://conversations.twilio.com/v2/ControlPlane/Operations/proc_job_")
    config_id = accepted.related["configurationId"]
    assert config_id.startswith("conv_configuration_") and len(config_id) == 19 + 26
    op_id = accepted.status_url.rsplit("/", 1)[1]

    first = v2.operations(op_id).fetch()
    assert first.status == "PENDING"
    deadline = time.monotonic() + 5
    op = first
    while op.status == "PENDING" and time.monotonic() < deadline:
        time.sleep(0.05)
        op = v2.operations(op_id).fetch()
    assert op.status == "COMPLETED" and op.completed_at is not None
    fetched = v2.configurations(config_id).fetch()
    assert fetched.display_name == "Support"
    assert fetched.channel_settings["SMS"]["statusTimeouts"]["inactive"] == 10


def test_conversation_lifecycle_through_the_client(twin: TwinHandle) -> None:
    client = twin.client()
    v2 = client.conversations.v2
    config_id = twin.create_configuration()

    conv = v2.conversations.create(
        create_conversation_with_config_request=ConversationList.CreateConversationWithConfigRequest(
            {"configurationId": config_id, "metadata": {"groupingKey": "k1"}}))
    assert conv.status == "ACTIVE" and conv.configuration_id == config_id

    people = {}
    for kind, address in (("CUSTOMER", CUSTOMER), ("AGENT", AGENT)):
        people[kind] = v2.participants(conv.id).create(
            create_participant_in_conversation_request=(
                ParticipantList.CreateParticipantInConversationRequest(
                    {"type": kind, "addresses": [{"channel": "SMS", "address": address}]})))
        assert people[kind].id.startswith("conv_participant_")

    comms = v2.communications(conv.id)
    first = comms.create(create_communication_in_conversation_request=_text(conv.id, "hi", "SM1"))
    for i in range(4):
        comms.create(create_communication_in_conversation_request=_text(conv.id, f"m{i}"))
    again = comms.create(
        create_communication_in_conversation_request=_text(conv.id, "hi, edited", "SM1"))
    assert again.id == first.id  # resourceId upsert: still one communication
    assert again.content["text"] == "hi, edited"
    assert first.author["participantId"] == people["CUSTOMER"].id

    closed = v2.conversations(conv.id).patch(
        patch_conversation_by_id_request=ConversationList.PatchConversationByIdRequest(
            {"status": "CLOSED"}))
    assert closed.status == "CLOSED"
    assert closed.metadata == {"groupingKey": "k1"}  # a null metadata in PATCH changes nothing

    # Read back with the client's own list and fetch, two items per page (several pages).
    listed = comms.list(page_size=2)
    assert [c.id for c in listed].count(first.id) == 1
    assert len(listed) == 5
    assert [c.content["text"] for c in listed] == ["hi, edited", "m0", "m1", "m2", "m3"]
    assert comms(first.id).fetch().resource_id == "SM1"
    participants = v2.participants(conv.id).list(page_size=1)
    assert {p.id for p in participants} == {p.id for p in people.values()}
    assert v2.participants(conv.id, people["AGENT"].id).fetch().type == "AGENT"
    assert v2.conversations(conv.id).fetch().status == "CLOSED"

    pages = twin.count("GET /v2/Conversations/{ConversationId}/Communications", 200)
    assert pages == 3  # 5 items at 2 per page


def test_conversation_list_filters_and_pages(twin: TwinHandle) -> None:
    v2 = twin.client().conversations.v2
    config_id = twin.create_configuration()
    ids = []
    for i in range(5):
        ids.append(v2.conversations.create(
            create_conversation_with_config_request=(
                ConversationList.CreateConversationWithConfigRequest(
                    {"configurationId": config_id, "name": f"c{i}"}))).id)
    for conv_id in ids[:2]:
        v2.conversations(conv_id).patch(
            patch_conversation_by_id_request=ConversationList.PatchConversationByIdRequest(
                {"status": "CLOSED"}))
    assert [c.id for c in v2.conversations.list(page_size=2)] == ids
    assert [c.id for c in v2.conversations.list(status=["CLOSED"], page_size=1)] == ids[:2]
    active_inactive = v2.conversations.list(status=["ACTIVE", "INACTIVE"])
    assert [c.id for c in active_inactive] == ids[2:]


def test_closed_conversation_refuses_reopening_and_communications(twin: TwinHandle) -> None:
    from workers.twilio.errors import CONVERSATION_CLOSED_CODE, is_conversation_closed

    with twin.http() as http:
        config_id = twin.create_configuration()
        conv = http.post("/v2/Conversations", json={"configurationId": config_id}).json()
        assert http.patch(f"/v2/Conversations/{conv['id']}",
                          json={"status": "CLOSED"}).status_code == 200
        reopen = http.put(f"/v2/Conversations/{conv['id']}", json={"status": "ACTIVE"})
        assert reopen.status_code == 400 and reopen.json()["code"] == CONVERSATION_CLOSED_CODE
        refused = http.post(f"/v2/Conversations/{conv['id']}/Communications", json={
            "author": {"address": CUSTOMER, "channel": "SMS"},
            "content": {"type": "TEXT", "text": "late"},
            "recipients": [{"address": AGENT, "channel": "SMS"}]})
        assert refused.status_code == 400
        assert is_conversation_closed(refused.status_code, refused.json())
        assert set(refused.json()) == {"code", "message", "more_info", "status"}
        # closing again is harmless
        assert http.patch(f"/v2/Conversations/{conv['id']}",
                          json={"status": "CLOSED"}).status_code == 200
    state = twin.state()
    assert state["conversations"][0]["status"] == "CLOSED"
    assert state["conversations"][0]["communications"] == []


def test_record_file_holds_the_requests_without_authorization(twin: TwinHandle) -> None:
    with twin.http(headers={"User-Agent": "twin-record-check/1"}) as http:
        http.get("/v2/Conversations", params={"pageSize": 3})
    # The twin writes a request's line once it has answered: the client can be faster.
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(line) for line in twin.record_path.read_text().splitlines()]
        mine = [e for e in lines if e["user_agent"] == "twin-record-check/1"]
        if mine or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert mine and mine[-1]["method"] == "GET" and mine[-1]["query"] == "pageSize=3"
    assert mine[-1]["status"] == 200
    assert all("authorization" not in {k.lower() for k in e["headers"]} for e in lines)
