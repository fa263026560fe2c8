"""Contract: every request threadline sent to the twin this session is valid against Twilio's specs.

Marked ``after_all``, so the conftest's collection hook runs it last, after every other test has
driven threadline against the session twin (tests/twin_fixtures.py), which recorded each request
it received. (Run in a selection where no other test used the twin, it makes one of each of the
engine's common calls itself, so it never has nothing to judge.) Each recorded request
whose User-Agent starts with ``threadline/`` is checked STRICTLY (tests/twilio/spec_check.py) against
``../shared/specs/twilio_conversations_v2.json`` / ``twilio_memory_v1.json`` /
``twilio_api_v2010.json`` / ``twilio_events_v1.json`` / ``twilio_conversations_v1.json`` (read
from there, never copied): the path must match a template the spec declares for that method; the JSON body must validate against the
operation's request schema (openapi-schema-validator, OAS 3.0 write rules, formats checked) and
contain no ``null`` anywhere; a form body (the core API, Event Streams, classic) must name only declared
parameters, each valid for its type once coerced (``format: uri`` = an absolute URI, or empty:
the form way to clear a URL field); query
parameters must be declared and valid; ``Idempotency-Key`` only where declared, and a UUID.

Also here: proof the checker can fail (known-bad bodies), and a check that the twin's own
hand-written validation (service/twin/schemas.py for JSON, the ``forms.Form`` tables of
service/twin for form bodies) gives the spec's verdict on sample bodies, so the two cannot drift
apart silently.
"""
from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from service.twin import eventstreams, forms, messages, numbers, schemas, transcriptions
from service.twin.errors import TwinError
from tests.twilio.spec_check import check_request, find
from tests.twin_fixtures import TwinHandle

# --- the checker can fail ---------------------------------------------------------------------

def test_checker_accepts_good_and_refuses_bad_requests() -> None:
    good = {"configurationId": "conv_configuration_00000000000000000000000001",
            "participants": [{"type": "CUSTOMER",
                              "addresses": [{"channel": "SMS", "address": "+14155550100"}]}]}
    assert check_request("POST", "/v2/Conversations", body=good, has_body=True) == []
    assert check_request("POST", "/v2/Conversations", body={**good, "name": None}, has_body=True)
    assert check_request("POST", "/v2/Conversations", body={"name": "x"}, has_body=True)
    bad_type = {**good, "participants": [{"type": "ROBOT", "addresses": []}]}
    assert any("ROBOT" in p for p in check_request("POST", "/v2/Conversations", body=bad_type,
                                                   has_body=True))
    comm = "/v2/Conversations/conv_conversation_1/Communications"
    assert check_request("POST", comm, body={
        "author": {"address": "+1", "channel": "SMS"}, "content": {"type": "TEXT", "text": "x"},
        "recipients": [], "occurredAt": "2026-01-01T00:00:00Z"}, has_body=True)
    assert check_request("POST", comm, body={
        "author": {"address": "+1", "channel": "SMS"}, "content": {"type": "TEXT", "text": "x"},
        "recipients": [{"address": "+2", "channel": "SMS"}], "occurredAt": "noon"},
        has_body=True)
    assert check_request("GET", "/v2/Conversations", query="pageSize=5000")
    assert check_request("GET", "/v2/Conversations", query="status=OPEN")
    assert check_request("GET", "/v2/Conversations", query="colour=red")
    assert check_request("GET", "/v2/Conversations", query="status=ACTIVE&status=CLOSED") == []
    assert check_request("POST", "/v2/Conversations", headers={"Idempotency-Key": "x"},
                         body=good, has_body=True)
    assert check_request("DELETE", "/v2/Conversations/conv_conversation_1",
                         headers={"Idempotency-Key": "01890a5d-aa0f-7c80-b8e6-0242ac140004"}) == []
    assert check_request("POST", "/v2/Nowhere", body={}, has_body=True)
    hooks = "/v1/Services/IS" + "0" * 32 + "/Configuration/Webhooks"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert check_request("POST", hooks, headers=form, body="PostWebhookUrl=&Method=POST", has_body=True) == []
    assert check_request("POST", hooks, headers=form, body="PostWebhookUrl=not/absolute", has_body=True)
    lookup = "/v1/Stores/mem_store_00000000000000000000000000/Profiles/Lookup"
    assert check_request("POST", lookup, body={"idType": "phone", "value": "+1"},
                         has_body=True) == []
    assert check_request("POST", lookup, body={"idType": "phone", "value": "+1", "x": 1},
                         has_body=True)
    number = "/2010-04-01/Accounts/AC1/IncomingPhoneNumbers/PN1.json"
    assert check_request("POST", number, body="SmsUrl=https%3A%2F%2Fa.example%2Fs&SmsMethod=GET",
                         has_body=True) == []
    assert check_request("POST", number, body="SmsUrl=nowhere", has_body=True)
    assert check_request("POST", number, body="SmsMethod=PUT", has_body=True)
    assert check_request("POST", number, body="Colour=red", has_body=True)
    assert check_request("GET", "/2010-04-01/Accounts/AC1/Calls.json",
                         query="Status=in-progress") == []
    assert check_request("GET", "/2010-04-01/Accounts/AC1/Calls.json", query="Status=talking")
    hooks = "/v1/Services/IS1/Configuration/Webhooks"
    assert check_request("POST", hooks, body="PostWebhookUrl=https%3A%2F%2Fa.example%2Fc&Method=POST"
                         "&Filters=onMessageAdded&Filters=onMessageUpdated", has_body=True) == []
    assert check_request("POST", hooks, body="PostWebhookUrl=nowhere", has_body=True)
    classic_msg = "/v1/Services/IS1/Conversations/CH1/Messages"
    assert check_request("POST", classic_msg, body="Author=kim&Body=hi", has_body=True) == []
    assert check_request("POST", classic_msg, body="Author=kim&Colour=red", has_body=True)


