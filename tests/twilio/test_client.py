"""The v2 client against the twin over real HTTP: retries, Retry-After, timeouts, refusals,
bodies without nulls, counters in real Redis, configuration writes and their operations."""
from __future__ import annotations

import asyncio
import json
import random

import httpx
import pytest

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN
from workers.foundations import keys
from workers.foundations.redis_conn import connect
from workers.foundations.settings import load_settings
from workers.stats.buffer import StatsBuffer
from workers.twilio.client import USER_AGENT, V2Client, V2Error

STORE_ID = "mem_store_0" + "a" * 25
FAULT_OUTCOMES = ("429", "500", "503", "hold")


def seed_for(outcomes: list[str | None], **rates: float) -> int:
    """A fault seed whose first draws give ``outcomes`` under ``rates`` (the twin's draw rule)."""
    order = [("429", rates.get("rate_429", 0)), ("500", rates.get("rate_500", 0)),
             ("503", rates.get("rate_503", 0)), ("hold", rates.get("rate_timeout", 0))]
    for seed in range(100_000):
        rnd = random.Random(seed)
        got = []
        for _ in outcomes:
            roll, pick = rnd.random(), None
            for outcome, rate in order:
                if roll < rate:
                    pick = outcome
                    break
                roll -= rate
            got.append(pick)
        if got == outcomes:
            return seed
    raise AssertionError("no seed gives that sequence")


def faults(twin, **spec) -> None:
    twin.set_faults(**spec)


def state(twin) -> dict:
    return twin.state()


def recorded(twin, path: str) -> list[dict]:
    """The twin's record (the whole session's) of requests to ``path``."""
    lines = twin.record_path.read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["path"] == path]


def make_client(twin, redis_url: str, **env) -> V2Client:
    settings = load_settings(**{
        "REDIS_URL": redis_url, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "THREADLINE_TWILIO_BASE_URL": twin.url, "THREADLINE_RETRY_BASE_SECONDS": 0.02,
        "THREADLINE_MAX_ATTEMPTS": 5, **env})
    buf = StatsBuffer(lambda: connect(settings), retention_minutes=60, interval=3600)
    return V2Client(settings, stats_buffer=buf)


async def configuration(client: V2Client) -> str:
    accepted = await client.create_configuration({
        "displayName": "tests", "description": "v2 client tests",
        "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES",
        "memoryStoreId": STORE_ID, "channelSettings": {"SMS": {}}})
    op = await client.wait_operation(accepted, 10, interval=0.05)
    assert op["status"] == "COMPLETED", op
    return op["related"]["configurationId"]


def conversation_body(config_id: str) -> dict:
    return {"configurationId": config_id, "name": None, "metadata": {"k": "v"},
            "participants": [{"type": "CUSTOMER", "name": None, "profileId": None,
                              "addresses": [{"channel": "SMS", "address": "+14155550100",
                                             "channelId": None}]}]}


def test_retry_after_on_429_is_honoured(twin, redis_url, redis_client) -> None:
    async def main() -> tuple[dict, str]:
        async with make_client(twin, redis_url) as client:
            config_id = await configuration(client)
            faults(twin, rate_429=0.5, retry_after=1, path="^/v2/Conversations$",
                   seed=seed_for(["429", None], rate_429=0.5))
            conv = await client.create_conversation(conversation_body(config_id))
            return conv, config_id

    conv, config_id = asyncio.run(main())
    assert conv["id"].startswith("conv_conversation_")
    # One 429 with Retry-After: 1, then success. The gap between the two requests, as the twin
    # saw them, is at least the second asked for; the backoff alone (base 0.02 s) would have
    # retried within 20 ms.
    # This test's own creates, by their configuration id: the record file is the whole
    # session's, and the previous test's creates may be milliseconds old.
    first, second = [e for e in recorded(twin, "/v2/Conversations")
                     if isinstance(e.get("body"), dict) and e["body"].get("configurationId") == config_id]
    assert (first["status"], second["status"]) == (429, 201)
    assert 1.0 <= second["ts"] - first["ts"] < 2.0
    assert twin.counts()["routes"]["POST /v2/Conversations"] == {"201": 1, "429": 1}
    total = redis_client.hgetall(keys.STATS_TOTAL)
    assert total[b"v2_requests|POST /v2/Conversations|429"] == b"1"
    assert total[b"v2_requests|POST /v2/Conversations|201"] == b"1"
    assert total[b"v2_latency|POST /v2/Conversations|count"] == b"2"


