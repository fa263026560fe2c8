"""Memory v1 profiles and lookups, the Messages API fetch, and the control API's reports."""
from __future__ import annotations

import httpx

from tests.twin_fixtures import TwinHandle

PHONE = "+13175556789"
SECOND_PHONE = "+13175550000"


def test_profile_with_several_identifiers_is_found_by_each(twin: TwinHandle) -> None:
    store = twin.create_memory_store()
    assert store.startswith("mem_store_")
    profile = twin.create_profile(store, phone=[PHONE, SECOND_PHONE],
                                  whatsapp="whatsapp:" + PHONE)
    other = twin.create_profile(store, phone="+14155550100")
    assert profile.startswith("mem_profile_") and other != profile
    with twin.http() as http:
        def lookup(id_type: str, value: str) -> dict:
            r = http.post(f"/v1/Stores/{store}/Profiles/Lookup",
                          json={"idType": id_type, "value": value})
            assert r.status_code == 200, r.text
            return r.json()

        assert lookup("phone", "1-317-555-6789") == {"normalizedValue": PHONE,
                                                      "profiles": [profile]}
        assert lookup("phone", SECOND_PHONE)["profiles"] == [profile]
        assert lookup("whatsapp", "whatsapp:" + PHONE)["profiles"] == [profile]
        assert lookup("phone", "+19999999999")["profiles"] == []
        identifiers = http.get(f"/v1/Stores/{store}/Profiles/{profile}/Identifiers").json()
        assert {"idType": "phone", "values": [PHONE, SECOND_PHONE]} in identifiers["identifiers"]
        again = http.post(f"/v1/Stores/{store}/Profiles",
                          json={"traits": {"Contact": {"phone": PHONE, "firstName": "Kiran"}}})
        assert again.status_code == 202 and again.json()["id"] == profile  # resolved, not new
        fetched = http.get(f"/v1/Stores/{store}/Profiles/{profile}").json()
        assert fetched["id"] == profile and fetched["traits"] == {"Contact": {"phone": PHONE}}


def test_memory_refusals(twin: TwinHandle) -> None:
    store = twin.create_memory_store()
    unknown = "mem_store_00000000000000000000000000"
    with twin.http() as http:
        r = http.post(f"/v1/Stores/{unknown}/Profiles/Lookup",
                      json={"idType": "phone", "value": PHONE})
        assert r.status_code == 404 and set(r.json()) == {"code", "message", "more_info", "status"}
        r = http.post(f"/v1/Stores/{store}/Profiles/Lookup",
                      json={"idType": "phone", "value": PHONE, "extra": 1})
        assert r.status_code == 400 and "extra" in r.json()["message"]
        r = http.post(f"/v1/Stores/{store}/Profiles/Lookup", json={"idType": "p", "value": PHONE})
        assert r.status_code == 400 and "idType" in r.json()["message"]
        r = http.post(f"/v1/Stores/{store}/Profiles", json={"traits": {"Contact": {"x": "y"}}})
        assert r.status_code == 400 and "traits" in r.json()["message"]
        r = http.get(f"/v1/Stores/{store}/Profiles/mem_profile_00000000000000000000000000")
        assert r.status_code == 404


def test_seeded_message_is_served_like_twilio(twin: TwinHandle) -> None:
    seeded = twin.seed_message("+18005550100", "+14155550123", "Your order shipped",
                               status="sent")
    sid = seeded["sid"]
    assert sid.startswith("SM") and len(sid) == 34
    message = twin.client().messages(sid).fetch()  # the stock client, rebased onto the twin
    assert message.body == "Your order shipped"
    assert message.from_ == "+18005550100" and message.to == "+14155550123"
    assert message.status == "sent" and message.account_sid == twin.account_sid
    with twin.http() as http:
        other_account = "AC" + "1" * 32
        r = http.get(f"/2010-04-01/Accounts/{other_account}/Messages/{sid}.json")
        assert r.status_code == 404 and r.json()["code"] == 20404
    sub = twin.seed_message("+18005550100", "+14155550123", "sub", account_sid=twin.subaccount_sid)
    with twin.http(auth=(twin.subaccount_sid, twin.subaccount_token)) as http:
        r = http.get(f"/2010-04-01/Accounts/{twin.subaccount_sid}/Messages/{sub['sid']}.json")
        assert r.status_code == 200 and r.json()["body"] == "sub"
    with httpx.Client(base_url=twin.base_url) as control:
        bad = control.post("/_twin/messages", json={"to": "+1", "body": "no from"})
        assert bad.status_code == 400 and "from" in bad.json()["message"]


def test_reset_empties_state_and_counts(twin: TwinHandle) -> None:
    twin.create_configuration()
    twin.seed_message("+18005550100", "+14155550123", "x")
    assert twin.counts()["total"] >= 2
    twin.set_faults(latency_ms=5)
    twin.reset()
    state = twin.state()
    assert state["configurations"] == [] and state["messages"] == []
    assert twin.counts() == {"total": 0, "routes": {}}
    with httpx.Client(base_url=twin.base_url) as control:
        assert control.get("/_twin/faults").json()["latency_ms"] == 0
