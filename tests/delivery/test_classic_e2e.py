"""The classic bridge end to end: the twin plays a Conversations (classic) service whose
post-event webhooks reach a real ``threadline web``; a real ``threadline worker`` delivers them
into the twin's v2. Nothing here is a canned delivery: the twin signs every webhook itself.

The web runs without THREADLINE_PUBLIC_URL and trusts its loopback peer's Host
(THREADLINE_TRUSTED_PROXIES=127.0.0.1), so it checks signatures over the URL the twin called.
"""
from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

from tests.conftest import AUTH_TOKEN
from tests.worker_fixtures import SHARDS, Pipeline
from workers.foundations import keys

FILTERS = ["onConversationAdded", "onConversationUpdated", "onConversationStateUpdated",
           "onConversationRemoved", "onParticipantAdded", "onParticipantRemoved",
           "onMessageAdded", "onMessageUpdated", "onMessageRemoved"]
HOOKED = {"X-Twilio-Webhook-Enabled": "true"}




class Classic:
    """A test's hands on the twin's classic service (the REST API, as an application calls it)."""

    def __init__(self, twin: Any) -> None:
        self.twin = twin
        self.http: httpx.Client = twin.http()
        self.service = self._post("/v1/Services", {"FriendlyName": "support chat"})["sid"]

    def _post(self, path: str, form: dict[str, Any], hooked: bool = True) -> dict[str, Any]:
        r = self.http.post(path, content=urlencode(form, doseq=True),
                           headers={"Content-Type": "application/x-www-form-urlencoded",
                                    **(HOOKED if hooked else {})})
        assert r.status_code in (200, 201), r.text
        return r.json()

    def hook(self, url: str) -> None:
        self._post(f"/v1/Services/{self.service}/Configuration/Webhooks",
                   {"PostWebhookUrl": url, "Filters": FILTERS, "Method": "POST"})

    def conversation(self) -> str:
        return self._post(f"/v1/Services/{self.service}/Conversations", {"FriendlyName": "chat"})["sid"]

    def _c(self, ch: str) -> str:
        return f"/v1/Services/{self.service}/Conversations/{ch}"

    def join(self, ch: str, identity: str) -> None:
        self._post(self._c(ch) + "/Participants", {"Identity": identity})

    def say(self, ch: str, body: str, author: str | None = None, hooked: bool = True) -> str:
        form = {"Body": body, **({"Author": author} if author else {})}
        return self._post(self._c(ch) + "/Messages", form, hooked)["sid"]

    def user_says(self, ch: str, identity: str, body: str) -> str:
        """A chat user writes through the SDK: webhooks always fire."""
        r = httpx.post(self.twin.base_url + "/_twin/simulate/classic/message",
                       json={"service": self.service, "conversation": ch, "author": identity,
                             "body": body})
        assert r.status_code == 201, r.text
        return r.json()["sid"]

    def edit(self, ch: str, sid: str, body: str) -> None:
        self._post(self._c(ch) + f"/Messages/{sid}", {"Body": body})

    def remove(self, ch: str, sid: str) -> None:
        assert self.http.delete(self._c(ch) + f"/Messages/{sid}", headers=HOOKED).status_code == 204

    def state(self, ch: str, state: str) -> None:
        self._post(self._c(ch), {"State": state})

    def messages(self, ch: str) -> list[dict[str, Any]]:
        return self.http.get(self._c(ch) + "/Messages").json()["messages"]

    def drained(self) -> list[dict[str, Any]]:
        """Every classic webhook the twin sent so far (once its queues are empty)."""
        httpx.post(self.twin.base_url + "/_twin/classic/drained", timeout=30).raise_for_status()
        return [d for d in self.twin.state()["deliveries"] if d["kind"] == "classic"]


def _resend(p: Pipeline, deliveries: list[dict[str, Any]]) -> None:
    """Send every webhook again, exactly as the twin did (Twilio retries; the same event may
    come from Event Streams too): each must be taken as a duplicate."""
    validator = RequestValidator(AUTH_TOKEN)
    for d in deliveries:
        params = d["params"]
        r = httpx.post(d["url"], content=urlencode(params),
                       headers={"Content-Type": "application/x-www-form-urlencoded",
                                "X-Twilio-Signature": validator.compute_signature(d["url"], params)})
        assert r.status_code == 200, r.text


