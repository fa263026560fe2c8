"""The engine's client on aiohttp alone (``engine_client``) keeps the failure rules the drain
relies on, against the twin over real HTTP: Retry-After, an uncertain create after a timeout,
a refused connection that is never uncertain, a final 4xx at once."""
from __future__ import annotations

import asyncio

import pytest

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN
from tests.procs import free_port
from tests.twilio.test_client import configuration, conversation_body, faults, recorded, seed_for
from workers.foundations import keys
from workers.foundations.redis_conn import connect
from workers.foundations.settings import load_settings
from workers.stats.buffer import StatsBuffer
from workers.twilio.client import V2Client, V2Error, engine_client
from workers.twilio.transport import Reply


def make_engine_client(base_url: str, redis_url: str, **env) -> V2Client:
    settings = load_settings(**{
        "REDIS_URL": redis_url, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "THREADLINE_TWILIO_BASE_URL": base_url, "THREADLINE_RETRY_BASE_SECONDS": 0.02,
        "THREADLINE_MAX_ATTEMPTS": 5, **env})
    client = engine_client(settings)
    client.stats = StatsBuffer(lambda: connect(settings), retention_minutes=60, interval=3600)
    return client


def test_engine_client_honours_retry_after_and_answers_like_httpx(twin, redis_url) -> None:
    async def main() -> tuple[dict, str, object]:
        async with make_engine_client(twin.url, redis_url) as client:
            config_id = await configuration(client)
            faults(twin, rate_429=0.5, retry_after=1, path="^/v2/Conversations$",
                   seed=seed_for(["429", None], rate_429=0.5))
            conv = await client.create_conversation(conversation_body(config_id))
            resp = await client.request("GET", "GET /v2/Conversations/{id}", f"/v2/Conversations/{conv['id']}")
            return conv, config_id, resp

    conv, config_id, resp = asyncio.run(main())
    first, second = [e for e in recorded(twin, "/v2/Conversations")
                     if isinstance(e.get("body"), dict) and e["body"].get("configurationId") == config_id]
    assert (first["status"], second["status"]) == (429, 201)
    assert 1.0 <= second["ts"] - first["ts"] < 2.0
    assert "name" not in second["body"] and "profileId" not in second["body"]["participants"][0]  # nulls stripped
    assert isinstance(resp, Reply) and resp.status_code == 200 and resp.json()["id"] == conv["id"]
    assert resp.headers.get("content-type", "").startswith("application/json")  # case-insensitive


def test_engine_client_timeout_on_create_is_uncertain(twin, redis_url, redis_client) -> None:
    async def main() -> V2Error:
        async with make_engine_client(twin.url, redis_url, THREADLINE_TWILIO_TIMEOUT=0.3,
                                      THREADLINE_MAX_ATTEMPTS=2) as client:
            config_id = await configuration(client)
            faults(twin, rate_timeout=1.0, hold_seconds=2, path="^/v2/Conversations$")
            with pytest.raises(V2Error) as info:
                await client.create_conversation(conversation_body(config_id))
            faults(twin)
            return info.value

    before = int(redis_client.hget(keys.STATS_TOTAL, "uncertain_creates|conversation") or 0)
    err = asyncio.run(main())
    assert err.status is None and err.transient and err.uncertain and err.attempts == 2
    assert int(redis_client.hget(keys.STATS_TOTAL, "uncertain_creates|conversation")) == before + 2


def test_engine_client_refused_connection_is_never_uncertain(redis_url) -> None:
    async def main() -> V2Error:
        async with make_engine_client(f"http://127.0.0.1:{free_port()}", redis_url,
                                      THREADLINE_MAX_ATTEMPTS=2) as client:
            with pytest.raises(V2Error) as info:
                await client.create_conversation({"configurationId": "conf_configuration_x"})
            return info.value

    err = asyncio.run(main())
    assert err.status is None and err.transient and not err.uncertain
    assert err.attempts == 2 and err.reason == "retries_exhausted" and err.message == "ConnectError"


def test_engine_client_final_4xx_raises_at_once(twin, redis_url) -> None:
    async def main() -> V2Error:
        async with make_engine_client(twin.url, redis_url) as client:
            with pytest.raises(V2Error) as info:
                await client.create_participant("conv_conversation_" + "0" * 26, {
                    "type": "CUSTOMER", "addresses": [{"channel": "SMS", "address": "+14155550101"}]})
            return info.value

    err = asyncio.run(main())
    assert err.status == 404 and not err.transient and err.attempts == 1 and err.reason == "v2_rejected"
