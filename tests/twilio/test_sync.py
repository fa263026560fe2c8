"""``threadline configs sync`` against the twin over HTTP, with the configurations in real Redis:
create (POST, Idempotency-Key, operation followed) then PUT then nothing, never captureRules,
refusals named per configuration, FAILED operations and timeouts reported, exit codes."""
from __future__ import annotations

import json
import os
import re
import subprocess
import time

from tests.procs import THREADLINE
from workers.capture.configuration import parse_configuration
from workers.capture.store import ConfigStore
from workers.foundations import keys

STORE_ID = "mem_store_0" + "b" * 25
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def config(config_id: str, **fields) -> dict:
    return {
        "id": config_id, "displayName": f"cfg {config_id}", "description": "support line",
        "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES",
        "memoryStoreId": STORE_ID,
        "channelSettings": {
            "SMS": {"statusTimeouts": {"inactive": 5, "closed": 30},
                    "captureRules": [{"from": "*", "to": "+14155550100"}]},
            "VOICE": {"captureRules": [{"from": "+14155550100", "to": "*"}]},
        },
        **fields,
    }


def put(redis_client, data: dict) -> None:
    ConfigStore(redis_client).put(parse_configuration({k: v for k, v in data.items()
                                                       if v is not None}))


def sync(twin, redis_url: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "REDIS_URL": redis_url,
            "THREADLINE_RETRY_BASE_SECONDS": "0.02", **twin.env(), **env}
    return subprocess.run([THREADLINE, "configs", "sync", *args], env=full, capture_output=True,
                          text=True, timeout=45)


def lines(out: subprocess.CompletedProcess) -> dict[str, str]:
    return {line.split(":", 1)[0]: line.split(":", 1)[1].strip()
            for line in out.stdout.splitlines()}


def recorded(twin, since: float, method: str, prefix: str) -> list[dict]:
    entries = map(json.loads, twin.record_path.read_text().splitlines())
    return [e for e in entries if e["ts"] >= since and e["method"] == method
            and e["path"].startswith(prefix)]


def test_sync_creates_then_updates_then_leaves_alone(twin, redis_url, redis_client) -> None:
    put(redis_client, config("support"))
    t0 = time.time()
    out = sync(twin, redis_url)
    assert out.returncode == 0, out.stdout + out.stderr
    got = lines(out)["support"]
    assert got.startswith("created conv_configuration_") and "COMPLETED" in got
    v2_id = got.split()[1]

    remote = twin.state()["configurations"]
    assert [c["id"] for c in remote] == [v2_id]
    assert remote[0]["channelSettings"] == {"SMS": {"statusTimeouts": {"inactive": 5, "closed": 30}},
                                            "VOICE": {}}
    assert remote[0]["memoryStoreId"] == STORE_ID
    (post,) = recorded(twin, t0, "POST", "/v2/ControlPlane/Configurations")
    assert "captureRules" not in json.dumps(post["body"])
    assert UUID.match(post["headers"]["idempotency-key"])
    assert recorded(twin, t0, "GET", "/v2/ControlPlane/Operations/")  # the 202 was followed

    stored = ConfigStore(redis_client).get("support").config
    assert stored.twilioConfigurationId == v2_id
    assert stored.channelSettings.SMS.captureRules  # threadline keeps its rules
    assert redis_client.hget(keys.CONFIG_V2_IDS, "support") == v2_id.encode()

    put(redis_client, {**config("support"), "description": "support line, reworded",
                       "twilioConfigurationId": v2_id})
    t1 = time.time()
    out = sync(twin, redis_url)
    assert out.returncode == 0, out.stdout + out.stderr
    assert lines(out)["support"].startswith(f"updated {v2_id}")
    (put_req,) = recorded(twin, t1, "PUT", f"/v2/ControlPlane/Configurations/{v2_id}")
    assert "captureRules" not in json.dumps(put_req["body"])
    assert UUID.match(put_req["headers"]["idempotency-key"])
    assert twin.state()["configurations"][0]["description"] == "support line, reworded"

    out = sync(twin, redis_url)
    assert out.returncode == 0 and lines(out)["support"] == f"unchanged {v2_id}"
    assert twin.count("POST /v2/ControlPlane/Configurations") == 1
    assert twin.count("PUT /v2/ControlPlane/Configurations/{id}") == 1