def test_500s_are_retried_then_exhausted(twin, redis_url) -> None:
    async def main() -> tuple[dict, V2Error]:
        async with make_client(twin, redis_url, THREADLINE_MAX_ATTEMPTS=3) as client:
            config_id = await configuration(client)
            faults(twin, rate_500=0.5, path="^/v2/Conversations$",
                   seed=seed_for(["500", "500", None], rate_500=0.5))
            ok = await client.create_conversation(conversation_body(config_id))
            faults(twin, rate_503=1.0, path="^/v2/Conversations$")
            with pytest.raises(V2Error) as info:
                await client.create_conversation(conversation_body(config_id))
            return ok, info.value

    ok, err = asyncio.run(main())
    assert ok["id"]
    assert err.status == 503 and err.transient and err.attempts == 3
    assert err.reason == "retries_exhausted" and not err.uncertain
    routes = twin.counts()["routes"]
    assert routes["POST /v2/Conversations"] == {"201": 1, "500": 2, "503": 3}


def test_permanent_4xx_raises_at_once(twin, redis_url, redis_client) -> None:
    # Bodies valid by the spec (the contract test checks every recorded request) that the twin
    # refuses for what they say: an unknown configuration (404) and an unknown author (400).
    async def main() -> tuple[V2Error, V2Error]:
        async with make_client(twin, redis_url) as client:
            with pytest.raises(V2Error) as missing:
                await client.create_conversation({"configurationId": "conv_configuration_nope"})
            conv = await client.create_conversation({"configurationId": await configuration(client)})
            with pytest.raises(V2Error) as refused:
                await client.create_communication(conv["id"], {
                    "author": {"address": "+14155550100", "channel": "SMS",
                               "participantId": "conv_participant_nope"},
                    "content": {"type": "TEXT", "text": "hi"},
                    "recipients": [{"address": "+14155550199", "channel": "SMS"}]})
            return missing.value, refused.value

    missing, refused = asyncio.run(main())
    assert missing.status == 404 and not missing.transient and missing.attempts == 1
    assert refused.status == 400 and not refused.transient and refused.attempts == 1
    assert refused.reason == "v2_rejected" and refused.code is not None
    assert "participant" in refused.message
    assert twin.count("POST /v2/Conversations/{ConversationId}/Communications") == 1
    assert twin.count("POST /v2/Conversations", 404) == 1
    total = redis_client.hgetall(keys.STATS_TOTAL)
    assert total[b"v2_requests|POST /v2/Conversations/{id}/Communications|400"] == b"1"


def test_timeout_on_create_is_uncertain_counted_and_retried(twin, redis_url, redis_client) -> None:
    async def main() -> dict:
        async with make_client(twin, redis_url, THREADLINE_TWILIO_TIMEOUT=0.5) as client:
            config_id = await configuration(client)
            faults(twin, rate_timeout=0.5, hold_seconds=3, path="^/v2/Conversations$",
                   seed=seed_for(["hold", None], rate_timeout=0.5))
            return await client.create_conversation(conversation_body(config_id))

    conv = asyncio.run(main())
    # The held request was processed by the twin: the retry made a second conversation. That
    # is the documented window (v2 has no idempotency key on creates); it is counted.
    convs = state(twin)["conversations"]
    assert conv["id"] in {c["id"] for c in convs}
    assert len(convs) == 2
    total = redis_client.hgetall(keys.STATS_TOTAL)
    assert total[b"uncertain_creates|conversation"] == b"1"
    assert total[b"v2_requests|POST /v2/Conversations|timeout"] == b"1"