def _wait(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _by_channel_id(p: Pipeline) -> dict[str, dict[str, Any]]:
    out = {}
    for conv in p.twin.conversations():
        ids = {a.get("channelId") for part in conv["participants"] for a in part["addresses"]}
        assert len(ids) == 1, conv["participants"]
        out[ids.pop()] = conv
    return out


def test_a_classic_service_becomes_v2_conversations(live: Pipeline) -> None:
    p = live
    chat = Classic(p.twin)
    chat.hook(p.web.url + "/webhooks/twilio/conversations")
    p.configure("chat", channels=(), conversationsV1Bridge={"serviceId": chat.service},
                participantTypes={"chat:agent-kim": "HUMAN_AGENT"})
    p.start_worker()

    a, b = chat.conversation(), chat.conversation()
    chat.join(a, "alice")
    chat.join(b, "bob")
    a1 = chat.user_says(a, "alice", "Hi, my parcel is late")
    a2 = chat.say(a, "Sorry to hear that, checking now")           # the service's own: system
    a3 = chat.user_says(a, "alice", "Order 1234")
    a4 = chat.say(a, "It ships tomorrow", author="agent-kim")
    a5 = chat.user_says(a, "alice", "oops, wrong chat")
    silent = chat.say(a, "Sent by the app without the header", hooked=False)
    a6 = chat.user_says(a, "alice", "Thanks!")
    b1 = chat.user_says(b, "bob", "Can I change my address?")
    b2 = chat.say(b, "Yes, what is the new one?")
    b3 = chat.user_says(b, "bob", "12 High Street")
    b4 = chat.say(b, "Done")
    b5 = chat.user_says(b, "bob", "Bye")
    chat.edit(a, a4, "It ships tomorrow morning")
    chat.remove(a, a5)
    chat.state(b, "closed")

    sent = chat.drained()
    assert all(d.get("status") == 200 for d in sent), sent
    # 2 conversations added, 2 participants, 11 messages with webhooks, 1 update, 1 removal,
    # 2 for the close (updated + state updated); the message sent without the header: none.
    assert len(sent) == 2 + 2 + 11 + 1 + 1 + 2
    p.wait_idle()
    _resend(p, sent)
    p.wait_idle()
    assert p.counter("webhooks|classic|duplicate") == len(sent)
    assert p.counter("webhooks|classic|accepted") == len(sent)

    convs = _by_channel_id(p)
    assert set(convs) == {a, b}
    ca, cb = convs[a], convs[b]
    assert (ca["status"], cb["status"]) == ("ACTIVE", "CLOSED")
    types = {(x["addresses"][0]["address"], x["type"]) for x in ca["participants"]}
    assert types == {("alice", "CUSTOMER"), ("system", "AGENT"), ("agent-kim", "HUMAN_AGENT")}
    assert all(x["addresses"][0]["channel"] == "CHAT" for x in ca["participants"])

    texts_a = {c["resourceId"]: c["content"]["text"] for c in ca["communications"]}
    # The removed message stays (v2 has no delete: counted); the silent one was never seen.
    assert set(texts_a) == {a1, a2, a3, a4, a5, a6}
    assert silent not in texts_a
    assert texts_a[a4] == "It ships tomorrow morning"
    assert len(ca["communications"]) == 6
    assert {c["resourceId"] for c in cb["communications"]} == {b1, b2, b3, b4, b5}
    authors = {c["resourceId"]: c["author"]["address"] for c in ca["communications"]}
    assert (authors[a1], authors[a2], authors[a4]) == ("alice", "system", "agent-kim")
    assert all(c["author"]["channel"] == "CHAT" and c["channelId"] == a for c in ca["communications"])

    assert p.counter("classic|onMessageRemoved|left") == 1
    assert p.counter("classic|onMessageUpdated|posted") == 1
    assert p.counter("conversations_closed|chat|classic") == 1
    assert p.dead_letters() == []

    # Both directions: a reply through threadline reaches classic and is in v2 once.
    reply = p.web.post(f"/api/v1/conversations/{ca['id']}/communications",
                       json={"author": "agent-kim", "body": "Anything else?"},
                       headers=p.web.admin_headers())
    assert reply.status_code == 201, reply.text
    im = reply.json()["messageSid"]
    assert [m["author"] for m in chat.messages(a) if m["sid"] == im] == ["agent-kim"]
    echo = [d for d in chat.drained() if d["params"].get("MessageSid") == im]
    assert [d["params"]["EventType"] for d in echo] == ["onMessageAdded"]
    p.wait_idle()
    ca = _by_channel_id(p)[a]
    assert [c["resourceId"] for c in ca["communications"]].count(im) == 1
    assert len(ca["communications"]) == 7
    assert p.twin.count("POST /v2/Conversations/{ConversationId}/Communications", 201) == 11 + 1 + 1
    closed = p.web.post(f"/api/v1/conversations/{cb['id']}/communications",
                        json={"author": "agent-kim", "body": "Hello?"}, headers=p.web.admin_headers())
    assert closed.status_code == 409
    url = f"/api/v1/conversations/{ca['id']}/communications"
    for bad in ({"author": "agent-kim"}, {"author": "", "body": "x"}, {"author": "k", "body": "x" * 1601}):
        assert p.web.post(url, json=bad, headers=p.web.admin_headers()).status_code == 400
    assert p.web.post("/api/v1/conversations/tlc_nope/communications", json={"author": "k", "body": "x"},
                      headers=p.web.admin_headers()).status_code == 404
    assert p.dead_letters() == []


def _post(p: Pipeline, **params: str) -> httpx.Response:
    """A classic post-event, signed as Twilio signs it for the URL it calls."""
    url = p.web.url + "/webhooks/twilio/conversations"
    form = {"AccountSid": p.twin.account_sid, "RetryCount": "0", **params}
    return httpx.post(url, content=urlencode(form), headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(url, form)})