# --- the twin's validation agrees with the spec -----------------------------------------------

C = "/v2/Conversations/conv_conversation_1"
MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "/v2/ControlPlane/Configurations"): schemas.ConfigurationCreate,
    ("PUT", "/v2/ControlPlane/Configurations/c"): schemas.ConfigurationUpdate,
    ("PATCH", "/v2/ControlPlane/Configurations/c"): schemas.ConfigurationPatch,
    ("POST", "/v2/Conversations"): schemas.ConversationCreate,
    ("PUT", C): schemas.ConversationUpdate,
    ("PATCH", C): schemas.ConversationPatch,
    ("POST", C + "/Participants"): schemas.ParticipantCreate,
    ("PUT", C + "/Participants/p"): schemas.ParticipantUpdate,
    ("POST", C + "/Communications"): schemas.CommunicationCreate,
    ("POST", "/v1/Stores/mem_store_00000000000000000000000000/Profiles/Lookup"):
        schemas.Identifier,
    ("POST", "/v1/Stores/mem_store_00000000000000000000000000/Profiles/p/Identifiers"):
        schemas.Identifier,
}
CONFIG = {"displayName": "Support 1", "description": "d",
          "conversationGroupingType": "GROUP_BY_PROFILE", "memoryStoreId": "mem_store_x"}
COMM = {"author": {"address": "+1", "channel": "SMS"}, "content": {"type": "TEXT", "text": "x"},
        "recipients": [{"address": "+2", "channel": "SMS"}]}
