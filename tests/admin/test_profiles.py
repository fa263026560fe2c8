"""The local profile directory, driven as an operator drives it: /api/v1/profiles over real HTTP
against a ``threadline web`` process, and the resolver reading the same Redis."""
from __future__ import annotations

import asyncio
from urllib.parse import quote

import redis.asyncio as aioredis

from workers.delivery.profiles import ProfileResolver


def _resolve(redis_url: str, bare: str, channel: str = "SMS") -> str | None:
    async def go() -> str | None:
        r = aioredis.Redis.from_url(redis_url)
        try:
            return (await ProfileResolver(r, None).resolve("cfg", None, channel, bare)).profile_id
        finally:
            await r.aclose()
    return asyncio.run(go())


def test_link_a_second_number_then_unlink(web, redis_client, redis_url):
    h = web.admin_headers()
    first = _resolve(redis_url, "+15551234567")          # traffic made Kiran's profile
    assert first and first.startswith("tlp_")
    assert _resolve(redis_url, "+15551234567", "WHATSAPP") == first  # one number, any channel
    second = _resolve(redis_url, "+15559876543")
    assert second != first

    r = web.post(f"/api/v1/profiles/{first}/addresses", json={"address": "+1 (555) 987-6543"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["addresses"] == ["+15551234567", "+15559876543"]
    assert r.json()["previousProfile"] == second
    assert _resolve(redis_url, "+15559876543") == first
    assert web.get(f"/api/v1/profiles/{second}", headers=h).status_code == 404  # emptied, gone

    found = web.get("/api/v1/profiles", params={"address": "whatsapp:+15559876543"}, headers=h)
    assert found.status_code == 200 and found.json()["id"] == first

    r = web.client.delete(f"/api/v1/profiles/{first}/addresses/{quote('+15559876543', safe='')}", headers=h)
    assert r.status_code == 204
    assert web.get(f"/api/v1/profiles/{first}", headers=h).json()["addresses"] == ["+15551234567"]
    again = _resolve(redis_url, "+15559876543")
    assert again not in (first, second)                  # a fresh profile of its own


def test_create_list_delete_and_conflicts(web, redis_client):
    h = web.admin_headers()
    r = web.post("/api/v1/profiles", json={"addresses": ["+14155550123", "whatsapp:+14155550124"]}, headers=h)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert r.json()["addresses"] == ["+14155550123", "+14155550124"]
    clash = web.post("/api/v1/profiles", json={"addresses": ["+14155550999", "+14155550123"]}, headers=h)
    assert clash.status_code == 409
    assert clash.json()["addresses"] == {"+14155550123": pid}
    # the refused create linked nothing
    assert web.get("/api/v1/profiles", params={"address": "+14155550999"}, headers=h).status_code == 404
    for n in range(3):
        assert web.post("/api/v1/profiles", json={"addresses": [f"+1415555070{n}"]}, headers=h).status_code == 201
    page = web.get("/api/v1/profiles", params={"limit": 2}, headers=h).json()
    assert page["total"] == 4 and len(page["profiles"]) == 2 and page["next"] == 2
    assert web.client.delete(f"/api/v1/profiles/{pid}", headers=h).status_code == 204
    assert web.get("/api/v1/profiles", params={"address": "+14155550123"}, headers=h).status_code == 404
    assert web.client.delete(f"/api/v1/profiles/{pid}", headers=h).status_code == 404


def test_bad_requests_get_reasons(web, redis_client):
    h = web.admin_headers()
    assert web.get("/api/v1/profiles").status_code == 401
    bad = web.post("/api/v1/profiles", json={"addresses": ["not-a-number"]}, headers=h)
    assert bad.status_code == 400 and "addresses[0]" in bad.json()["error"]
    assert web.post("/api/v1/profiles", json={"addresses": []}, headers=h).status_code == 400
    assert web.post("/api/v1/profiles", content=b"{", headers=h).status_code == 400
    assert web.post("/api/v1/profiles/tlp_nope/addresses", json={"address": "+14155550123"},
                    headers=h).status_code == 404
    assert web.get("/api/v1/profiles", params={"limit": "0"}, headers=h).status_code == 400
    r = web.client.delete("/api/v1/profiles/tlp_nope/addresses/%2B14155550123", headers=h)
    assert r.status_code == 404


def test_concurrent_first_sight_makes_one_profile(redis_client, redis_url):
    """Two workers resolving a new address at once agree on one profile (one Lua script)."""
    async def go() -> set[str]:
        clients = [aioredis.Redis.from_url(redis_url) for _ in range(8)]
        try:
            got = await asyncio.gather(*(ProfileResolver(c, None).resolve("cfg", None, "SMS", "+14155550777")
                                         for c in clients))
            return {g.profile_id for g in got}
        finally:
            for c in clients:
                await c.aclose()
    assert len(asyncio.run(go())) == 1
