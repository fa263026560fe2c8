"""The twin refuses what Twilio refuses, in Twilio's error shape, naming the field or id."""
from __future__ import annotations

import uuid

import httpx
import pytest

from tests.twin_fixtures import TwinHandle

SHAPE = {"code", "message", "more_info", "status"}
CUSTOMER = "+14155550123"
AGENT = "+18005550100"


def assert_refusal(response: httpx.Response, status: int, mentions: str = "") -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == SHAPE
    assert body["status"] == status
    assert body["more_info"].endswith(str(body["code"]))
    assert mentions in body["message"]
    return body


@pytest.fixture
def conversation(twin: TwinHandle) -> str:
    config_id = twin.create_configuration()
    with twin.http() as http:
        return http.post("/v2/Conversations", json={"configurationId": config_id}).json()["id"]


def test_spec_refusals(twin: TwinHandle, conversation: str) -> None:
    with twin.http() as http:
        assert_refusal(http.post("/v2/Conversations", json={"name": "no configuration"}),
                       400, "configurationId")
        assert_refusal(http.post(f"/v2/Conversations/{conversation}/Participants", json={
            "type": "ROBOT", "addresses": [{"channel": "SMS", "address": CUSTOMER}]}),
            400, "type")
        assert_refusal(http.post(f"/v2/Conversations/{conversation}/Communications", json={
            "author": {"address": CUSTOMER, "channel": "SMS"},
            "content": {"type": "TEXT", "text": "hi"}, "recipients": []}),
            400, "recipients")
        assert_refusal(http.post("/v2/ControlPlane/Configurations", json={
            "displayName": "x" * 33, "description": "d",
            "conversationGroupingType": "GROUP_BY_PROFILE", "memoryStoreId": "m"}),
            400, "displayName")
        assert_refusal(http.post(f"/v2/Conversations/{conversation}/Communications", json={
            "author": {"address": CUSTOMER, "channel": "SMS"},
            "content": {"type": "HTML", "text": "hi"},
            "recipients": [{"address": AGENT, "channel": "SMS"}]}), 400, "content")
        assert_refusal(http.post(f"/v2/Conversations/{conversation}/Communications", json={
            "author": {"address": CUSTOMER, "channel": "SMS"},
            "content": {"type": "TEXT", "text": "hi"}, "occurredAt": "yesterday",
            "recipients": [{"address": AGENT, "channel": "SMS"}]}), 400, "occurredAt")
        assert_refusal(http.post("/v2/Conversations", json={
            "configurationId": "conv_configuration_00000000000000000000000000"}),
            404, "conv_configuration_00000000000000000000000000")
    # nothing refused was kept
    assert len(twin.state()["conversations"]) == 1
    assert twin.state()["conversations"][0]["participants"] == []


def test_unknown_ids_are_404(twin: TwinHandle, conversation: str) -> None:
    missing = "conv_conversation_00000000000000000000000000"
    with twin.http() as http:
        assert_refusal(http.get(f"/v2/Conversations/{missing}"), 404, missing)
        assert_refusal(http.patch(f"/v2/Conversations/{missing}", json={"status": "CLOSED"}),
                       404, missing)
        assert_refusal(http.get(f"/v2/Conversations/{conversation}/Participants/nope"), 404, "nope")
        assert_refusal(http.get(f"/v2/Conversations/{conversation}/Communications/nope"),
                       404, "nope")
        assert_refusal(http.get("/v2/ControlPlane/Configurations/conv_configuration_x"), 404)
        assert_refusal(http.get("/v2/ControlPlane/Operations/proc_job_x"), 404)
        assert_refusal(http.get(f"/2010-04-01/Accounts/{twin.account_sid}/Messages/"
                                "SM00000000000000000000000000000000.json"), 404)


def test_bad_input_in_twilio_shape(twin: TwinHandle) -> None:
    with twin.http() as http:
        assert_refusal(http.post("/v2/Conversations", content=b'{"configurationId": ',
                                 headers={"Content-Type": "application/json"}), 400, "JSON")
        assert_refusal(http.post("/v2/Conversations", content=b""), 400)
        assert_refusal(http.post("/v2/Conversations", json=["a", "list"]), 400, "JSON object")
        assert_refusal(http.get("/v2/Nowhere"), 404, "/v2/Nowhere")
        assert_refusal(http.get("/v2/Conversations/"), 404)  # no redirect to the slashless path
        assert_refusal(http.delete("/v2/Conversations"), 405, "DELETE")
        assert_refusal(http.get("/v2/Conversations", params={"pageSize": 0}), 400, "pageSize")
        assert_refusal(http.get("/v2/Conversations", params={"pageToken": "garbage"}),
                       400, "pageToken")
        assert_refusal(http.get("/v2/Conversations", params={"status": "OPEN"}), 400, "status")
    with twin.http(auth=(twin.account_sid, "wrong-token")) as http:
        body = assert_refusal(http.get("/v2/Conversations"), 401)
        assert body["code"] == 20003
    with httpx.Client(base_url=twin.base_url) as anonymous:
        assert_refusal(anonymous.get("/v2/Conversations"), 401)
    assert twin.count("GET /v2/Conversations", 401) == 2
    assert twin.count("POST /v2/Conversations", 400) == 3


