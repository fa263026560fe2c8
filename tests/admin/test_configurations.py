"""The configurations admin API, explain and the THREADLINE_CONFIG file on a real ``threadline web``.

Driven as an operator would: HTTP with the bearer token, the file edited and SIGHUP sent to the
process, ``rules explain`` answered from what the running service holds.
"""
from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest
import redis.asyncio as aioredis

from tests.web_fixtures import Web
from workers.capture.store import ConfigStore
from workers.conversations.store import ConversationStore

API = "/api/v1/configurations"


@pytest.fixture(autouse=True)
def _empty_db(redis_client):
    """Each test starts on an empty database (redis_client empties it), before any server starts."""
US, KIRAN = "+15550000001", "+15551234567"


def body(id_="support", **over) -> dict:
    data = {
        "id": id_, "displayName": "Support", "description": "Support line",
        "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES",
        "channelSettings": {"SMS": {"statusTimeouts": {"inactive": 10, "closed": 60},
                                    "captureRules": [{"from": US, "to": "*"}, {"from": "*", "to": US}]}},
    }
    data.update(over)
    return data


def test_admin_token_required(start_web):
    web: Web = start_web()
    assert web.get(API).status_code == 401
    assert web.get(API, headers={"Authorization": "Bearer wrong"}).status_code == 401
    off = start_web(THREADLINE_ADMIN_TOKEN=None)
    any_token = {"Authorization": "Bearer anything"}
    r = off.get(API, headers=any_token)
    assert r.status_code == 503 and "THREADLINE_ADMIN_TOKEN" in r.json()["error"]
    r = off.post("/api/v1/rules/explain", json={}, headers=any_token)
    assert r.status_code == 503


def test_create_read_replace_delete_with_versions(web: Web, redis_client):
    h = web.admin_headers()
    r = web.post(API, json=body(), headers=h)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"{API}/support"
    assert r.json()["version"] == 1 and r.json()["source"] == "api"
    assert [w.split(":")[1].strip() for w in r.json()["warnings"]] == [
        "no twilioConfigurationId and no memoryStoreId"]
    assert web.post(API, json=body(), headers=h).status_code == 409  # exists: PUT replaces
    got = web.get(f"{API}/support", headers=h).json()
    assert got["channelSettings"]["SMS"]["captureRules"][1] == {"from": "*", "to": US, "metadata": {}}
    # GET → edit → PUT (read-only version/source sent back are ignored), a new version
    got["description"] = "Support line, EU"
    r = web.client.put(f"{API}/support", json=got, headers=h)
    assert r.status_code == 200 and r.json()["version"] == 2
    # PUT is a full replacement: channelSettings left out are gone
    r = web.client.put(f"{API}/support", json={k: v for k, v in got.items() if k != "channelSettings"}, headers=h)
    assert r.json()["version"] == 3 and "SMS" not in r.json()["channelSettings"]
    listed = web.get(API, headers=h).json()["configurations"]
    assert [(c["id"], c["version"]) for c in listed] == [("support", 3)]
    old = web.get(f"{API}/support?version=1", headers=h).json()
    assert old["description"] == "Support line" and old["current"] is False
    assert web.client.put(f"{API}/nope", json=body("nope"), headers=h).status_code == 404
    assert web.client.delete(f"{API}/support", headers=h).status_code == 204
    assert web.get(f"{API}/support", headers=h).status_code == 404
    assert web.client.delete(f"{API}/support", headers=h).status_code == 404
    # a conversation pinned to version 2 can still read it
    assert ConfigStore(redis_client).get("support", 2).config.description == "Support line, EU"
    assert web.get(f"{API}/support?version=2", headers=h).status_code == 200


def test_grouping_type_change_is_409_with_the_reason(web: Web):
    h = web.admin_headers()
    web.post(API, json=body(), headers=h)
    r = web.client.put(f"{API}/support", json=body(conversationGroupingType="GROUP_BY_PROFILE"), headers=h)
    assert r.status_code == 409
    err = r.json()
    assert err["field"] == "conversationGroupingType" and "immutable" in err["error"]
    assert (err["current"], err["requested"]) == ("GROUP_BY_PARTICIPANT_ADDRESSES", "GROUP_BY_PROFILE")
    assert web.get(f"{API}/support", headers=h).json()["version"] == 1


