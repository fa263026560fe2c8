"""Wrong admin tokens are counted and logged (never the token), and an over-long one is
refused before it is compared — over real HTTP against ``threadline web``."""
from __future__ import annotations

from tests.conftest import ADMIN_TOKEN
from tests.web_fixtures import wait_counter

GUESS = "guess-" + "9" * 26


def test_refused_tokens_are_counted_and_logged_without_the_token(start_web, redis_client):
    web = start_web()
    for headers in ({"Authorization": f"Bearer {GUESS}"}, {"Authorization": f"Bearer {GUESS}x"}):
        assert web.client.get("/api/v1/configurations", headers=headers).status_code == 401
    assert web.client.get("/api/v1/configurations").status_code == 401
    huge = {"Authorization": "Bearer " + "a" * 10_000}
    assert web.client.get("/api/v1/conversations", headers=huge).status_code == 401
    ok = web.client.get("/api/v1/configurations", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert ok.status_code == 200
    assert wait_counter(redis_client, "auth_refused|wrong", 2) == 2
    assert wait_counter(redis_client, "auth_refused|missing", 1) == 1
    assert wait_counter(redis_client, "auth_refused|too_long", 1) == 1
    out = web.proc.output()
    assert out.count("bearer token refused") == 4
    assert GUESS not in out and "a" * 100 not in out and ADMIN_TOKEN not in out