ADDR = {"channel": "WHATSAPP", "address": "whatsapp:+1"}
SAMPLES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v2/ControlPlane/Configurations", CONFIG),
    ("POST", "/v2/ControlPlane/Configurations", {**CONFIG, "channelSettings": {"SMS": {
        "statusTimeouts": {"inactive": 1, "closed": 2},
        "captureRules": [{"from": "*", "to": "+1", "metadata": {"callType": "PSTN"}}]}},
        "statusCallbacks": [{"url": "https://example.com/cb", "method": "GET"}],
        "conversationsV1Bridge": {"serviceId": "IS" + "0" * 32}}),
    ("POST", "/v2/ControlPlane/Configurations", {**CONFIG, "displayName": "x" * 33}),
    ("POST", "/v2/ControlPlane/Configurations", {**CONFIG, "displayName": "bad!"}),
    ("POST", "/v2/ControlPlane/Configurations", {**CONFIG, "conversationGroupingType": "X"}),
    ("POST", "/v2/ControlPlane/Configurations", {"displayName": "a", "description": "d"}),
    ("POST", "/v2/ControlPlane/Configurations", {**CONFIG, "channelSettings": {"SMS": {
        "statusTimeouts": {"inactive": 0}}}}),
    ("POST", "/v2/ControlPlane/Configurations", {**CONFIG, "channelSettings": {"SMS": {
        "captureRules": [{"from": "*"}]}}}),
    ("POST", "/v2/ControlPlane/Configurations", {**CONFIG, "statusCallbacks": [
        {"url": "https://a.example"}] * 3}),
    ("POST", "/v2/ControlPlane/Configurations", {**CONFIG, "intelligenceConfigurationIds":
                                                 ["a"] * 6}),
    ("POST", "/v2/ControlPlane/Configurations", {**CONFIG, "conversationsV1Bridge":
                                                 {"serviceId": "nope"}}),
    ("PUT", "/v2/ControlPlane/Configurations/c", {**CONFIG, "channelSettings": {}}),
    ("PUT", "/v2/ControlPlane/Configurations/c", CONFIG),
    ("PATCH", "/v2/ControlPlane/Configurations/c", {"description": "only"}),
    ("PATCH", "/v2/ControlPlane/Configurations/c", {"memoryExtractionEnabled": "yes"}),
    ("POST", "/v2/Conversations", {"configurationId": "c", "name": "n", "metadata": {"a": "b"},
                                   "participants": [{"type": "AGENT", "addresses": [ADDR]}]}),
    ("POST", "/v2/Conversations", {"name": "n"}),
    ("POST", "/v2/Conversations", {"configurationId": 7}),
    ("POST", "/v2/Conversations", {"configurationId": "c",
                                   "metadata": {str(i): "v" for i in range(9)}}),
    ("POST", "/v2/Conversations", {"configurationId": "c", "metadata": {"a": "v" * 513}}),
    ("POST", "/v2/Conversations", {"configurationId": "c",
                                   "participants": [{"addresses": [{"channel": "EMAIL",
                                                                    "address": "a@b"}]}]}),
    ("POST", "/v2/Conversations", {"configurationId": "c", "configuration": {
        "workflows": [{"flowId": "FW" + "a" * 32}]}}),
    ("POST", "/v2/Conversations", {"configurationId": "c", "configuration": {
        "workflows": [{"flowId": "nope"}]}}),
    ("PUT", C, {"status": "CLOSED"}),
    ("PUT", C, {"name": "no status"}),
    ("PATCH", C, {"status": "CLOSED"}),
    ("PATCH", C, {"status": "DONE"}),
    ("PATCH", C, {"configuration": {"statusCallbacks": [{"url": "https://x.example"}]}}),
    ("POST", C + "/Participants", {"type": "CUSTOMER", "addresses": [ADDR], "name": "Kiran"}),
    ("POST", C + "/Participants", {"type": "ROBOT", "addresses": [ADDR]}),
    ("POST", C + "/Participants", {"type": "CUSTOMER"}),
    ("POST", C + "/Participants", {"addresses": [{"channel": "SMS"}]}),
    ("PUT", C + "/Participants/p", {"name": "Dana"}),
    ("PUT", C + "/Participants/p", {"profileId": 12}),
    ("POST", C + "/Communications", COMM),
    ("POST", C + "/Communications", {**COMM, "resourceId": "SM1", "channelId": "SM1",
                                     "occurredAt": "2026-11-21T15:00:00.123+01:00"}),
    ("POST", C + "/Communications", {**COMM, "content": {
        "type": "TRANSCRIPTION", "text": "hello",
        "transcription": {"channel": 1, "confidence": 0.9, "engine": "google"}}}),
    ("POST", C + "/Communications", {**COMM, "recipients": []}),
    ("POST", C + "/Communications", {**COMM, "resourceId": ""}),
    ("POST", C + "/Communications", {**COMM, "occurredAt": "21/11/2026"}),
    ("POST", C + "/Communications", {**COMM, "content": {"type": "TEXT"}}),
    ("POST", C + "/Communications", {**COMM, "content": {"type": "AUDIO", "text": "x"}}),
    ("POST", C + "/Communications", {**COMM, "content": {
        "type": "TRANSCRIPTION", "text": "x", "transcription": {"channel": "one"}}}),
    ("POST", C + "/Communications", {**COMM, "author": {"channel": "SMS"}}),
    ("POST", C + "/Communications", {k: v for k, v in COMM.items() if k != "author"}),
    ("POST", "/v1/Stores/mem_store_00000000000000000000000000/Profiles/Lookup",
     {"idType": "phone", "value": "+13175556789"}),
    ("POST", "/v1/Stores/mem_store_00000000000000000000000000/Profiles/Lookup",
     {"idType": "p", "value": "+1"}),
    ("POST", "/v1/Stores/mem_store_00000000000000000000000000/Profiles/Lookup",
     {"idType": "phone", "value": "+1", "extra": True}),
    ("POST", "/v1/Stores/mem_store_00000000000000000000000000/Profiles/p/Identifiers",
     {"idType": "whatsapp", "value": "x" * 256}),
    ("POST", "/v1/Stores/mem_store_00000000000000000000000000/Profiles/p/Identifiers",
     {"idType": "whatsapp", "value": "whatsapp:+13175556789"}),
]