def test_refusals_and_failed_operations_are_named_and_exit_nonzero(twin, redis_url, redis_client) -> None:
    foreign = twin.create_configuration(conversationGroupingType="GROUP_BY_PROFILE",
                                        memoryStoreId=STORE_ID)
    put(redis_client, config("nomem", memoryStoreId=None))
    put(redis_client, config("bound-nomem", memoryStoreId=None, twilioConfigurationId=foreign))
    put(redis_client, config("clash", twilioConfigurationId=foreign))  # grouping differs
    put(redis_client, config("fine"))
    out = sync(twin, redis_url)
    assert out.returncode == 1
    got = lines(out)
    assert set(got) == {"nomem", "bound-nomem", "clash", "fine"}
    assert got["nomem"].startswith("failed") and "no memoryStoreId" in got["nomem"]
    assert got["bound-nomem"].startswith(f"kept {foreign}")
    assert got["clash"].startswith(f"failed {foreign}") and "FAILED" in got["clash"]
    assert "conversationGroupingType" in got["clash"]
    assert got["fine"].startswith("created ")
    assert "2 of 4 configuration(s) failed" in out.stderr
    # The failed PUT changed nothing; the refused one sent nothing.
    remote = {c["id"]: c for c in twin.state()["configurations"]}
    assert remote[foreign]["conversationGroupingType"] == "GROUP_BY_PROFILE"
    assert len(remote) == 2
    assert ConfigStore(redis_client).get("nomem").config.twilioConfigurationId is None


def test_only_named_configurations_and_unknown_ids(twin, redis_url, redis_client) -> None:
    put(redis_client, config("a"))
    put(redis_client, config("b"))
    out = sync(twin, redis_url, "b", "ghost")
    assert out.returncode == 1
    got = lines(out)
    assert got["b"].startswith("created") and got["ghost"] == "failed (no such configuration)"
    assert "a" not in got and len(twin.state()["configurations"]) == 1


def test_operation_still_pending_at_the_timeout_fails_clearly(twin, redis_url, redis_client) -> None:
    twin.set_operation_delay(30)
    put(redis_client, config("slow"))
    out = sync(twin, redis_url, "--timeout", "0.5")
    assert out.returncode == 1
    assert "still PENDING after 0.5s" in lines(out)["slow"]


def test_a_held_create_retried_with_its_idempotency_key_makes_one_configuration(
        twin, redis_url, redis_client) -> None:
    # The twin processes the POST but answers only after the client's timeout: the retry
    # carries the same Idempotency-Key, so Twilio answers with the first result.
    twin.set_operation_delay(0)
    from tests.twilio.test_client import seed_for

    twin.set_faults(rate_timeout=0.5, hold_seconds=3, path="^/v2/ControlPlane/Configurations$",
                    seed=seed_for(["hold", None], rate_timeout=0.5))
    put(redis_client, config("once"))
    t0 = time.time()
    out = sync(twin, redis_url, THREADLINE_TWILIO_TIMEOUT="0.5")
    assert out.returncode == 0, out.stdout + out.stderr
    deadline = time.monotonic() + 6
    while len(posts := recorded(twin, t0, "POST", "/v2/ControlPlane/Configurations")) < 2:
        assert time.monotonic() < deadline, posts  # the held answer is recorded when sent
        time.sleep(0.1)
    assert len(posts) == 2
    assert posts[0]["headers"]["idempotency-key"] == posts[1]["headers"]["idempotency-key"]
    assert len(twin.state()["configurations"]) == 1


def test_file_configurations_keep_their_binding_across_reloads(twin, redis_url, redis_client, tmp_path) -> None:
    path = tmp_path / "threadline.yaml"
    path.write_text(json.dumps([config("from-file")]))
    out = sync(twin, redis_url, THREADLINE_CONFIG=str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    v2_id = lines(out)["from-file"].split()[1]
    # The file has no twilioConfigurationId: loading it again drops the field from the
    # configuration, and the recorded binding still stops a second v2 Configuration.
    out = sync(twin, redis_url, THREADLINE_CONFIG=str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert lines(out)["from-file"] == f"unchanged {v2_id}"
    assert len(twin.state()["configurations"]) == 1
    assert ConfigStore(redis_client).get("from-file").config.twilioConfigurationId == v2_id

    path.write_text("- id: broken\n  displayName: x\n")
    out = sync(twin, redis_url, THREADLINE_CONFIG=str(path))
    assert out.returncode == 1 and "nothing synced" in out.stderr and "description" in out.stderr


def test_nothing_to_sync_says_so(twin, redis_url, redis_client) -> None:
    out = sync(twin, redis_url)
    assert out.returncode == 1 and "no configurations to sync" in out.stderr
