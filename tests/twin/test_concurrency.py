"""The twin's account concurrency limit (``max_concurrent``), measured from the outside: Twilio's
20429 answer to a request that arrives while N others are being served, counted and recorded."""
from __future__ import annotations

import asyncio
import json
import subprocess
import uuid

import httpx

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN
from tests.procs import THREADLINE, Proc, free_port
from tests.twin_fixtures import TwinHandle


def _burst(base_url: str, paths: list[str]) -> list[httpx.Response]:
    """GET every path at once (one connection each), as the account."""
    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base_url, auth=(ACCOUNT_SID, AUTH_TOKEN),
                                     timeout=20) as http:
            return await asyncio.gather(*(http.get(p) for p in paths))

    return asyncio.run(main())


def test_over_the_limit_is_refused_with_twilios_20429(twin: TwinHandle) -> None:
    """8 requests at once, each held 1 s, against a limit of 3: the first 3 in are served, the 5
    that arrive meanwhile are refused at once (all 8 are sent well within the second)."""
    twin.set_faults(max_concurrent=3, latency_ms=1000)
    tag = uuid.uuid4().hex[:26]
    paths = [f"/v2/Conversations/conv_conversation_{tag}{i:x}" for i in range(8)]
    answers = _burst(twin.base_url, paths)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [404] * 3 + [429] * 5  # served (no such conversation) or refused
    refused = [a for a in answers if a.status_code == 429]
    for a in refused:
        assert a.json() == {"code": 20429, "message": "Too Many Requests",
                            "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429}
        assert "Retry-After" not in a.headers
        assert a.elapsed.total_seconds() < 0.9  # refused before the added latency
    counts = twin.counts()
    assert counts["faults"] == {"max_concurrent": 5}
    assert counts["routes"]["GET /v2/Conversations/{id}"] == {"404": 3, "429": 5}
    lines = [json.loads(x) for x in twin.record_path.read_text().splitlines()]
    mine = [e for e in lines if tag in e["path"]]
    assert sorted((e["status"], e.get("fault")) for e in mine) == \
        [(404, None)] * 3 + [(429, "max_concurrent")] * 5
    # The served ones have left: the next burst of 3 all get in; 0 lifts the limit.
    again = _burst(twin.base_url, paths[:3])
    assert [a.status_code for a in again] == [404] * 3
    twin.set_faults(max_concurrent=0, latency_ms=300)
    assert {a.status_code for a in _burst(twin.base_url, paths)} == {404}


def test_the_limit_follows_the_fault_path_and_reset_clears_the_counts(twin: TwinHandle) -> None:
    twin.set_faults(max_concurrent=1, latency_ms=600, path="^/v2/Conversations/")
    tag = uuid.uuid4().hex[:26]
    faulted = [f"/v2/Conversations/conv_conversation_{tag}{i}" for i in range(2)]
    answers = _burst(twin.base_url, [*faulted, "/v2/ControlPlane/Configurations",
                                     "/v2/ControlPlane/Configurations"])
    assert sorted(a.status_code for a in answers[:2]) == [404, 429]
    assert [a.status_code for a in answers[2:]] == [200, 200]  # not limited, not delayed
    assert twin.counts()["faults"] == {"max_concurrent": 1}
    twin.reset()
    assert "faults" not in twin.counts()


def test_max_concurrent_flag_at_start_and_bad_values() -> None:
    port = free_port()
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    url = f"http://127.0.0.1:{port}"
    with Proc(["twin", "--port", str(port), "--max-concurrent", "1", "--latency-ms", "500"], env,
              ready_url=url + "/_twin/healthz"):
        with httpx.Client(base_url=url) as control:
            assert control.get("/_twin/faults").json()["max_concurrent"] == 1
            bad = control.post("/_twin/faults", json={"max_concurrent": -1})
            assert bad.status_code == 400 and "max_concurrent" in bad.json()["message"]
        answers = _burst(url, ["/v2/Conversations"] * 2)
        assert sorted(a.status_code for a in answers) == [200, 429]
    for bad_flag in (["--max-concurrent", "-1"], ["--max-concurrent", "two"]):
        done = subprocess.run([THREADLINE, "twin", *bad_flag], capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 2, (bad_flag, done.stderr)
        assert "usage:" in done.stderr
