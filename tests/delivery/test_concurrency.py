"""A worker whose ceiling (THREADLINE_MAX_INFLIGHT=64) is far above the account's concurrency
limit (the twin's ``max_concurrent``=8) learns the limit from the 429s and delivers everything,
without spending its time on refused requests (workers.twilio.concurrency, through workers.twilio.client)."""
from __future__ import annotations

import json
import time

from tests.web_fixtures import inbound_message, post_signed
from tests.worker_fixtures import OURS, SHARDS

MESSAGING = "/webhooks/twilio/messaging"
CUSTOMERS = 60
MESSAGES_EACH = 6
TWIN_LIMIT = 8


def test_a_worker_adapts_to_the_accounts_concurrency_limit(pipeline):
    """60 customers × 6 messages, sent before the worker starts; the twin serves 8 requests at
    once (50 ms each) and refuses the rest with 20429.

    The bound on 429s: the limit starts at 64 and each window (one 429 on a request started
    since the last decrease) multiplies it by 0.75: 64, 48, 36, 27, 20, 15, 11, 8 — seven
    windows. A drain keeps at most D requests in flight, D = its shard's lanes (≈ 60/4 = 15
    customers), so a window loses at most about min(limit, D) − 8 requests: ≤ 7 a window while
    the limit is above D, ≈ 45 for the whole descent. Then the limit saw-tooths under 9: it
    climbs 6 → 9 in 6 + 7 + 8 = 21 successes and the next 429 lowers it again, a few 429s per
    ~21 calls (≲ 10%). With ≈ 420 successful calls (60 creates + 360 communications) that is
    ≲ 45 + 42 ≈ 90, so 30% of the successful calls (≈ 126) leaves room for a loaded machine.
    Measured when this test was written: ≈ 40–45 429s for 432 requests served (≈ 10%), the
    limit lowered 64 → 48 → 36 → 27 → 20 → 15 → 11 → 8 → 6 and then saw-toothing 6–9. With
    adaptation off (floor = ceiling: a fixed bound of 64, not kept as a test) every drain keeps
    its ≈ 15 lanes in flight and the twin refuses the excess again and again: ≈ 1,500 429s for
    ≈ 365 served, and 70–90 events dead-lettered (retries_exhausted).
    """
    pipeline.configure("main")
    pipeline.twin.set_faults(max_concurrent=TWIN_LIMIT, latency_ms=50)
    customers = [f"+1415555{4000 + i:04d}" for i in range(CUSTOMERS)]
    sent: dict[str, list[str]] = {c: [] for c in customers}
    for n in range(MESSAGES_EACH):
        for c in customers:
            params = inbound_message(c, OURS, f"body-{n}")
            sent[c].append(params["MessageSid"])
            assert post_signed(pipeline.web, MESSAGING, params).status_code == 200
    worker = pipeline.start_worker(THREADLINE_MAX_INFLIGHT="64")
    pipeline.wait_idle(timeout=120)

    assert pipeline.dead_letters() == []
    convs = pipeline.twin.conversations()
    assert len(convs) == CUSTOMERS  # a refused create is never retried into a duplicate
    for conv in convs:
        customer = next(p for p in conv["participants"]
                        if p["type"] == "CUSTOMER")["addresses"][0]["address"]
        # Exactly once each, in order: nothing lost, nothing posted twice.
        assert [c["resourceId"] for c in conv["communications"]] == sent[customer]

    counts = pipeline.twin.counts()
    refused = counts.get("faults", {}).get("max_concurrent", 0)
    served = sum(n for by_status in counts["routes"].values()
                 for status, n in by_status.items() if int(status) < 400)
    assert served >= CUSTOMERS * (1 + MESSAGES_EACH)
    assert refused > 0  # the ceiling was over the limit: the twin did refuse some
    print(f"\n{refused} requests refused (429) for {served} served "
          f"({refused / served:.0%}), {SHARDS} shards")
    assert refused < 0.3 * served, (refused, served)

    # The limiter said so: counted, and logged at INFO with the new limit (no bodies).
    lowered = [json.loads(line) for line in worker.log_path.read_text().splitlines()
               if "v2 concurrency limit lowered" in line]
    assert lowered and all("body-" not in json.dumps(e) for e in lowered)
    limits = [e["limit"] for e in lowered]
    print(f"limit lowered to {limits}")
    assert min(limits) <= TWIN_LIMIT  # it found the account's limit (or went below it)
    assert all(e["ceiling"] == 64 for e in lowered)
    assert _wait_counter(pipeline, "v2_limit|decreased", len(lowered)) == len(lowered)


def _wait_counter(pipeline, name: str, want: int, timeout: float = 5.0) -> int:
    """The worker's StatsBuffer flushes about once a second."""
    deadline = time.monotonic() + timeout
    while (got := pipeline.counter(name)) < want and time.monotonic() < deadline:
        time.sleep(0.1)
    return got