def test_bad_input_is_counted_dead_lettered_where_replay_helps_never_a_500(live: Pipeline) -> None:
    p = live
    chat = Classic(p.twin)
    chat.hook(p.web.url + "/webhooks/twilio/conversations")
    p.start_worker()
    a = chat.conversation()
    early = chat.user_says(a, "alice", "anyone there?")  # no configuration bridges the service yet
    assert all(d["status"] == 200 for d in chat.drained())
    p.wait_idle()
    letters = p.dead_letters()
    assert {d["reason"] for d in letters} == {"classic_unbridged"} and len(letters) == 2
    assert p.counter("events|-|CHAT|unbridged") == 2
    assert p.twin.conversations() == []

    # One configuration per classic service: a second one is refused, naming both.
    h = p.web.admin_headers()
    p.configure("chat", channels=(), conversationsV1Bridge={"serviceId": chat.service})
    second = {"id": "chat2", "displayName": "chat2", "description": "",
              "conversationGroupingType": "GROUP_BY_PROFILE",
              "conversationsV1Bridge": {"serviceId": chat.service}}
    r = p.web.post("/api/v1/configurations", json=second, headers=h)
    assert r.status_code == 422 and "'chat'" in r.json()["problems"][0] and "'chat2'" in r.json()["problems"][0]

    # Replay helps once the bridge exists: the early events arrive in order.
    for d in p.web.get("/api/v1/dead-letters", headers=h).json()["deadLetters"]:
        assert p.web.post(f"/api/v1/dead-letters/{d['id']}/replay", headers=h).status_code == 200
    p.wait_idle()
    [conv] = p.twin.conversations()
    assert [c["resourceId"] for c in conv["communications"]] == [early]

    # Out of order: an update before its add; the add, older, does not undo it.
    im = "IM" + "e" * 32
    base = {"ChatServiceSid": chat.service, "ConversationSid": a, "MessageSid": im, "Index": "5",
            "Author": "alice", "DateCreated": "2026-03-02T15:04:00.000Z", "Source": "SDK"}
    assert _post(p, EventType="onMessageUpdated", Body="edited",
                 DateUpdated="2026-03-02T15:05:00.000Z", **base).status_code == 200
    assert _post(p, EventType="onMessageAdded", Body="original", **base).status_code == 200
    p.wait_idle()
    [conv] = p.twin.conversations()
    assert {c["resourceId"]: c["content"]["text"] for c in conv["communications"]}[im] == "edited"
    assert p.counter("classic|onMessageAdded|stale") == 1

    # A removed conversation: closed in v2, later events for it counted and left.
    assert chat.http.delete(chat._c(a), headers=HOOKED).status_code == 204
    chat.drained()
    p.wait_idle()
    assert _post(p, EventType="onMessageAdded", Body="late", **{**base, "MessageSid": "IM" + "f" * 32}
                 ).status_code == 200
    p.wait_idle()
    [conv] = p.twin.conversations()
    assert conv["status"] == "CLOSED" and len(conv["communications"]) == 2
    assert p.counter("classic|onConversationRemoved|closed") == 1
    assert p.counter("classic|onMessageAdded|after_removed") == 1

    # Unreadable and unsigned deliveries: 4xx at the door or a dead letter with a reason.
    assert _post(p, EventType="onMessageAdded", ChatServiceSid=chat.service).status_code == 400
    assert httpx.post(p.web.url + "/webhooks/twilio/conversations", data={"EventType": "x"}).status_code == 403
    assert _post(p, EventType="onMessageAdded", ChatServiceSid="nope", ConversationSid=a,
                 MessageSid=im).status_code == 200
    assert _post(p, EventType="onUserAdded", ChatServiceSid=chat.service, ConversationSid=a).status_code == 200
    p.wait_idle()
    assert [d["reason"] for d in p.dead_letters()] == ["classic_bad_sid"]
    assert p.counter("events|-|classic|ignored") == 1