def test_validation_errors_are_422_naming_every_field(web: Web, redis_client):
    h = web.admin_headers()
    bad = body(displayName="Support!", channelSettings={"SMS": {"captureRules": [
        {"from": "4155550123", "to": "*"}]}, "VOICE": {"captureRules": [{"from": "client:a", "to": "*"}]}})
    r = web.post(API, json=bad, headers=h)
    assert r.status_code == 422
    problems = r.json()["problems"]
    assert problems[0] == "displayName: may contain only letters, digits, '-', '_' and spaces"
    assert problems[1].startswith("channelSettings.SMS.captureRules[0].from: '4155550123' is not an address")
    r = web.client.put(f"{API}/support", json=body(id="other"), headers=h)
    assert r.status_code == 422 and r.json()["problems"][0].startswith("id: 'other' does not match")
    assert web.post(API, content=b"{not json", headers=h).status_code == 400
    assert web.get(API, headers=h).json()["configurations"] == []
    total = {k.decode(): int(v) for k, v in redis_client.hgetall("tl:stats:total").items()}
    assert total["config_changes|api|invalid"] == 2


def test_explain_says_which_rules_match_and_the_conversation(web: Web):
    h = web.admin_headers()
    web.post(API, json=body(), headers=h)
    web.post(API, json=body("all", displayName="All", channelSettings={
        "SMS": {"captureRules": [{"from": "*", "to": "*"}]}}), headers=h)
    r = web.post("/api/v1/rules/explain", headers=h,
                 json={"channel": "SMS", "from": KIRAN, "to": US})
    assert r.status_code == 200, r.text
    out = r.json()
    assert [(m["configurationId"], [x["index"] for x in m["rules"]]) for m in out["matches"]] == [
        ("all", [0]), ("support", [1])]
    support = out["matches"][1]
    assert support["customer"] == {"address": KIRAN, "side": "from", "reason": "to is an account address"}
    assert support["account"] == {"address": US, "participantType": "AGENT"}
    assert support["groupingKey"] == f"addr|{US}|{KIRAN}"
    assert support["conversation"] == {"action": "create", "configurationVersion": 1}
    # once the engine holds an open conversation for that key, explain names it
    conv_id = asyncio.run(_open_conversation(web.env["REDIS_URL"], "support", support["groupingKey"]))
    again = web.post("/api/v1/rules/explain", headers=h, json={"channel": "SMS", "from": KIRAN, "to": US})
    assert again.json()["matches"][1]["conversation"] == {
        "action": "join", "id": conv_id, "status": "ACTIVE", "twilioConversationId": "conv_1",
        "configurationVersion": 1}
    r = web.post("/api/v1/rules/explain", headers=h, json={"channel": "VOICE", "from": KIRAN, "to": US})
    assert r.json()["matches"] == [] and "no VOICE capture rule" in r.json()["ignored"]
    r = web.post("/api/v1/rules/explain", headers=h, json={"channel": "SMS", "from": "nobody", "to": US})
    assert r.status_code == 400 and r.json()["field"] == "from"
    r = web.post("/api/v1/rules/explain", headers=h, json={"channel": "FAX", "from": KIRAN, "to": US})
    assert r.status_code == 400 and r.json()["field"] == "channel"


