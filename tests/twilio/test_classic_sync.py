"""``threadline configs sync`` points a bridged classic service's post-event webhook at
threadline, recording what was there; ``threadline configs unsync`` (what ``disconnect`` calls)
puts it back. Against the twin over HTTP, the configurations in real Redis."""
from __future__ import annotations

import os
import subprocess
from urllib.parse import urlencode

from tests.procs import THREADLINE
from tests.twilio.test_sync import STORE_ID, put
from workers.foundations import keys
from workers.parse.classic import EVENTS

PUBLIC = "https://capture.example.com"
APP_HOOK = "https://app.example.com/chat-events"


def cli(twin, redis_url: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "REDIS_URL": redis_url,
            "THREADLINE_RETRY_BASE_SECONDS": "0.02", **twin.env(), **env}
    return subprocess.run([THREADLINE, "configs", *args], env=full, capture_output=True,
                          text=True, timeout=45)


def test_sync_takes_the_service_webhook_and_unsync_gives_it_back(twin, redis_url, redis_client):
    with twin.http() as http:
        service = http.post("/v1/Services", data={"FriendlyName": "chat"}).json()["sid"]
        hooks = f"/v1/Services/{service}/Configuration/Webhooks"
        http.post(hooks, content=urlencode({"PostWebhookUrl": APP_HOOK, "Method": "GET",
                                            "Filters": "onMessageAdded"}),
                  headers={"Content-Type": "application/x-www-form-urlencoded"}).raise_for_status()
        put(redis_client, {"id": "chat", "displayName": "chat", "description": "bridge",
                           "conversationGroupingType": "GROUP_BY_PROFILE", "memoryStoreId": STORE_ID,
                           "conversationsV1Bridge": {"serviceId": service}})

        missing = cli(twin, redis_url, "sync")
        assert missing.returncode == 1 and "THREADLINE_PUBLIC_URL is not set" in missing.stdout
        assert http.get(hooks).json()["post_webhook_url"] == APP_HOOK

        first = cli(twin, redis_url, "sync", THREADLINE_PUBLIC_URL=PUBLIC)
        assert first.returncode == 0, first.stderr
        assert f"chat (classic service {service}): webhooks replaced" in first.stdout
        now = http.get(hooks).json()
        assert now["post_webhook_url"] == PUBLIC + "/webhooks/twilio/conversations"
        assert now["method"] == "POST" and sorted(now["filters"]) == sorted(EVENTS)  # no repeat
        again = cli(twin, redis_url, "sync", THREADLINE_PUBLIC_URL=PUBLIC)
        assert f"chat (classic service {service}): webhooks unchanged" in again.stdout
        assert APP_HOOK in redis_client.get(keys.classic_webhooks_saved(service)).decode()

        back = cli(twin, redis_url, "unsync")
        assert back.returncode == 0 and f"classic service {service}: restored" in back.stdout
        restored = http.get(hooks).json()
        assert (restored["post_webhook_url"], restored["method"], restored["filters"]) == (
            APP_HOOK, "GET", ["onMessageAdded"])
        assert redis_client.get(keys.classic_webhooks_saved(service)) is None
        assert "nothing to restore" in cli(twin, redis_url, "unsync").stderr