def test_api_key_credentials_are_accepted(twin: TwinHandle) -> None:
    with twin.http(auth=(twin.api_key, twin.api_secret)) as http:
        assert http.get("/v2/Conversations").status_code == 200
    with twin.http(auth=(twin.api_key, twin.auth_token)) as http:
        assert_refusal(http.get("/v2/Conversations"), 401)


def test_idempotency_key_replays_configuration_writes(twin: TwinHandle) -> None:
    body = {"displayName": "Idem", "description": "d",
            "conversationGroupingType": "GROUP_BY_PROFILE",
            "memoryStoreId": "mem_store_00000000000000000000000000"}
    key = str(uuid.uuid4())
    with twin.http(headers={"Idempotency-Key": key}) as http:
        first = http.post("/v2/ControlPlane/Configurations", json=body)
        again = http.post("/v2/ControlPlane/Configurations", json=body)
        assert first.status_code == again.status_code == 202
        assert first.json() == again.json()
        assert again.headers["Operation-Id"] == first.headers["Operation-Id"]
        assert_refusal(http.post("/v2/ControlPlane/Configurations",
                                 json={**body, "description": "other"}), 409, "Idempotency-Key")
    with twin.http(headers={"Idempotency-Key": "not-a-uuid"}) as http:
        assert_refusal(http.post("/v2/ControlPlane/Configurations", json=body), 400,
                       "Idempotency-Key")
    assert len(twin.state()["operations"]) == 1


def test_configuration_write_is_invisible_until_its_operation_completes(twin: TwinHandle) -> None:
    twin.set_operation_delay(30)
    body = {"displayName": "Later", "description": "d",
            "conversationGroupingType": "GROUP_BY_PROFILE", "memoryStoreId": "m"}
    with twin.http() as http:
        accepted = http.post("/v2/ControlPlane/Configurations", json=body)
        assert accepted.headers["Retry-After"] == "30"
        config_id = accepted.json()["related"]["configurationId"]
        assert_refusal(http.get(f"/v2/ControlPlane/Configurations/{config_id}"), 404)
        twin.set_operation_delay(0)
    # a new delay does not move an operation already started; a reset does clear it
    assert twin.state()["operations"][0]["status"] == "PENDING"


def test_grouping_type_change_fails_the_operation(twin: TwinHandle) -> None:
    twin.set_operation_delay(0)
    config_id = twin.create_configuration(conversationGroupingType="GROUP_BY_PROFILE")
    with twin.http() as http:
        accepted = http.patch(f"/v2/ControlPlane/Configurations/{config_id}",
                              json={"conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES"})
        assert accepted.status_code == 202
        op = http.get("/" + accepted.json()["statusUrl"].split("/", 3)[3]).json()
        assert op["status"] == "FAILED" and op["error"]["status"] == 400
        patched = http.patch(f"/v2/ControlPlane/Configurations/{config_id}",
                             json={"description": "new", "channelSettings": {
                                 "SMS": {"statusTimeouts": {"inactive": 5}}}})
        assert patched.status_code == 202
        config = http.get(f"/v2/ControlPlane/Configurations/{config_id}").json()
        assert config["description"] == "new" and config["version"] == 2
        assert config["conversationGroupingType"] == "GROUP_BY_PROFILE"
        removed = http.patch(f"/v2/ControlPlane/Configurations/{config_id}",
                             json={"channelSettings": {"SMS": None}})
        assert removed.status_code == 202
        assert "SMS" not in http.get(
            f"/v2/ControlPlane/Configurations/{config_id}").json()["channelSettings"]


def test_participant_address_conflict_names_the_holder(twin: TwinHandle, conversation: str) -> None:
    with twin.http() as http:
        path = f"/v2/Conversations/{conversation}/Participants"
        first = http.post(path, json={"addresses": [{"channel": "SMS", "address": CUSTOMER}]})
        assert first.status_code == 201
        clash = http.post(path, json={"addresses": [{"channel": "SMS", "address": CUSTOMER}]})
        assert_refusal(clash, 409)
        assert clash.headers["X-Conflicting-Resource-Id"] == first.json()["id"]


def test_metadata_merge_patch(twin: TwinHandle, conversation: str) -> None:
    with twin.http() as http:
        path = f"/v2/Conversations/{conversation}"
        http.patch(path, json={"metadata": {"a": "1", "b": "2"}}).raise_for_status()
        merged = http.patch(path, json={"metadata": {"a": None, "c": "3"}}).json()
        assert merged["metadata"] == {"b": "2", "c": "3"}
        many = {f"k{i}": "v" for i in range(8)}
        assert_refusal(http.patch(path, json={"metadata": many}), 400, "metadata")