async def _open_conversation(redis_url: str, config_id: str, key: str) -> str:
    """An open conversation recorded through the engine's own store, as delivery leaves one."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        store = ConversationStore(client)
        conv = await store.begin_create(config_id, 1, key, "GROUP_BY_PARTICIPANT_ADDRESSES")
        pipe = client.pipeline(transaction=True)
        store.finish_create(pipe, conv, "conv_1", {})
        await pipe.execute()
        return conv.id
    finally:
        await client.aclose()


FILE = [body(), body("sales", displayName="Sales", conversationGroupingType="GROUP_BY_PROFILE")]


def wait_for(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_file_loaded_at_start_and_reloaded_on_sighup(start_web, tmp_path):
    path = tmp_path / "configs.json"
    path.write_text(json.dumps(FILE))
    web: Web = start_web(THREADLINE_CONFIG=str(path))
    h = web.admin_headers()
    listed = web.get(API, headers=h).json()["configurations"]
    assert [(c["id"], c["version"], c["source"]) for c in listed] == [("sales", 1, "file"), ("support", 1, "file")]

    # edit the file: support changes, sales goes; SIGHUP applies it
    changed = body(description="edited")
    path.write_text(json.dumps([changed]))
    web.proc.signal(signal.SIGHUP)
    listed = wait_for(lambda: (c := web.get(API, headers=h).json()["configurations"]) and len(c) == 1 and c)
    assert (listed[0]["id"], listed[0]["version"], listed[0]["description"]) == ("support", 2, "edited")

    # an invalid file on SIGHUP: logged, nothing changed, the process keeps serving
    path.write_text(json.dumps([body(description="x" * 600)]))
    web.proc.signal(signal.SIGHUP)
    wait_for(lambda: "configuration file refused" in web.proc.output())
    assert "[0] (support) description: String should have at most 512 characters" in web.proc.output()
    assert web.get(f"{API}/support", headers=h).json()["version"] == 2
    assert web.proc.popen.poll() is None


def test_an_invalid_file_stops_the_start_with_the_problem(redis_url, tmp_path):
    from tests.procs import Proc, free_port
    from tests.web_fixtures import web_env

    path = tmp_path / "configs.yaml"
    path.write_text("- id: support\n  displayName: Support\n  description: ''\n"
                    "  conversationGroupingType: GROUP_BY_MOOD\n")
    port = free_port()
    proc = Proc(["web", "--port", str(port)], web_env(redis_url, THREADLINE_CONFIG=str(path)))
    try:
        assert proc.popen.wait(20) != 0
        assert "[0] (support) conversationGroupingType: Input should be" in proc.output()
    finally:
        if proc.popen.poll() is None:
            proc.stop()


def test_explain_profile_grouping_without_a_known_profile(web: Web):
    h = web.admin_headers()
    web.post(API, json=body(conversationGroupingType="GROUP_BY_PROFILE"), headers=h)
    out = web.post("/api/v1/rules/explain", headers=h, json={"channel": "SMS", "from": KIRAN, "to": US}).json()
    [m] = out["matches"]
    assert m["groupingKey"] is None and m["profile"]["id"] is None
    assert "at capture time" in m["profile"]["source"]


def test_explain_profile_grouping_falls_back_to_addresses_without_an_identifier(web: Web):
    """A client: customer has no Memory identifier: delivery groups it by addresses, and
    explain says so with the key delivery would use."""
    h = web.admin_headers()
    web.post(API, json=body(conversationGroupingType="GROUP_BY_PROFILE", memoryStoreId="mem_store_1",
                            channelSettings={"VOICE": {"captureRules": [
                                {"from": "client:kiran", "to": US, "metadata": {"callType": "CLIENT"}}]}},
                            participantTypes={US: "AI_AGENT"}), headers=h)
    out = web.post("/api/v1/rules/explain", headers=h,
                   json={"channel": "VOICE", "from": "client:kiran", "to": US}).json()
    [m] = out["matches"]
    assert out["callType"] == "CLIENT"
    assert m["account"] == {"address": US, "participantType": "AI_AGENT"}
    assert m["profile"]["id"] is None and "grouped by addresses" in m["profile"]["source"]
    assert m["groupingKey"] == f"addr|{US}|client:kiran"
    assert m["conversation"]["action"] == "create"


def test_sighup_without_a_file_is_logged_not_fatal(web: Web):
    web.proc.signal(signal.SIGHUP)
    wait_for(lambda: "no THREADLINE_CONFIG to reload" in web.proc.output())
    assert web.proc.popen.poll() is None
    assert web.get("/healthz").status_code == 200


def test_a_write_answers_with_the_warnings_it_causes(web: Web):
    h = web.admin_headers()
    web.post(API, json=body(), headers=h)
    r = web.post(API, json=body("all", displayName="All", channelSettings={
        "SMS": {"captureRules": [{"from": "*", "to": "*"}]}}), headers=h)
    assert r.status_code == 201
    warnings = r.json()["warnings"]
    assert any(w.startswith("all: channelSettings.SMS.captureRules[0]: both sides are '*'") for w in warnings)
    assert any(w.startswith("support and all: both capture SMS traffic") for w in warnings)
    # the warnings field sent back with a PUT is ignored like the other read-only fields
    again = web.client.put(f"{API}/all", json=r.json(), headers=h)
    assert again.status_code == 200 and again.json()["version"] == 1


def _bridged(id_: str, service: str) -> dict:
    return {"id": id_, "displayName": id_, "description": "", "conversationGroupingType": "GROUP_BY_PROFILE",
            "conversationsV1Bridge": {"serviceId": service}}


def test_concurrent_creates_bridging_one_classic_service_let_exactly_one_through(start_web, redis_client):
    """Two web processes, eight clients each on a warm connection, released at once: requests
    racing past the admin API's own early check (read the live configurations, then write) still
    cannot both bridge the service — the store's one Lua script reads and writes atomically."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    webs: list[Web] = [start_web(), start_web()]
    service = "IS" + "7" * 32
    headers = webs[0].admin_headers()
    n = 16
    clients = [httpx.Client(base_url=webs[i % 2].url, timeout=30) for i in range(n)]
    try:
        for c in clients:
            assert c.get(API, headers=headers).status_code == 200  # connected before the race
        for attempt in range(12):  # several rounds: exactly one through in all of them together
            gate = threading.Barrier(n)

            def create(i: int, attempt: int = attempt, gate: threading.Barrier = gate) -> httpx.Response:
                gate.wait()
                return clients[i].post(API, json=_bridged(f"chat{attempt}-{i}", service), headers=headers)

            with ThreadPoolExecutor(n) as pool:
                answers = list(pool.map(create, range(n)))
            for r in answers:
                assert r.status_code in (201, 422), r.text
                if r.status_code == 422:
                    assert "one configuration per classic service" in r.json()["problems"][0]
            bridging = [vc.id for vc in ConfigStore(redis_client).current()
                        if vc.config.conversationsV1Bridge is not None]
            assert len(bridging) == 1, bridging
    finally:
        for c in clients:
            c.close()