@pytest.mark.parametrize("method,path,body", SAMPLES,
                         ids=[f"{i}-{m}-{p.rsplit('/', 1)[-1]}" for i, (m, p, _) in
                              enumerate(SAMPLES)])
def test_twin_validation_agrees_with_the_spec(method: str, path: str,
                                              body: dict[str, Any]) -> None:
    spec_ok = check_request(method, path, body=body, has_body=True) == []
    try:
        schemas.parse(MODELS[(method, path)], body)
        twin_ok = True
    except TwinError:
        twin_ok = False
    assert twin_ok == spec_ok, (method, path, body)


A = "/2010-04-01/Accounts/AC1"
FORM_MODELS: dict[tuple[str, str], forms.Form] = {
    ("POST", A + "/IncomingPhoneNumbers/PN1.json"): numbers.UPDATE,
    ("POST", A + "/Messages.json"): messages.CREATE,
    ("POST", A + "/Calls/CA1/Transcriptions.json"): transcriptions.CREATE,
    ("POST", A + "/Calls/CA1/Transcriptions/GT1.json"): transcriptions.UPDATE,
    ("POST", "/v1/Sinks"): eventstreams.SINK_CREATE,
    ("POST", "/v1/Subscriptions"): eventstreams.SUBSCRIPTION_CREATE,
}
URL = "https://app.example.com/hook"
SINK = json.dumps({"destination": URL, "method": "POST", "batch_events": True})
FORM_SAMPLES: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("POST", A + "/IncomingPhoneNumbers/PN1.json", [("SmsUrl", URL), ("SmsMethod", "POST"),
                                                    ("VoiceUrl", URL), ("StatusCallback", URL),
                                                    ("VoiceCallerIdLookup", "true")]),
    ("POST", A + "/IncomingPhoneNumbers/PN1.json", [("VoiceUrl", "relative/path")]),
    ("POST", A + "/IncomingPhoneNumbers/PN1.json", [("StatusCallbackMethod", "PUT")]),
    ("POST", A + "/IncomingPhoneNumbers/PN1.json", [("VoiceReceiveMode", "video")]),
    ("POST", A + "/IncomingPhoneNumbers/PN1.json", [("VoiceCallerIdLookup", "yes")]),
    ("POST", A + "/Messages.json", [("To", "+14155550123"), ("From", "+14155550100"),
                                    ("Body", "hi"), ("StatusCallback", URL),
                                    ("MediaUrl", URL), ("MediaUrl", URL)]),
    ("POST", A + "/Messages.json", [("From", "+14155550100"), ("Body", "hi")]),
    ("POST", A + "/Messages.json", [("To", "+1"), ("StatusCallback", "not a url")]),
    ("POST", A + "/Messages.json", [("To", "+1"), ("Attempt", "twice")]),
    ("POST", A + "/Calls/CA1/Transcriptions.json", [
        ("StatusCallbackUrl", URL), ("Track", "both_tracks"), ("PartialResults", "true"),
        ("Name", "passive"), ("ConversationConfiguration", "support")]),
    ("POST", A + "/Calls/CA1/Transcriptions.json", []),
    ("POST", A + "/Calls/CA1/Transcriptions.json", [("Track", "left_track")]),
    ("POST", A + "/Calls/CA1/Transcriptions.json", [("PartialResults", "maybe")]),
    ("POST", A + "/Calls/CA1/Transcriptions/GT1.json", [("Status", "stopped")]),
    ("POST", A + "/Calls/CA1/Transcriptions/GT1.json", [("Status", "paused")]),
    ("POST", A + "/Calls/CA1/Transcriptions/GT1.json", []),
    ("POST", "/v1/Sinks", [("Description", "d"), ("SinkConfiguration", SINK),
                           ("SinkType", "webhook")]),
    ("POST", "/v1/Sinks", [("Description", "d"), ("SinkType", "webhook")]),
    ("POST", "/v1/Sinks", [("Description", "d"), ("SinkConfiguration", SINK),
                           ("SinkType", "pigeon")]),
    ("POST", "/v1/Subscriptions", [("Description", "d"), ("SinkSid", "DG" + "a" * 32),
                                   ("Types", '{"type": "a"}'), ("Types", '{"type": "b"}')]),
    ("POST", "/v1/Subscriptions", [("Description", "d"), ("SinkSid", "DG1"),
                                   ("Types", '{"type": "a"}')]),
    ("POST", "/v1/Subscriptions", [("Description", "d"), ("SinkSid", "DG" + "a" * 32)]),
]


