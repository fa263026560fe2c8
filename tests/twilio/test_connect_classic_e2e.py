"""`threadline connect` / `disconnect` and the classic bridge, against the twin playing Twilio.

``connect`` (either mode) points every bridged classic service's post-event webhook at
threadline, recording what was there, and its Event Streams sink also subscribes to the classic
``com.twilio.conversations.*`` events — which carry what the service's webhook does not: a
message the application sends through the REST API without ``X-Twilio-Webhook-Enabled``.
``disconnect`` gives each service its webhook configuration back; a service that had no
post-event URL gets it cleared (an empty ``PostWebhookUrl``).
"""
from __future__ import annotations

from urllib.parse import parse_qs

from tests.delivery.test_classic_e2e import Classic
from tests.twilio.test_connect_e2e import sent_by_threadline, threadline
from tests.worker_fixtures import Pipeline
from workers.foundations import keys
from workers.parse.classic import EVENTS
from workers.twilio.sinks import CLASSIC_EVENT_TYPES, EVENT_TYPES

APP_HOOK = "https://app.example.com/chat-events"
PATH = "/webhooks/twilio/conversations"


def _hooks(chat: Classic) -> dict:
    return chat.http.get(f"/v1/Services/{chat.service}/Configuration/Webhooks").json()


def test_connect_takes_the_bridged_services_and_disconnect_gives_them_back(live: Pipeline) -> None:
    p = live
    had = Classic(p.twin)  # the application's own post-event webhook
    had._post(f"/v1/Services/{had.service}/Configuration/Webhooks",
              {"PostWebhookUrl": APP_HOOK, "Method": "GET", "Filters": ["onMessageAdded"]})
    bare = Classic(p.twin)  # no post-event webhook at all
    before = threadline(p, "connect")  # before any bridge: no classic types, no service touched
    assert before.returncode == 0, before.stderr
    [sub] = p.twin.state()["subscriptions"]
    assert {(t["type"], t["schema_version"]) for t in sub["types"]} == set(EVENT_TYPES)
    assert "classic service" not in before.stdout
    p.configure("chat", channels=(), conversationsV1Bridge={"serviceId": had.service})
    p.configure("chat2", channels=(), conversationsV1Bridge={"serviceId": bare.service})
    p.start_worker()

    dry = threadline(p, "connect", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would point classic service {had.service}'s post-event webhook at {p.web.url}{PATH}" in dry.stdout
    assert _hooks(had)["post_webhook_url"] == APP_HOOK

    done = threadline(p, "connect")
    assert done.returncode == 0, done.stderr
    assert f"did delete subscription {sub['sid']} (its event types differ)" in done.stdout
    assert f"did point classic service {had.service}'s post-event webhook at {p.web.url}{PATH} (replaced)" in done.stdout
    assert f"did point classic service {bare.service}'s post-event webhook at {p.web.url}{PATH} (set)" in done.stdout
    for chat in (had, bare):
        hooks = _hooks(chat)
        assert hooks["post_webhook_url"] == p.web.url + PATH and hooks["method"] == "POST"
        assert set(EVENTS) <= set(hooks["filters"])
    [sub] = p.twin.state()["subscriptions"]
    assert {(t["type"], t["schema_version"]) for t in sub["types"]} == set(EVENT_TYPES + CLASSIC_EVENT_TYPES)
    assert sent_by_threadline(p, "POST", "/Configuration/Webhooks")  # checked against the classic spec
    again = threadline(p, "connect")
    assert again.returncode == 0 and "nothing to change" in again.stdout
    assert f"classic service {had.service}'s post-event webhook already points at threadline" in again.stdout

    # The application posts through the REST API without X-Twilio-Webhook-Enabled: no webhook,
    # but Event Streams carries it, and the bridge takes it from there.
    ch = had.conversation()
    silent = had.say(ch, "sent by the app, no webhook", hooked=False)
    had.drained()
    p.twin.wait_for(lambda st: any(d["kind"] == "event_streams" and d.get("status") == 200
                                   and "message.added" in (d.get("body") or "") for d in st["deliveries"]))
    p.wait_idle()
    comms = [c for conv in p.twin.conversations() for c in conv["communications"]]
    assert [c["resourceId"] for c in comms] == [silent]

    undone = threadline(p, "disconnect")
    assert undone.returncode == 0, undone.stderr
    restored = _hooks(had)
    assert (restored["post_webhook_url"], restored["method"], restored["filters"]) == (
        APP_HOOK, "GET", ["onMessageAdded"])
    assert _hooks(bare)["post_webhook_url"] is None  # cleared: it had none
    cleared = sent_by_threadline(p, "POST", f"/Services/{bare.service}/Configuration/Webhooks")
    assert parse_qs(cleared[-1]["body_text"], keep_blank_values=True)["PostWebhookUrl"] == [""]
    assert p.twin.state()["sinks"] == []
    assert p.redis.exists(keys.classic_webhooks_saved(had.service), keys.classic_webhooks_saved(bare.service)) == 0