def test_the_store_refuses_a_second_bridge_of_a_service_and_frees_it_on_change_or_delete(redis_client):
    from workers.capture.configuration import parse_configuration
    from workers.capture.store import BridgeTaken

    store = ConfigStore(redis_client)
    one, two = "IS" + "1" * 32, "IS" + "2" * 32
    store.put(parse_configuration(_bridged("a", one)))
    with pytest.raises(BridgeTaken) as refused:
        store.put(parse_configuration(_bridged("b", one)))
    assert refused.value.holder == "a" and refused.value.service == one
    assert "'a'" in refused.value.problems[0] and "'b'" in refused.value.problems[0]
    store.put(parse_configuration({**_bridged("a", one), "displayName": "renamed"}))  # its own: fine
    store.put(parse_configuration(_bridged("a", two)))        # a moves: one is free
    store.put(parse_configuration(_bridged("b", one)))
    with pytest.raises(BridgeTaken):
        store.put(parse_configuration(_bridged("c", two)))
    assert store.delete("a")
    store.put(parse_configuration(_bridged("c", two)))        # freed by the delete
    # A file load may move a bridge between two of its configurations in one write.
    result = store.apply_file([parse_configuration(_bridged("f1", "IS" + "3" * 32))])
    assert result.versions
    store.apply_file([parse_configuration(_bridged("f1", "IS" + "4" * 32)),
                      parse_configuration(_bridged("f2", "IS" + "3" * 32))])
    with pytest.raises(BridgeTaken):
        store.apply_file([parse_configuration(_bridged("f3", one))])  # b (the API's) holds it