@pytest.mark.parametrize("method,path,pairs", FORM_SAMPLES,
                         ids=[f"{i}-{p.rsplit('/', 1)[-1]}" for i, (_, p, _) in
                              enumerate(FORM_SAMPLES)])
def test_twin_form_validation_agrees_with_the_spec(method: str, path: str,
                                                   pairs: list[tuple[str, str]]) -> None:
    from urllib.parse import urlencode

    spec_ok = check_request(method, path, body=urlencode(pairs), has_body=True) == []
    try:
        forms.check(FORM_MODELS[(method, path)], pairs)
        twin_ok = True
    except TwinError:
        twin_ok = False
    assert twin_ok == spec_ok, (method, path, pairs)


def test_form_samples_cover_both_verdicts_on_every_form() -> None:
    from urllib.parse import urlencode

    verdicts: dict[tuple[str, str], set[bool]] = {}
    for method, path, pairs in FORM_SAMPLES:
        ok = check_request(method, path, body=urlencode(pairs), has_body=True) == []
        verdicts.setdefault((method, path), set()).add(ok)
    assert set(verdicts) == set(FORM_MODELS)
    assert [k for k, v in verdicts.items() if v != {True, False}] == []


def test_samples_cover_both_verdicts_on_every_model() -> None:
    verdicts: dict[tuple[str, str], set[bool]] = {}
    for method, path, body in SAMPLES:
        ok = check_request(method, path, body=body, has_body=True) == []
        verdicts.setdefault((method, path), set()).add(ok)
    assert set(verdicts) == set(MODELS)
    thin = [k for k, v in verdicts.items() if v != {True, False}]
    assert thin == [], f"add a valid and an invalid sample for {thin}"


