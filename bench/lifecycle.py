"""Lifecycle timers at scale: 100,000 open conversations, 1% coming due at once.

    .venv/bin/python bench/lifecycle.py   # --open 100000 --due-share 0.01 --workers 2 --inflight 8

Three measurements, side by side in one run:

1. **Redis memory per open conversation** (``INFO memory`` used_memory before/after loading):
   the engine's record hash (``tl:conv:{id}``: v2 id, configuration + pinned version, grouping
   key, two participants, last activity) with its indexes (grouping-index and v2-id hash
   fields, the all-conversations sorted set, the status count) *and* the lifecycle timer — and
   the timer alone. Records are written in bulk pipelines by ``workers.conversations.store.write_open``
   (the store's own layout; checked: a sample reads back through ``ConversationStore.get``).
2. **Sweep cost**: the scheduler's claim script taking the 1,000 due timers out of a
   100,000-entry sorted set, against the same claim on a set holding only those 1,000
   (O(due) means the ratio stays near 1), and against a naive full scan (read every timer,
   filter in Python). Medians of 7.
3. **Timer lag**: deadline → status PATCHed in v2 and recorded, for the 1,000 due
   conversations, with real processes: one ``threadline scheduler``, ``--workers``
   ``threadline worker`` processes, and the twin (``threadline twin``) as v2. p50/p99/max.

Takes a free Redis DB (1–15) with the test suite's lock key, and empties it afterwards.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twinsetup import v2_configuration  # noqa: E402  (bench/, this script's folder)

from tests.procs import Proc, free_port  # noqa: E402
from tests.redisdb import empty, release, take_db  # noqa: E402
from workers.capture.configuration import Configuration  # noqa: E402
from workers.capture.store import ConfigStore  # noqa: E402
from workers.conversations.record import Conversation, Participant, ms, new_id  # noqa: E402
from workers.conversations.store import ConversationStore, write_open  # noqa: E402
from workers.foundations import keys  # noqa: E402
from workers.foundations.redis_conn import connect_async  # noqa: E402
from workers.foundations.settings import load_settings  # noqa: E402
from workers.lifecycle import timers  # noqa: E402

ACCOUNT = "AC" + "c" * 32
TOKEN = "bench-token"
BIZ = "+14155550100"
INACTIVE_MIN, CLOSED_MIN = 10, 60


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def v2_conversations(twin: httpx.Client, config_id: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        r = twin.post("/v2/Conversations", json={"configurationId": config_id})
        r.raise_for_status()
        ids.append(r.json()["id"])
    return ids


def load(client: redis.Redis, n: int, due_ids: list[str], t0: float, minute: float) -> list[str]:
    """n open conversation records + timers; the first len(due_ids) come due at t0."""
    now = time.time()
    conv_ids = []
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        cid = new_id()
        conv_ids.append(cid)
        customer = f"+1415{2000000 + i:07d}"
        key = f"SMS|{customer}|{BIZ}"
        due = i < len(due_ids)
        tw = due_ids[i] if due else "conv_conversation_" + uuid.uuid4().hex[:26]
        last = t0 - INACTIVE_MIN * minute if due else now
        conv = Conversation(
            id=cid, configuration_id="bench", configuration_version=1, grouping_key=key,
            grouping_type="GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE", status="ACTIVE",
            twilio_id=tw, created_at=now, updated_at=now, last_activity={"SMS": last},
            participants={
                customer: Participant("conv_participant_" + uuid.uuid4().hex[:26], "CUSTOMER",
                                      customer, "SMS"),
                BIZ: Participant("conv_participant_" + uuid.uuid4().hex[:26], "AGENT", BIZ, "SMS")})
        write_open(pipe, conv)
        timers.schedule(pipe, cid, t0 if due else now + 86400 + i)
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.execute()
    return conv_ids


def sweep_costs(client: redis.Redis, n: int, due: int) -> tuple[float, float, float]:
    """Median ms: claim of `due` among n, claim of `due` among `due`, naive scan among n."""
    script = client.register_script(timers._CLAIM)
    lease = "tl:bench:lease"
    client.set(lease, "me")
    big, small = "tl:bench:z:big", "tl:bench:z:small"
    now = time.time()
    members_due = {f"d{i}": now - 1 for i in range(due)}
    members_far = {f"f{i}": now + 86400 + i for i in range(n - due)}

    def fill() -> None:
        client.delete(big, small)
        for chunk in range(0, len(members_far), 20000):
            part = dict(list(members_far.items())[chunk:chunk + 20000])
            client.zadd(big, part)
        client.zadd(big, members_due)
        client.zadd(small, members_due)

    def claim(key: str) -> float:
        t = time.perf_counter()
        got = script(keys=[key, lease], args=[repr(now), "me", due + 1, repr(now + 15)])
        ms = (time.perf_counter() - t) * 1000
        assert len(got) == 2 * due, len(got)
        return ms

    def naive() -> float:
        t = time.perf_counter()
        everything = client.zrange(big, 0, -1, withscores=True)
        hits = [m for m, s in everything if s <= now]
        ms = (time.perf_counter() - t) * 1000
        assert len(hits) == due
        return ms

    a, b, c = [], [], []
    for _ in range(7):
        fill()
        c.append(naive())
        a.append(claim(big))
        b.append(claim(small))
    client.delete(big, small, lease)
    return statistics.median(a), statistics.median(b), statistics.median(c)


def record_encoding(client: redis.Redis, cid: str) -> str:
    """``listpack`` while every record value is <= 64 bytes (what workers.conversations.record keeps)."""
    return client.object("encoding", keys.conversation(cid)).decode()


async def patch_floor(base: str, ids: list[str], inflight: int) -> float:
    sem = asyncio.Semaphore(inflight)
    async with httpx.AsyncClient(base_url=base, auth=(ACCOUNT, TOKEN), timeout=60) as a:
        async def one(i: str) -> None:
            async with sem:
                (await a.patch(f"/v2/Conversations/{i}", json={"status": "ACTIVE"})).raise_for_status()

        t = time.perf_counter()
        await asyncio.gather(*(one(i) for i in ids))
        return time.perf_counter() - t


async def check_layout(settings, cid: str) -> None:
    r = connect_async(settings)
    conv = await ConversationStore(r).get(cid)
    await r.aclose()
    assert conv and conv.status == "ACTIVE" and len(conv.participants) == 2 and conv.last_activity


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--open", type=int, default=100_000)
    ap.add_argument("--due-share", type=float, default=0.01)
    ap.add_argument("--workers", type=int, default=2)
    # 8, not production's 64: the twin (one Python process) slows down under many concurrent
    # requests, and a real v2 round trip (~100 ms) is what 64 in flight is sized for.
    ap.add_argument("--inflight", type=int, default=8, help="THREADLINE_MAX_INFLIGHT per worker")
    args = ap.parse_args()
    due_n = int(args.open * args.due_share)

    client, url, token = take_db()
    port = free_port()
    twin_proc = Proc(["twin", "--port", str(port)],
                     {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN,
                      "THREADLINE_TWILIO_BASE_URL": ""},
                     ready_url=f"http://127.0.0.1:{port}/_twin/healthz")
    env = {"REDIS_URL": url, "THREADLINE_TWILIO_BASE_URL": f"http://127.0.0.1:{port}",
           "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN,
           "THREADLINE_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
           "THREADLINE_MAX_INFLIGHT": str(args.inflight)}
    procs: list[Proc] = []
    try:
        empty(client)
        settings = load_settings(redis_url=url)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=(ACCOUNT, TOKEN),
                          timeout=30) as twin:
            cfg = v2_configuration(twin)
            ConfigStore(client).put(Configuration.model_validate({
                "id": "bench", "displayName": "bench", "description": "bench",
                "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
                "twilioConfigurationId": cfg,
                "channelSettings": {"SMS": {"captureRules": [{"from": "*", "to": BIZ}],
                                            "statusTimeouts": {"inactive": INACTIVE_MIN,
                                                               "closed": CLOSED_MIN}}}}))
            due_tw = v2_conversations(twin, cfg, due_n)

        # 1. memory
        before = used_memory(client)
        t0 = time.time() + 3600  # armed far ahead while loading; moved to "now + 3 s" below
        conv_ids = load(client, args.open, due_tw, t0, settings.minute_seconds)
        after = used_memory(client)
        asyncio.run(check_layout(settings, conv_ids[0]))
        per_conv = (after - before) / args.open
        timer_bytes = int(client.memory_usage(keys.TIMERS) or 0) / args.open
        record_sample = statistics.median(int(client.memory_usage(keys.conversation(c)) or 0)
                                          for c in conv_ids[:: max(1, args.open // 200)])

        encoding = record_encoding(client, conv_ids[0])

        # 2. sweep cost
        claim_big, claim_small, naive_ms = sweep_costs(client, args.open, due_n)

        # the v2 stand-in's own floor: the same number of PATCHes (no-op status), 64 in flight
        floor_inflight = args.inflight * args.workers
        floor = asyncio.run(patch_floor(f"http://127.0.0.1:{port}", due_tw, floor_inflight))

        # 3. timer lag: move the due timers (and their last activity) to come due in 3 s
        t0 = time.time() + 3.0
        pipe = client.pipeline(transaction=False)
        for cid in conv_ids[:due_n]:
            pipe.hset(keys.conversation(cid), "aSMS", ms(t0 - INACTIVE_MIN * settings.minute_seconds))
            timers.schedule(pipe, cid, t0)
        pipe.execute()
        procs.append(Proc(["scheduler"], env))
        procs += [Proc(["worker"], env) for _ in range(args.workers)]
        deadline = time.time() + 120
        claimed_at = None
        while True:
            if claimed_at is None and time.time() >= t0 and \
                    client.zcount(keys.TIMERS, t0, t0) == 0:
                claimed_at = time.time()  # every due timer claimed and its job enqueued
            pipe = client.pipeline(transaction=False)
            for cid in conv_ids[:due_n]:
                pipe.hmget(keys.conversation(cid), "s", "t1")
            rows = pipe.execute()
            done = [int(u) / 1000 for s, u in rows if s == b"INACTIVE"]
            if len(done) == due_n or time.time() > deadline:
                break
            time.sleep(0.2)
        if len(done) < due_n:
            for p in procs:
                print(f"--- {' '.join(p.args)}\n{p.output()[-3000:]}")
            print("timers left due:", client.zcount(keys.TIMERS, "-inf", time.time()),
                  "queue:", client.llen("rq:queue:" + keys.QUEUE))
            raise SystemExit(f"only {len(done)}/{due_n} went INACTIVE in 120 s")
        lags = sorted(max(0.0, u - t0) for u in done)
        p50 = lags[len(lags) // 2]
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        patches = httpx.get(f"http://127.0.0.1:{port}/_twin/counts").json()["routes"].get(
            "PATCH /v2/Conversations/{id}", {})

        print(f"{args.open} open conversations, {due_n} due at once; {args.workers} worker "
              f"processes ({args.inflight} in flight each), 1 scheduler, twin as v2 (no injected "
              f"latency)")
        print(f"memory per open conversation (record + indexes + timer): {per_conv:7.0f} B "
              f"(target <= 1024)")
        print(f"  of which the timer (zset entry):                        {timer_bytes:7.0f} B;"
              f" a record hash alone (median MEMORY USAGE): {record_sample:.0f} B")
        print(f"  record encoding: {encoding}")
        print(f"sweep, claim {due_n} due of {args.open}:  {claim_big:7.2f} ms")
        print(f"sweep, claim {due_n} due of {due_n}:     {claim_small:7.2f} ms   "
              f"ratio {claim_big / claim_small:.2f} (O(due) -> ~1)")
        print(f"naive full scan of {args.open}:         {naive_ms:7.2f} ms   "
              f"ratio naive/claim {naive_ms / claim_big:.1f}x")
        print(f"scheduler: all {due_n} due timers claimed and enqueued {(claimed_at - t0) * 1000:.0f} ms "
              f"after the deadline (polled every 200 ms)")
        print(f"v2 stand-in floor: {due_n} no-op PATCHes, {floor_inflight} in flight, straight to the twin: "
              f"{floor * 1000:.0f} ms")
        print(f"timer lag (deadline -> PATCHed and recorded): p50 {p50 * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms (target p99 <= 2000 ms)")
        print(f"PATCHes answered by the twin (floor + lifecycle): {patches}")
    finally:
        for p in procs:
            p.stop()
        twin_proc.stop()
        empty(client)
        release(client, token)


if __name__ == "__main__":
    main()
