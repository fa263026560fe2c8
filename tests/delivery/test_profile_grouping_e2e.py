"""GROUP_BY_PROFILE end to end: two addresses of one customer, on different shards, drained at
the same moment by different ``threadline worker`` processes, join one conversation — with the
local profile directory (linked through /api/v1/profiles) and with a Memory store in the twin."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from rq import Worker

from tests.web_fixtures import inbound_message, post_signed
from tests.worker_fixtures import OURS, SHARDS
from workers.foundations.addresses import shard_of_pair

CUSTOMERS = 8


def _pairs() -> list[tuple[str, str]]:
    """Two numbers per customer whose SMS to OURS land on different shards."""
    out, n = [], 0
    while len(out) < CUSTOMERS:
        a, b = f"+1555120{n:04d}", f"+1555980{n:04d}"
        n += 1
        if shard_of_pair(a, OURS, SHARDS) != shard_of_pair(b, OURS, SHARDS):
            out.append((a, b))
    return out


def _workers_ready(p, n: int) -> None:
    """Start ``n`` workers (one per shard) and wait until RQ lists them all, so drains of
    different shards run at the same moment in different processes."""
    for _ in range(n):
        p.start_worker()
    deadline = time.monotonic() + 20
    while len(Worker.all(connection=p.redis)) < n:
        assert time.monotonic() < deadline, "workers did not register"
        time.sleep(0.05)
    # every v2 call takes a while, so two creates of one grouping key would overlap
    p.twin.set_faults(latency_ms=60)


def _post_all(p, pairs) -> None:
    params = [inbound_message(addr, OURS, f"from {addr}") for pair in pairs for addr in pair]
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda ps: post_signed(p.web, "/webhooks/twilio/messaging", ps).status_code,
                              params))
    assert codes == [200] * len(params)


def _check_one_conversation_per_customer(p, pairs) -> list[dict]:
    convs = p.twin.conversations()
    assert len(convs) == len(pairs), [c["metadata"] for c in convs]
    by_customer = {}
    for conv in convs:
        customers = sorted(a["address"] for part in conv["participants"] if part["type"] == "CUSTOMER"
                           for a in part["addresses"])
        authors = sorted(c["author"]["address"] for c in conv["communications"])
        assert customers == authors  # both numbers wrote into this one conversation
        assert conv["metadata"]["threadlineGroupingKey"].startswith("profile|")
        by_customer[tuple(customers)] = conv
    assert set(by_customer) == {tuple(sorted(pair)) for pair in pairs}
    assert p.dead_letters() == []
    return convs


def test_local_directory_two_numbers_two_shards_one_conversation(pipeline):
    p = pipeline
    p.configure("kiran", grouping="GROUP_BY_PROFILE", channels=("SMS",))
    pairs = _pairs()
    for a, b in pairs:
        r = p.web.post("/api/v1/profiles", json={"addresses": [a, b]}, headers=p.web.admin_headers())
        assert r.status_code == 201, r.text
    _workers_ready(p, SHARDS)
    _post_all(p, pairs)
    p.wait_idle(60)
    _check_one_conversation_per_customer(p, pairs)
    assert p.counter("conversations_created|kiran") == CUSTOMERS


def test_memory_store_two_numbers_two_shards_one_conversation(pipeline):
    p = pipeline
    store = p.twin.create_memory_store()
    pairs = _pairs()
    profiles = {p.twin.create_profile(store, phone=[a, b]): (a, b) for a, b in pairs}
    p.configure("kiran", grouping="GROUP_BY_PROFILE", channels=("SMS",), memoryStoreId=store)
    _workers_ready(p, SHARDS)
    _post_all(p, pairs)
    p.wait_idle(60)
    convs = _check_one_conversation_per_customer(p, pairs)
    keys = {c["metadata"]["threadlineGroupingKey"] for c in convs}
    assert keys == {f"profile|{pid}" for pid in profiles}
    for conv in convs:  # every CUSTOMER participant carries its conversation's Memory profile
        pid = conv["metadata"]["threadlineGroupingKey"].split("|", 1)[1]
        assert {pt.get("profileId") for pt in conv["participants"] if pt["type"] == "CUSTOMER"} == {pid}
    assert len(p.twin.state()["memory"][store]) == CUSTOMERS  # resolved, none created