# --- what threadline sent -----------------------------------------------------------------------

def _threadline_requests(twin_server: TwinHandle) -> list[dict[str, Any]]:
    lines = twin_server.record_path.read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    return [e for e in entries if e.get("user_agent", "").startswith("threadline/")]


def _drive_threadline_clients(twin_server: TwinHandle) -> None:
    """One of each call the engine makes most: configuration, conversation, participant,
    communication, status change, listing, the Messages and Calls lookups."""
    import asyncio

    from workers.capture.configuration import parse_configuration
    from workers.twilio import voice_api
    from workers.twilio.client import V2Client

    async def calls() -> None:
        async with V2Client(twin_server.settings()) as client:
            accepted = await client.create_configuration(parse_configuration({
                "id": "contract", "displayName": "contract", "description": "contract test",
                "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES",
                "memoryStoreId": "mem_store_" + "0" * 26,
                "channelSettings": {"SMS": {"statusTimeouts": {"inactive": 30, "closed": 60}}},
            }).v2_body())
            await client.wait_operation(accepted)
            conv = await client.create_conversation(
                {"configurationId": accepted.related["configurationId"], "name": "contract"})
            await client.create_participant(conv["id"], {
                "type": "CUSTOMER", "name": "+14155550123",
                "addresses": [{"channel": "SMS", "address": "+14155550123"}]})
            await client.create_communication(conv["id"], {
                "author": {"address": "+14155550123", "channel": "SMS"},
                "content": {"type": "TEXT", "text": "hello"},
                "recipients": [{"address": "+14155550100", "channel": "SMS"}],
                "channelId": "SM" + "1" * 32})
            await client.patch_conversation(conv["id"], {"status": "INACTIVE"})
            await client.list_conversations(status=["ACTIVE"])
            async for _ in voice_api.in_progress_calls(client, twin_server.account_sid):
                pass

    asyncio.run(calls())


@pytest.mark.after_all
def test_every_threadline_request_matches_the_specs(twin_server: TwinHandle,
                                                    request: pytest.FixtureRequest) -> None:
    others_used_the_twin = any(
        "twin_server" in item.fixturenames
        and not item.module.__name__.startswith("tests.twin.") and item.module.__name__ != __name__
        for item in request.session.items)
    if not others_used_the_twin:
        # A selection with no engine test in it (this file alone, say): threadline's clients
        # make their calls here, so the check below always has requests to judge.
        _drive_threadline_clients(twin_server)
    sent = _threadline_requests(twin_server)
    assert sent, "threadline's clients ran against the twin, yet it recorded none of their requests"
    problems = []
    for entry in sent:
        has_body = "body" in entry or "body_text" in entry
        op = find(entry["method"], entry["path"])
        form = op is not None and op.is_form()
        if "body_text" in entry and not form:
            problems.append(f"{entry['method']} {entry['path']}: body is not JSON")
            continue
        if "body" in entry and form:
            problems.append(f"{entry['method']} {entry['path']}: JSON where a form is declared")
            continue
        problems += check_request(entry["method"], entry["path"], entry.get("query", ""),
                                  entry.get("headers", {}),
                                  entry.get("body_text" if form else "body"), has_body)
    assert not problems, f"{len(problems)} contract violations in {len(sent)} requests:\n" + \
        "\n".join(sorted(set(problems))[:40])