def test_group_by_profile_other_channels_join_the_bridged_conversation(live: Pipeline) -> None:
    """Bridge chat, capture SMS, GROUP_BY_PROFILE: the customer's SMS joins the chat's
    conversation when Memory has one profile for the chat identity and the phone number."""
    from tests.web_fixtures import inbound_message, post_signed
    from tests.worker_fixtures import OURS

    p = live
    store = p.twin.create_memory_store()
    p.twin.create_profile(store, phone="+14155550123", email="alice@example.com")
    chat = Classic(p.twin)
    chat.hook(p.web.url + "/webhooks/twilio/conversations")
    p.configure("chat", grouping="GROUP_BY_PROFILE", channels=("SMS",), memoryStoreId=store,
                conversationsV1Bridge={"serviceId": chat.service})
    p.start_worker()
    a = chat.conversation()
    chat.join(a, "alice@example.com")
    said = chat.user_says(a, "alice@example.com", "Hi from the app")
    chat.drained()
    p.wait_idle()
    web = p.start_web(THREADLINE_SHARDS=str(SHARDS), **p.twin.env())  # signed for the public URL
    sms = inbound_message("+14155550123", OURS, "and from my phone")
    assert post_signed(web, "/webhooks/twilio/messaging", sms).status_code == 200
    p.wait_idle()
    [conv] = p.twin.conversations()
    assert {c["resourceId"] for c in conv["communications"]} == {said, sms["MessageSid"]}
    customers = [x for x in conv["participants"] if x["type"] == "CUSTOMER"]
    channels = sorted(a["channel"] for x in customers for a in x["addresses"])
    assert channels == ["CHAT", "SMS"]
    [alice] = [x for x in customers if x["addresses"][0]["channel"] == "CHAT"]
    assert alice.get("profileId")  # the Memory profile the chat identity resolved to
    # classic decides its state: the SMS that joined armed no statusTimeouts timer
    assert p.redis.zscore(keys.TIMERS, conv["metadata"]["threadlineConversation"]) is None
    assert p.dead_letters() == []


def _cloud_event(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"specversion": "1.0", "type": f"com.twilio.conversations.{kind}",
            "source": "AB00000000000000000000000001", "id": "NO" + uuid.uuid4().hex,
            "datacontenttype": "application/json", "data": data}


