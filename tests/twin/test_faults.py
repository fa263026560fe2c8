"""Fault injection, measured from the outside: shares of errors, added latency, held answers."""
from __future__ import annotations

import subprocess
import time

import httpx
import pytest

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN
from tests.procs import THREADLINE, Proc, free_port
from tests.twin_fixtures import TwinHandle


def test_a_30_percent_share_of_500s(twin: TwinHandle) -> None:
    """600 draws at p=0.3: the standard deviation is 11.2 requests, so 113…247 is ±6σ (a false
    failure about once in 10⁹ runs) while 0%, 50% or 100% would all fail."""
    twin.set_faults(rate_500=0.3)
    n = 600
    with twin.http() as http:
        statuses = [http.get("/v2/Conversations").status_code for _ in range(n)]
    failures = statuses.count(500)
    assert set(statuses) == {200, 500}
    assert 113 <= failures <= 247, failures
    assert twin.count("GET /v2/Conversations", 500) == failures
    assert twin.count("GET /v2/Conversations", 200) == n - failures


def test_added_latency_shows_in_timings(twin: TwinHandle) -> None:
    def timed(http: httpx.Client) -> float:
        start = time.perf_counter()
        http.get("/v2/Conversations").raise_for_status()
        return time.perf_counter() - start

    with twin.http() as http:
        timed(http)  # connection set up outside the measurement
        baseline = sorted(timed(http) for _ in range(5))[2]
        twin.set_faults(latency_ms=250)
        fixed = [timed(http) for _ in range(5)]
        twin.set_faults(latency_ms=100, jitter_ms=200)
        jittered = [timed(http) for _ in range(10)]
    # Lower bounds are certain (the twin sleeps first); upper bounds only catch gross errors,
    # with room for a loaded machine.
    assert all(t >= 0.25 for t in fixed), fixed
    assert sorted(fixed)[2] - baseline >= 0.2
    assert all(t < 0.25 + baseline + 1.0 for t in fixed), fixed
    assert all(0.1 <= t < 0.3 + baseline + 1.0 for t in jittered), jittered
    assert max(jittered) - min(jittered) > 0.02  # the jitter varies


def test_429_carries_retry_after_and_faults_follow_the_path(twin: TwinHandle) -> None:
    twin.set_faults(rate_429=1.0, retry_after=7, path="/Participants$")
    config_id = twin.create_configuration()  # not faulted: the path does not match
    with twin.http() as http:
        conv = http.post("/v2/Conversations", json={"configurationId": config_id})
        assert conv.status_code == 201
        refused = http.post(f"/v2/Conversations/{conv.json()['id']}/Participants",
                            json={"addresses": [{"channel": "SMS", "address": "+14155550100"}]})
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "7"
    assert refused.json()["code"] == 20429
    assert twin.state()["conversations"][0]["participants"] == []  # a 429 changes nothing


def test_held_answer_outlives_the_client_but_the_write_happened(twin: TwinHandle) -> None:
    config_id = twin.create_configuration()
    twin.set_faults(rate_timeout=1.0, hold_seconds=1.5, path="^/v2/Conversations$")
    with twin.http(timeout=0.3) as http:
        with pytest.raises(httpx.ReadTimeout):
            http.post("/v2/Conversations", json={"configurationId": config_id})
    state = twin.wait_for(lambda s: len(s["conversations"]) == 1, timeout=5)
    assert state["conversations"][0]["configurationId"] == config_id


def test_bad_fault_settings_are_refused(twin: TwinHandle) -> None:
    with httpx.Client(base_url=twin.base_url) as http:
        too_much = http.post("/_twin/faults", json={"rate_500": 0.7, "rate_503": 0.7})
        assert too_much.status_code == 400 and "at most 1" in too_much.json()["message"]
        unknown = http.post("/_twin/faults", json={"rate_404": 0.5})
        assert unknown.status_code == 400 and "rate_404" in unknown.json()["message"]
        bad_regex = http.post("/_twin/faults", json={"path": "("})
        assert bad_regex.status_code == 400 and "path" in bad_regex.json()["message"]
        assert http.get("/_twin/faults").json()["rate_500"] == 0


def test_fault_flags_at_start_and_bad_flags() -> None:
    port = free_port()
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    url = f"http://127.0.0.1:{port}"
    with Proc(["twin", "--port", str(port), "--rate-503", "1", "--fault-path", "^/v2/Conv",
               "--operation-delay", "0"], env, ready_url=url + "/_twin/healthz"):
        with httpx.Client(base_url=url, auth=(ACCOUNT_SID, AUTH_TOKEN)) as http:
            assert http.get("/v2/Conversations").status_code == 503
            assert http.get("/v2/ControlPlane/Configurations").status_code == 200
            http.post("/_twin/faults", json={}).raise_for_status()
            assert http.get("/v2/Conversations").status_code == 200
            http.post("/_twin/reset").raise_for_status()  # back to the flags
            assert http.get("/v2/Conversations").status_code == 503
    for bad in (["--rate-500", "2"], ["--latency-ms", "-5"], ["--no-such-flag"]):
        done = subprocess.run([THREADLINE, "twin", *bad], capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 2, (bad, done.stderr)
        assert "usage:" in done.stderr