def test_timeouts_to_the_end_raise_uncertain(twin, redis_url) -> None:
    async def main() -> V2Error:
        async with make_client(twin, redis_url, THREADLINE_TWILIO_TIMEOUT=0.3,
                               THREADLINE_MAX_ATTEMPTS=2) as client:
            config_id = await configuration(client)
            faults(twin, rate_timeout=1.0, hold_seconds=2, path="/Participants$")
            conv = await client.create_conversation({"configurationId": config_id})
            with pytest.raises(V2Error) as info:
                await client.create_participant(conv["id"], {"type": "CUSTOMER", "addresses": [
                    {"channel": "SMS", "address": "+14155550101"}]})
            return info.value

    err = asyncio.run(main())
    assert err.status is None and err.transient and err.uncertain and err.attempts == 2


def test_requests_carry_user_agent_auth_and_no_nulls(twin, redis_url) -> None:
    seen: list[httpx.Request] = []

    async def main() -> None:
        async with make_client(twin, redis_url) as client:
            async def note(req: httpx.Request) -> None:
                seen.append(req)

            client._client().event_hooks["request"].append(note)
            config_id = await configuration(client)
            conv = await client.create_conversation(conversation_body(config_id))
            await client.create_communication(conv["id"], {
                "author": {"address": "+14155550100", "channel": "SMS", "participantId": None},
                "content": {"type": "TEXT", "text": "hi"}, "resourceId": "SM1",
                "recipients": [{"address": "+14155550199", "channel": "SMS"}],
                "channelId": None})

    asyncio.run(main())
    posts = [r for r in seen if r.method in ("POST", "PUT")]
    assert len(posts) == 3
    for r in seen:
        assert r.headers["user-agent"] == USER_AGENT == "threadline/0.1.0"
        assert r.headers["authorization"].startswith("Basic ")
    for r in posts:
        assert "null" not in r.content.decode()
        assert r.headers["content-type"] == "application/json"
    conv = state(twin)["conversations"][0]
    assert conv["participants"][0]["addresses"][0]["address"] == "+14155550100"


def test_connections_are_reused_across_calls(twin, redis_url) -> None:
    pool_sizes: list[int] = []

    async def main() -> None:
        async with make_client(twin, redis_url) as client:
            config_id = await configuration(client)
            for _ in range(20):
                await client.fetch_configuration(config_id)
            # httpx's pool (an implementation detail, read only here): one keep-alive
            # connection carried every sequential call.
            pool_sizes.append(len(client._client()._transport._pool.connections))

    asyncio.run(main())
    assert pool_sizes == [1]



def test_logs_name_route_status_latency_and_cid_never_the_body(twin, redis_url, caplog) -> None:
    from workers.foundations.log import JsonFormatter, correlation_id

    secret = "my PIN is 9911"

    async def main() -> None:
        correlation_id.set("cid-test-42")
        async with make_client(twin, redis_url) as client:
            conv = await client.create_conversation({"configurationId": await configuration(client)})
            faults(twin, rate_500=0.5, path="/Communications$",
                   seed=seed_for(["500", None], rate_500=0.5))
            await client.create_communication(conv["id"], {
                "author": {"address": "+14155550100", "channel": "SMS"},
                "content": {"type": "TEXT", "text": secret}, "resourceId": "SM42",
                "recipients": [{"address": "+14155550199", "channel": "SMS"}]})

    import logging

    formatted: list[str] = []

    class Collect(logging.Handler):  # formats at emit time, when the correlation id is set
        def emit(self, record: logging.LogRecord) -> None:
            formatted.append(self.format(record))

    handler = Collect()
    handler.setFormatter(JsonFormatter())
    v2log = logging.getLogger("threadline.v2")
    v2log.addHandler(handler)
    try:
        with caplog.at_level("DEBUG", logger="threadline.v2"):
            asyncio.run(main())
    finally:
        v2log.removeHandler(handler)
    lines = [json.loads(x) for x in formatted]
    assert secret not in json.dumps(lines)
    retried = [x for x in lines if x["msg"] == "v2 call retried"]
    assert len(retried) == 1
    assert retried[0]["route"] == "POST /v2/Conversations/{id}/Communications"
    assert retried[0]["status"] == 500 and retried[0]["cid"] == "cid-test-42"
    assert retried[0]["ms"] >= 0 and retried[0]["wait_s"] >= 0
    ok = [x for x in lines if x["msg"] == "v2 call" and x["route"].endswith("/Communications")]
    assert ok and ok[0]["status"] == 201 and ok[0]["attempt"] == 2