def test_event_streams_is_a_second_source_deduplicated_with_the_webhook(pipeline: Pipeline) -> None:
    """A message the application posts through REST without X-Twilio-Webhook-Enabled fires no
    webhook; Event Streams carries it (without ChatServiceSid: the worker finds the service).
    The same change from both sources is one event."""
    from tests.web_fixtures import post_events, post_signed

    p = pipeline
    chat = Classic(p.twin)
    p.configure("chat", channels=(), conversationsV1Bridge={"serviceId": chat.service})
    p.start_worker()
    a = chat.conversation()
    silent = chat.say(a, "posted by the app without the header", hooked=False)
    [msg] = [m for m in chat.messages(a) if m["sid"] == silent]
    data = {"AccountSid": p.twin.account_sid, "ConversationSid": a, "MessageSid": silent,
            "Index": msg["index"], "Author": "system", "MessageBody": msg["body"],
            "DateCreated": msg["date_created"], "ParticipantSid": None}
    added = _cloud_event("message.added", data)
    assert post_events(p.web, [added, _cloud_event("message.added", data)]).status_code == 200
    # ... and the same change as the service's webhook would post it (had it been enabled)
    form = {"AccountSid": p.twin.account_sid, "ChatServiceSid": chat.service, "EventType": "onMessageAdded",
            "ConversationSid": a, "MessageSid": silent, "Index": str(msg["index"]), "Author": "system",
            "Body": msg["body"], "DateCreated": msg["date_created"], "Source": "API"}
    assert post_signed(p.web, "/webhooks/twilio/conversations", form).status_code == 200
    p.wait_idle()
    [conv] = p.twin.conversations()
    assert [c["resourceId"] for c in conv["communications"]] == [silent]
    assert conv["communications"][0]["content"]["text"] == msg["body"]
    assert p.counter("webhooks|classic|duplicate") + p.counter("webhooks|event_streams|duplicate") == 2
    assert p.twin.count("GET /v1/Services/{ChatServiceSid}/Conversations/{Sid}", 200) == 1

    # Event Streams is account-wide: a conversation of a service no configuration bridges is
    # counted and left (a service's own webhook for it would be dead-lettered: it asked for it).
    stranger = _cloud_event("message.added", {**data, "ConversationSid": "CH" + "9" * 32,
                                               "MessageSid": "IM" + "9" * 32})
    assert post_events(p.web, [stranger]).status_code == 200
    p.wait_idle()
    assert p.counter("events|-|CHAT|unbridged") == 1 and p.dead_letters() == []


ES_TYPES = [f"com.twilio.conversations.{t}" for t in (
    "conversation.added", "conversation.updated", "conversation.removed", "conversation-state.updated",
    "participant.added", "participant.removed", "message.added", "message.updated", "message.removed")]


def test_the_twin_feeds_both_sources_and_v2_holds_every_message_once(live: Pipeline) -> None:
    """The service webhook and an Event Streams sink, both from the twin: the REST message sent
    without the header reaches v2 through Event Streams only; every other change arrives twice
    (once per source) and is applied once."""
    p = live
    chat = Classic(p.twin)
    chat.hook(p.web.url + "/webhooks/twilio/conversations")
    p.twin.create_sink(p.web.url + "/webhooks/twilio/events", ES_TYPES)
    p.configure("chat", channels=(), conversationsV1Bridge={"serviceId": chat.service})
    p.start_worker()
    a = chat.conversation()
    chat.join(a, "alice")
    hello = chat.user_says(a, "alice", "hello")
    silent = chat.say(a, "from the app, no header", hooked=False)
    chat.edit(a, hello, "hello!")
    chat.drained()
    events = p.twin.deliveries("event_streams")
    assert all(d.get("status") == 200 for d in events) and len(events) == 5
    assert len(chat.drained()) == 4  # the silent message has no webhook
    p.wait_idle()
    [conv] = p.twin.conversations()
    texts = {c["resourceId"]: c["content"]["text"] for c in conv["communications"]}
    assert texts == {hello: "hello!", silent: "from the app, no header"}
    assert p.counter("webhooks|classic|duplicate") + p.counter("webhooks|event_streams|duplicate") == 4
    assert p.dead_letters() == []
