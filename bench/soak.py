"""Soak: threadline's promises under load, crashes and bad input, checked and printed as a table.

One run starts a private ``redis-server`` (a free port, ``--appendonly yes`` in a temp dir: the
shared Redis is never touched, so it can be restarted), ``threadline twin`` with faults (latency
with jitter, 5% 500s, 3% 429s, a few requests held past the client's timeout), one or two
``threadline web``, several ``threadline worker`` and two ``threadline scheduler``. It sends N
signed webhooks of mixed kinds — inbound messages (some repeated), outbound messages' status
callbacks out of order and repeated, calls with status and Real-Time Transcription callbacks,
Event Streams batches (some delivered twice) and a few deliberately bad inputs — while it
SIGKILLs and restarts workers and the scheduler leader at seeded random moments and restarts
Redis once. Then it waits for quiescence and for the lifecycle timeouts, and checks:

- every accepted communication is in v2 exactly once, with the best delivery status sent;
- no grouping key has more than one open conversation;
- no conversation stays ACTIVE past its inactive timeout, or open past its closed timeout;
- no shard went without progress for longer than ``--stall-bound`` while it had entries;
- dead letters only where the input was bad (and every bad input is dead-lettered or refused);
- Redis memory at the end (informational).

Exit status 1 on any FAIL. ``--json FILE`` writes the rows and figures for tests/test_soak.py.

    .venv/bin/python bench/soak.py                      # 2,000 webhooks, 3 workers, 3 kills
    .venv/bin/python bench/soak.py --webhooks 20000 --workers 4 --webs 2 --kills 12 --rate 120
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL  # noqa: E402
from tests.private_redis import PrivateRedis  # noqa: E402
from tests.procs import Proc, free_port  # noqa: E402
from tests.web_fixtures import call_status, inbound_message, message_status, sign, transcription  # noqa: E402
from workers import keys  # noqa: E402

OURS_A = "+14155550100"   # configuration soak-ch: grouped by addresses and channel type
OURS_B = "+14155550200"   # configuration soak-addr: grouped by addresses, across channels
FORM = "application/x-www-form-urlencoded"
OPEN = ("ACTIVE", "INACTIVE")


# --- threadline's processes -------------------------------------------------------------------

@dataclass
class Role:
    """One slot of a process type; ``proc`` is replaced when the soak restarts it."""

    name: str
    args: list[str]
    env: dict[str, str]
    ready_url: str | None = None
    proc: Proc | None = None
    killed: int = 0
    killing: bool = False
    logs: list[Path] = field(default_factory=list)

    def start(self) -> None:
        self.proc = Proc(self.args, self.env, ready_url=self.ready_url, ready_timeout=60)
        self.logs.append(self.proc.log_path)

    def kill(self) -> None:
        assert self.proc is not None
        self.killing = True  # the watcher must not count this exit as the process's own
        try:
            self.proc.kill()
        finally:
            self.killing = False
        self.killed += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.popen.poll() is None

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.stop(timeout=10)


# --- the traffic --------------------------------------------------------------------------------

@dataclass
class Step:
    """One webhook delivery: where, what, and what the soak expects back."""

    path: str
    params: list[tuple[str, str]] | None = None      # form deliveries
    body: str | None = None                          # Event Streams (JSON)
    query: dict[str, str] = field(default_factory=dict)
    token: str = AUTH_TOKEN
    expect: int = 200
    gap: float = 0.0                                 # seconds to wait before sending it
    idem: str = ""                                   # I-Twilio-Idempotency-Token (same on a retry)
    same: Step | None = None                         # a repeat of this earlier delivery, byte for byte
    sealed: bool = False                             # timestamps filled in (at the first send)
    on_ok: list[tuple[str, Any]] = field(default_factory=list)   # expectations it makes true


@dataclass
class Expected:
    """What the soak expects in v2 for one resourceId."""

    config: str
    text: str
    statuses: list[str] = field(default_factory=list)   # deliveryStatus of the callbacks answered 200


STATUS_RANK = {"INITIATED": 1, "IN_PROGRESS": 2, "FAILED": 3, "DELIVERED": 4, "READ": 5}
DELIVERY = {"queued": "INITIATED", "sent": "IN_PROGRESS", "delivered": "DELIVERED",
            "undelivered": "FAILED", "read": "READ"}


# Twilio stamps a callback when it sends it; the scenarios are drawn before the run, so their
# timestamps are placeholders the sender fills in at the first send (a retry repeats them).
NOW_ISO, NOW_RFC = "@@now-iso@@", "@@now-rfc2822@@"


def now_rfc2822() -> str:
    return format_datetime(datetime.now(UTC).replace(microsecond=0), usegmt=False).replace("-0000", "+0000")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stamp(text: str) -> str:
    if "@@now-" not in text:
        return text
    return text.replace(NOW_ISO, now_iso()).replace(NOW_RFC, now_rfc2822())


class Traffic:
    """Scenarios of webhooks, drawn from a seeded RNG; each knows what v2 should end up holding."""

    def __init__(self, rng: random.Random, customers: int) -> None:
        self.rng = rng
        self.people = [f"+1628{3000000 + i:07d}" for i in range(customers)]
        self.expected: dict[str, Expected] = {}
        self.bad: dict[str, str] = {}          # marker (a SID or CloudEvent id) → dead-letter reason
        self.seeds: list[dict[str, str]] = []  # messages the twin's Messages API must know
        self.kinds: Counter = Counter()

    def sid(self, prefix: str) -> str:
        return prefix + f"{self.rng.getrandbits(128):032x}"

    def token(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def party(self) -> tuple[str, str, str]:
        """(customer, ours, configuration id)."""
        ours, config = self.rng.choice(((OURS_A, "soak-ch"), (OURS_B, "soak-addr")))
        return self.rng.choice(self.people), ours, config

    def scenario(self, force_bad: bool = False) -> list[Step]:
        roll = self.rng.random()
        if force_bad or roll < 0.02:
            return self.bad_input()
        if roll < 0.40:
            return self.inbound()
        if roll < 0.68:
            return self.outbound_statuses()
        if roll < 0.86:
            return self.call()
        return self.event_streams()

    def inbound(self) -> list[Step]:
        customer, ours, config = self.party()
        wa = self.rng.random() < 0.25
        pre = "whatsapp:" if wa else ""
        sid = self.sid("SM")
        text = f"inbound {sid[-6:]}"
        self.expected[sid] = Expected(config, text)
        step = Step("/webhooks/twilio/messaging",
                    list(inbound_message(pre + customer, pre + ours, text, sid=sid).items()),
                    idem=self.token())
        self.kinds["inbound message"] += 1
        steps = [step]
        if self.rng.random() < 0.15:  # Twilio retries the very same delivery
            steps.append(Step(step.path, same=step, gap=self.rng.uniform(0, 0.3)))
            self.kinds["inbound message (retry)"] += 1
        return steps

    def outbound_statuses(self) -> list[Step]:
        customer, ours, config = self.party()
        wa = self.rng.random() < 0.3
        pre = "whatsapp:" if wa else ""
        sid = self.sid("SM")
        text = f"outbound {sid[-6:]}"
        self.seeds.append({"sid": sid, "from": pre + ours, "to": pre + customer, "body": text})
        self.expected[sid] = Expected(config, text)
        statuses = ["queued", "sent", "delivered"] + (["read"] if wa else [])
        if not wa and self.rng.random() < 0.15:
            statuses[-1] = "undelivered"
        self.rng.shuffle(statuses)  # out of order
        if self.rng.random() < 0.4:  # and one repeated: a re-delivery with a new token
            statuses.insert(self.rng.randrange(len(statuses) + 1), self.rng.choice(statuses))
        steps = []
        for st in statuses:
            params = message_status(sid, st, pre + ours, pre + customer)
            steps.append(Step("/webhooks/twilio/messaging/status", list(params.items()),
                              query={"tl": "soak"} if self.rng.random() < 0.5 else {},
                              idem=self.token(), gap=self.rng.uniform(0, 0.2),
                              on_ok=[("status", (sid, DELIVERY[st]))]))
            self.kinds["message status callback"] += 1
        return steps

    def call(self) -> list[Step]:
        customer, ours, config = self.party()
        call_sid, tsid = self.sid("CA"), self.sid("GT")
        steps = []
        for seq, st in enumerate(("initiated", "ringing", "in-progress")):
            steps.append(Step("/webhooks/twilio/voice/status", list(call_status(
                call_sid, st, customer, ours, sequence=seq, Timestamp=NOW_RFC).items()),
                idem=self.token(), gap=self.rng.uniform(0, 0.1)))
        seq = 0
        steps.append(self._tr(call_sid, tsid, "transcription-started", seq))
        for i in range(self.rng.randint(2, 4)):
            track = "inbound_track" if i % 2 == 0 else "outbound_track"
            if self.rng.random() < 0.3:  # a partial result first: progress, not a communication
                seq += 1
                steps.append(self._tr(call_sid, tsid, "transcription-content", seq, f"partial {i}",
                                      track=track, final=False))
            seq += 1
            text = f"said {i} on {tsid[-6:]}"
            self.expected[f"{tsid}:{seq}"] = Expected(config, text)
            step = self._tr(call_sid, tsid, "transcription-content", seq, text, track=track)
            steps.append(step)
            if self.rng.random() < 0.1:  # Twilio retries a callback
                steps.append(Step(step.path, same=step, gap=0.05))
        steps.append(self._tr(call_sid, tsid, "transcription-stopped", seq + 1))
        steps.append(Step("/webhooks/twilio/voice/status", list(call_status(
            call_sid, "completed", customer, ours, sequence=3, Timestamp=NOW_RFC,
            CallDuration="42").items()), idem=self.token()))
        self.kinds["call status callback"] += 4
        self.kinds["transcription callback"] += len(steps) - 4
        return steps

    def _tr(self, call_sid: str, tsid: str, event: str, seq: int, text: str | None = None, *,
            track: str = "inbound_track", final: bool = True) -> Step:
        params = transcription(call_sid, tsid, event, seq, transcript=text, track=track,
                               final=final, Timestamp=NOW_ISO)
        return Step("/webhooks/twilio/voice/transcription", list(params.items()), idem=self.token(),
                    gap=self.rng.uniform(0, 0.1))

    def event_streams(self, broken: bool = False) -> list[Step]:
        events: list[tuple[dict, tuple[str, str] | None]] = []
        for _ in range(self.rng.randint(3, 8)):
            customer, ours, config = self.party()
            kind = self.rng.random()
            if kind < 0.5:
                sid = self.sid("SM")
                text = f"streamed {sid[-6:]}"
                self.expected[sid] = Expected(config, text)
                events.append(self._cloud("com.twilio.messaging.inbound-message.received", "Messages", sid, {
                    "messageSid": sid, "accountSid": ACCOUNT_SID, "from": customer, "to": ours,
                    "body": text, "numMedia": 0}))
            elif kind < 0.8:
                sid = self.sid("SM")
                text = f"streamed out {sid[-6:]}"
                self.seeds.append({"sid": sid, "from": ours, "to": customer, "body": text})
                self.expected[sid] = Expected(config, text)
                for st in self.rng.sample(["sent", "delivered"], 2):
                    events.append(self._cloud(f"com.twilio.messaging.message.{st}", "Messages", sid, {
                        "messageSid": sid, "accountSid": ACCOUNT_SID, "from": ours, "to": customer,
                        "messageStatus": st.upper()}, status=DELIVERY[st]))
            else:
                call_sid = self.sid("CA")
                events.append(self._cloud("com.twilio.voice.status-callback.call.completed", "Calls", call_sid, {
                    "sid": call_sid, "request": {"method": "POST", "parameters": {
                        "CallSid": call_sid, "AccountSid": ACCOUNT_SID, "CallStatus": "completed",
                        "Direction": "inbound", "From": customer, "To": ours, "CallDuration": "7",
                        "CallbackSource": "call-progress-events", "SequenceNumber": "0"}}}))
        if broken:  # a signed batch with one event that cannot be read: dead-lettered by the web tier
            eid = self.sid("EZ")
            self.bad[eid] = "malformed_event"
            events.insert(self.rng.randrange(len(events) + 1), ({
                "specversion": "1.0", "type": "com.twilio.messaging.inbound-message.received",
                "id": eid, "time": NOW_ISO, "data": {"accountSid": ACCOUNT_SID}}, None))
        body = json.dumps([e for e, _ in events], separators=(",", ":"))
        on_ok = [("status", st) for _, st in events if st]
        step = Step("/webhooks/twilio/events", body=body, on_ok=on_ok)  # bodySHA256 added when sealed
        self.kinds["Event Streams batch"] += 1
        steps = [step]
        if self.rng.random() < 0.15:  # Event Streams delivers at least once
            steps.append(Step(step.path, same=step, gap=self.rng.uniform(0, 0.5)))
            self.kinds["Event Streams batch (again)"] += 1
        return steps

    def _cloud(self, ev_type: str, resource: str, sid: str, data: dict,
               status: str | None = None) -> tuple[dict, tuple[str, str] | None]:
        ts = NOW_ISO
        event = {"specversion": "1.0", "type": ev_type, "id": self.sid("EZ"), "time": ts,
                 "source": f"/2010-04-01/Accounts/{ACCOUNT_SID}/{resource}/{sid}.json",
                 "datacontenttype": "application/json",
                 "data": {"timestamp": ts, "accountSid": ACCOUNT_SID, "eventName": ev_type, **data}}
        return event, ((sid, status) if status else None)

    def bad_input(self) -> list[Step]:
        customer, ours, _ = self.party()
        kinds = ("unknown_message", "unknown_call", "broken_batch", "forged", "incomplete")
        kind = kinds[sum(v for k, v in self.kinds.items() if k.startswith("bad:")) % len(kinds)]  # each in turn
        self.kinds[f"bad: {kind}"] += 1
        if kind == "unknown_message":  # a status callback for a message the Messages API never had
            sid = self.sid("SM")
            self.bad[sid] = "message_not_found"
            return [Step("/webhooks/twilio/messaging/status",
                         list(message_status(sid, "delivered", ours, customer).items()), idem=self.token())]
        if kind == "unknown_call":  # words for a call threadline never saw
            tsid = self.sid("GT")
            self.bad[tsid] = "unknown_call"
            return [self._tr(self.sid("CA"), tsid, "transcription-content", 1, "who is this")]
        if kind == "broken_batch":
            return self.event_streams(broken=True)
        if kind == "forged":  # signed with another token: 403, nothing stored
            sid = self.sid("SM")
            return [Step("/webhooks/twilio/messaging", list(inbound_message(customer, ours, "forged", sid=sid).items()),
                         token="f" * 32, expect=403, idem=self.token())]
        params = inbound_message(customer, ours, "no sender")  # required From missing: 400
        params.pop("From")
        return [Step("/webhooks/twilio/messaging", list(params.items()), expect=400, idem=self.token())]


def build_traffic(seed: int, webhooks: int) -> tuple[Traffic, list[list[Step]]]:
    rng = random.Random(seed)
    traffic = Traffic(rng, customers=max(20, webhooks // 25))
    scenarios, total = [], 0
    every = max(8, webhooks // 20)  # a bad input at least this often: every kind of it in a small run
    while total < webhooks:
        steps = traffic.scenario(force_bad=len(scenarios) % every == every // 2)
        scenarios.append(steps)
        total += len(steps)
    return traffic, scenarios


# --- sending ----------------------------------------------------------------------------------

@dataclass
class Sent:
    ok: int = 0
    refused_as_expected: int = 0
    unexpected: Counter = field(default_factory=Counter)     # "<expect>→<got>"
    unanswered: int = 0
    retried_5xx: int = 0
    first: float = 0.0
    last_ok: float = 0.0
    statuses: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    unanswered_rids: set[str] = field(default_factory=set)

    @property
    def answered(self) -> int:
        """Deliveries done with (answered or given up on)."""
        return self.ok + self.refused_as_expected + sum(self.unexpected.values()) + self.unanswered


class Sender:
    def __init__(self, webs: list[str], rate: float, concurrency: int, give_up_s: float) -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.clients = [httpx.AsyncClient(base_url=w, timeout=15, limits=limits) for w in webs]
        self.interval = 1.0 / rate
        self.next_slot = time.monotonic()
        self.concurrency = concurrency
        self.give_up_s = give_up_s
        self.sent = Sent()

    async def _slot(self) -> None:
        now = time.monotonic()
        self.next_slot = max(self.next_slot + self.interval, now)
        wait = self.next_slot - now
        if wait > 0:
            await asyncio.sleep(wait)

    @staticmethod
    def seal(step: Step) -> Step:
        """The delivery as sent: a repeat is its original; timestamps are filled in once."""
        if step.same is not None:
            return step.same
        if not step.sealed:
            if step.body is not None:
                step.body = stamp(step.body)
                step.query = {**step.query, "bodySHA256": hashlib.sha256(step.body.encode()).hexdigest()}
            else:
                step.params = [(k, stamp(v)) for k, v in step.params or []]
            step.sealed = True
        return step

    async def deliver(self, client: httpx.AsyncClient, step: Step) -> int | None:
        """POST one delivery, retrying 5xx and connection errors like Twilio (same token)."""
        step = self.seal(step)
        query = urlencode(list(step.query.items()))
        url = PUBLIC_URL + step.path + (f"?{query}" if query else "")
        target = step.path + (f"?{query}" if query else "")
        if step.body is not None:
            content = step.body.encode()
            headers = {"Content-Type": "application/json", "X-Twilio-Signature": sign(url, step.body, step.token)}
        else:
            content = urlencode(step.params or []).encode()
            headers = {"Content-Type": FORM, "X-Twilio-Signature": sign(url, step.params or [], step.token)}
        if step.idem:
            headers["I-Twilio-Idempotency-Token"] = step.idem
        start, delay = time.monotonic(), 0.1
        while True:
            try:
                r = await client.post(target, content=content, headers=headers)
                if r.status_code < 500:
                    return r.status_code
                self.sent.retried_5xx += 1
            except httpx.HTTPError:
                pass
            if time.monotonic() - start > self.give_up_s:
                return None
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)

    async def scenario(self, n: int, steps: list[Step]) -> None:
        client = self.clients[n % len(self.clients)]
        for step in steps:
            if step.gap:
                await asyncio.sleep(step.gap)
            await self._slot()
            got = await self.deliver(client, step)
            s = self.sent
            if got is None:
                s.unanswered += 1
                for what, value in step.on_ok:
                    if what == "status":
                        s.unanswered_rids.add(value[0])
                continue
            if got != step.expect:
                s.unexpected[f"{step.path} {step.expect}->{got}"] += 1
                continue
            if got == 200:
                s.ok += 1
                s.last_ok = time.monotonic()
                for what, value in step.on_ok:
                    if what == "status":
                        s.statuses[value[0]].append(value[1])
            else:
                s.refused_as_expected += 1

    async def run(self, scenarios: list[list[Step]]) -> None:
        self.sent.first = time.monotonic()
        queue: asyncio.Queue = asyncio.Queue()
        for item in enumerate(scenarios):
            queue.put_nowait(item)

        async def worker() -> None:
            while not queue.empty():
                n, steps = queue.get_nowait()
                await self.scenario(n, steps)

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    async def close(self) -> None:
        for c in self.clients:
            await c.aclose()


# --- watching -------------------------------------------------------------------------------

class Monitor:
    """Samples every shard's progress (entries added - entries left) and the processes' health."""

    def __init__(self, redis_url: str, shards: int) -> None:
        self.r = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=1)
        self.shards = shards
        self.last_done: dict[int, int] = {}
        self.progress_at: dict[int, float] = {}
        self.max_stall: dict[int, float] = defaultdict(float)
        self.max_stall_from: dict[int, float] = {}   # monotonic start of each shard's longest stall
        self.peak_backlog = 0
        self.samples = 0
        self.queued: list[tuple[float, int, int, int]] = []   # (s, drain jobs, lifecycle jobs, all)

    def sample(self) -> int | None:
        """Total entries in the log now (None when Redis did not answer)."""
        pipe = self.r.pipeline(transaction=False)
        for n in range(self.shards):
            pipe.xlen(keys.events(n))
            pipe.xinfo_stream(keys.events(n))
        try:
            raw = pipe.execute(raise_on_error=False)
        except redis.exceptions.RedisError:
            return None
        now = time.monotonic()
        total = 0
        for n in range(self.shards):
            length, info = raw[2 * n], raw[2 * n + 1]
            if isinstance(length, Exception):
                return None
            added = info.get("entries-added", 0) if isinstance(info, dict) else 0
            done = added - length
            total += length
            if not length or done != self.last_done.get(n) or n not in self.progress_at:
                self.progress_at[n] = now
            elif now - self.progress_at[n] > self.max_stall[n]:
                self.max_stall[n] = now - self.progress_at[n]
                self.max_stall_from[n] = self.progress_at[n]
            self.last_done[n] = done
        self.samples += 1
        self.peak_backlog = max(self.peak_backlog, total)
        return total

    def queue(self, t: float) -> None:
        """What waits in the RQ queue: drain and lifecycle jobs (kept as a time series)."""
        from rq.job import Job

        try:
            ids = self.r.lrange(f"rq:queue:{keys.QUEUE}", 0, -1)
            ids += self.r.lrange(f"rq:queue:{getattr(keys, 'LIFECYCLE_QUEUE', keys.QUEUE)}", 0, -1)
            pipe = self.r.pipeline(transaction=False)
            for i in ids:
                pipe.hget(Job.key_for(i.decode()), "description")
            kinds = Counter((d or b"?").decode().split(" ")[0].rstrip(":") for d in pipe.execute())
        except redis.exceptions.RedisError:
            return
        self.queued.append((round(t, 1), kinds.get("drain", 0), kinds.get("lifecycle", 0), len(ids)))

    def logged(self) -> int:
        """Entries ever appended to the log, all shards (each accepted event once)."""
        pipe = self.r.pipeline(transaction=False)
        for n in range(self.shards):
            pipe.xinfo_stream(keys.events(n))
        return sum(i.get("entries-added", 0) for i in pipe.execute(raise_on_error=False) if isinstance(i, dict))

    def worst(self) -> tuple[int, float]:
        if not self.max_stall:
            return -1, 0.0
        shard = max(self.max_stall, key=self.max_stall.get)
        return shard, self.max_stall[shard]


# --- the run ------------------------------------------------------------------------------------

@dataclass
class Row:
    invariant: str
    expected: str
    seen: str
    verdict: str  # OK, FAIL, INFO


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed * 7919 + 1)
        self.tmp = Path(tempfile.mkdtemp(prefix="threadline-soak-"))
        self.redis = PrivateRedis(self.tmp)
        self.twin_port = free_port()
        self.twin_url = f"http://127.0.0.1:{self.twin_port}"
        self.roles: dict[str, Role] = {}
        self.events: list[str] = []
        self.kills: Counter = Counter()
        self.unexpected_exits: list[str] = []
        self.redis_down_s = 0.0
        self.t0 = time.monotonic()

    def log(self, what: str) -> None:
        line = f"[{time.monotonic() - self.t0:7.1f}s] {what}"
        self.events.append(line)
        if not self.args.quiet:
            print(line, flush=True)

    # --- setup ---------------------------------------------------------------------------
    def env(self, **extra: str) -> dict[str, str]:
        a = self.args
        base = {
            "REDIS_URL": self.redis.url, "THREADLINE_PUBLIC_URL": PUBLIC_URL,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_API_KEY": "", "TWILIO_API_SECRET": "", "TWILIO_AUTH_TOKEN_SECONDARY": "",
            "THREADLINE_AUTH_TOKENS": "",
            "THREADLINE_ADMIN_TOKEN": "soak-admin", "THREADLINE_TWILIO_BASE_URL": self.twin_url,
            "THREADLINE_SHARDS": str(a.shards), "THREADLINE_MINUTE_SECONDS": str(a.minute_seconds),
            "THREADLINE_TWILIO_TIMEOUT": str(a.twilio_timeout), "THREADLINE_LOG_LEVEL": a.log_level,
        }
        base.update(extra)
        return base

    def start(self) -> None:
        a = self.args
        self.redis.start()
        twin = Role("twin", ["twin", "--port", str(self.twin_port), "--operation-delay", "0"],
                    {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                     "THREADLINE_TWILIO_BASE_URL": "", "THREADLINE_AUTH_TOKENS": "",
                     "THREADLINE_LOG_LEVEL": "WARNING"},
                    ready_url=self.twin_url + "/_twin/healthz")
        self.roles["twin"] = twin
        twin.start()
        self.configure()
        for i in range(a.webs):
            port = free_port()
            self.roles[f"web{i}"] = Role(f"web{i}", ["web", "--port", str(port)], self.env(),
                                         ready_url=f"http://127.0.0.1:{port}/healthz")
        for i in range(a.workers):
            self.roles[f"worker{i}"] = Role(f"worker{i}", ["worker"], self.env())
        for i in range(2):
            self.roles[f"scheduler{i}"] = Role(f"scheduler{i}", ["scheduler"],
                                               self.env(THREADLINE_LOG_LEVEL="INFO"))
        for name, role in self.roles.items():
            if name != "twin":
                role.start()
        for name, role in self.roles.items():
            if name.startswith(("worker", "scheduler")):
                self.wait_up(role)
        # faults only once set up: the configurations above are created on a healthy twin
        spec = {"latency_ms": a.latency_ms, "jitter_ms": a.jitter_ms, "rate_500": 0.05,
                "rate_429": 0.03, "retry_after": 1, "rate_timeout": a.held_rate,
                "hold_seconds": a.twilio_timeout + 1.5, "seed": a.seed}
        httpx.post(self.twin_url + "/_twin/faults", json=spec, timeout=10).raise_for_status()
        self.log(f"started: redis :{self.redis.port} (AOF, fsync always), twin (faults {spec}), "
                 f"{a.webs} web, {a.workers} workers, 2 schedulers")

    def configure(self) -> None:
        from workers.capture.configuration import parse_configuration
        from workers.capture.store import ConfigStore

        client = redis.Redis.from_url(self.redis.url)
        timeouts = {"inactive": self.args.inactive, "closed": self.args.closed}
        with httpx.Client(base_url=self.twin_url, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10) as twin:
            for cid, ours, grouping in (("soak-ch", OURS_A, "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE"),
                                        ("soak-addr", OURS_B, "GROUP_BY_PARTICIPANT_ADDRESSES")):
                r = twin.post("/v2/ControlPlane/Configurations", json={
                    "displayName": cid, "description": "soak", "conversationGroupingType": grouping,
                    "memoryStoreId": "mem_store_00000000000000000000000000"})
                r.raise_for_status()
                v2_id = r.json()["related"]["configurationId"]
                settings = {}
                for ch, addr in (("SMS", ours), ("WHATSAPP", f"whatsapp:{ours}"), ("VOICE", ours)):
                    settings[ch] = {"captureRules": [{"from": addr, "to": "*"}, {"from": "*", "to": addr}],
                                    "statusTimeouts": timeouts}
                ConfigStore(client).put(parse_configuration({
                    "id": cid, "displayName": cid, "description": "soak", "conversationGroupingType": grouping,
                    "twilioConfigurationId": v2_id, "channelSettings": settings}))
        client.close()

    def seed_messages(self, seeds: list[dict[str, str]]) -> None:
        with httpx.Client(base_url=self.twin_url, timeout=10) as twin:
            for m in seeds:
                twin.post("/_twin/messages", json={**m, "status": "delivered"}).raise_for_status()

    # --- chaos ---------------------------------------------------------------------------
    def leader(self) -> Role:
        schedulers = [r for n, r in self.roles.items() if n.startswith("scheduler")]
        try:
            token = redis.Redis.from_url(self.redis.url, socket_timeout=1).get(keys.SCHEDULER_LEASE)
        except redis.exceptions.RedisError:
            token = None
        if token:
            name = token.decode()[:8]
            for role in schedulers:
                if role.alive() and f'"{name}"' in role.proc.output():
                    return role
        return schedulers[0]

    async def chaos(self, sent: Sent, total: int) -> None:
        """Kills and the Redis restart at seeded random points of the traffic (shares of the
        webhooks answered), so they land among it however fast this machine sends."""
        a = self.args
        plan: list[tuple[float, str]] = [(self.rng.uniform(0.1, 0.85), "kill") for _ in range(a.kills)]
        if not a.no_redis_restart:
            plan.append((self.rng.uniform(0.3, 0.7), "redis"))
        plan.sort()
        kills = 0
        for at, what in plan:
            while sent.answered < at * total:
                await asyncio.sleep(0.1)
            if what == "redis":
                self.redis_down_s = await asyncio.to_thread(self.redis.crash, a.redis_away)
                self.log(f"redis SIGKILLed and restarted on its AOF ({self.redis_down_s:.2f} s away)")
                continue
            if kills % 4 == 3:
                role = await asyncio.to_thread(self.leader)
            else:
                role = self.rng.choice([r for n, r in self.roles.items() if n.startswith("worker")])
            kills += 1
            if not role.alive():
                continue
            await asyncio.to_thread(role.kill)
            self.kills["scheduler leader" if role.name.startswith("scheduler") else "worker"] += 1
            self.log(f"SIGKILL {role.name}")
            await asyncio.sleep(self.rng.uniform(0.5, 2.5))
            await asyncio.to_thread(role.start)
            await asyncio.to_thread(self.wait_up, role)
            self.log(f"restarted {role.name}")

    def wait_up(self, role: Role, timeout: float = 60.0) -> None:
        """Until a started worker is registered with RQ (its start-up, which needs Redis, is
        over) or a scheduler has logged its start, so the next kill or Redis crash does not
        land inside a process's start-up (a supervisor's business, not the soak's)."""
        r = redis.Redis.from_url(self.redis.url, socket_timeout=2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and role.alive():
            assert role.proc is not None
            try:
                if role.name.startswith("scheduler"):
                    if "scheduler started" in role.proc.output():
                        return
                else:
                    from rq import Worker

                    if role.proc.popen.pid in {w.pid for w in Worker.all(connection=r)}:
                        return
            except redis.exceptions.RedisError:
                pass
            time.sleep(0.1)

    def check_processes(self) -> None:
        for role in self.roles.values():
            if (role.proc is not None and not role.killing and role.proc.popen.poll() is not None
                    and not role.proc._log.closed):
                rc = role.proc.popen.returncode
                self.unexpected_exits.append(f"{role.name} rc={rc}")
                self.log(f"{role.name} exited on its own (rc={rc}); restarting it:\n"
                         + role.proc.output()[-2000:])
                role.proc._log.close()
                role.start()

    async def watch(self, monitor: Monitor, stop: asyncio.Event) -> None:
        last_queue = 0.0
        while not stop.is_set():
            await asyncio.to_thread(monitor.sample)
            if time.monotonic() - last_queue >= 2.0:
                last_queue = time.monotonic()
                await asyncio.to_thread(monitor.queue, last_queue - self.t0)
            await asyncio.to_thread(self.check_processes)
            try:
                await asyncio.wait_for(stop.wait(), self.args.sample_every)
            except TimeoutError:
                pass

    # --- the whole run ---------------------------------------------------------------------
    async def run(self) -> tuple[list[Row], dict[str, Any]]:
        a = self.args
        traffic, scenarios = build_traffic(a.seed, a.webhooks)
        total = sum(len(s) for s in scenarios)
        await asyncio.to_thread(self.start)
        await asyncio.to_thread(self.seed_messages, traffic.seeds)
        self.log(f"traffic: {total} webhooks in {len(scenarios)} scenarios: " +
                 ", ".join(f"{k} {v}" for k, v in sorted(traffic.kinds.items())))
        monitor = Monitor(self.redis.url, a.shards)
        stop = asyncio.Event()
        watcher = asyncio.create_task(self.watch(monitor, stop))
        sender = Sender([r.ready_url.rsplit("/", 1)[0] for n, r in self.roles.items() if n.startswith("web")],
                        a.rate, a.concurrency, a.give_up)
        chaos = asyncio.create_task(self.chaos(sender.sent, total))
        t_send = time.monotonic()
        await sender.run(scenarios)
        t_sent = time.monotonic()
        await sender.close()
        self.log(f"sent {total} webhooks in {t_sent - t_send:.1f} s ({total / (t_sent - t_send):.0f}/s)")
        await chaos
        # quiescence: every shard's log empty
        quiet_at = None
        deadline = time.monotonic() + a.quiesce_timeout
        while time.monotonic() < deadline:
            left = await asyncio.to_thread(monitor.sample)
            if left == 0:
                quiet_at = time.monotonic()
                break
            await asyncio.sleep(0.25)
        t_quiet = (quiet_at - t_sent) if quiet_at else None
        logged = await asyncio.to_thread(monitor.logged)
        self.log(f"quiescent {t_quiet:.1f} s after the last webhook" if t_quiet is not None
                 else f"NOT quiescent after {a.quiesce_timeout} s")
        state_q = await asyncio.to_thread(self.state)
        # the lifecycle: wait for every conversation's closed timeout (plus slack) to pass
        inactive_s, closed_s = a.inactive * a.minute_seconds, a.closed * a.minute_seconds
        last = max((_last_activity(c) for c in state_q["conversations"]), default=time.time())
        lc_deadline = last + closed_s + a.lifecycle_slack
        while time.time() < lc_deadline:
            if all(c["status"] == "CLOSED" for c in (await asyncio.to_thread(self.state))["conversations"]):
                break
            await asyncio.sleep(1.0)
        await asyncio.sleep(0.5)
        state_end = await asyncio.to_thread(self.state)
        checked_at = time.time()
        # kept with the AOF (in the temp dir, removed unless the run fails or --keep-logs) so a
        # failing row can be diagnosed from v2's side too
        (self.tmp / "twin-state-quiescence.json").write_text(json.dumps(state_q))
        (self.tmp / "twin-state-end.json").write_text(json.dumps(state_end))
        stop.set()
        await watcher
        rows = self.check(traffic, sender.sent, monitor, state_q, state_end, quiet_at is not None,
                          checked_at, inactive_s, closed_s)
        figures = {
            "webhooks": total, "scenarios": len(scenarios), "kinds": dict(traffic.kinds),
            "send_seconds": round(t_sent - t_send, 2), "events_per_s": round(total / (t_sent - t_send), 1),
            "answered_200": sender.sent.ok, "retried_5xx": sender.sent.retried_5xx,
            "kills": dict(self.kills), "kills_total": sum(self.kills.values()),
            "redis_restarts": 0 if a.no_redis_restart else 1, "redis_away_s": round(self.redis_down_s, 2),
            "quiescence_s": None if t_quiet is None else round(t_quiet, 2), "events_logged": logged,
            "delivered_per_s": round(logged / (quiet_at - t_send), 1) if quiet_at else None,
            "peak_backlog": monitor.peak_backlog, "samples": monitor.samples,
            "queue": monitor.queued,
            "conversations": len(state_end["conversations"]),
            "communications": sum(len(c["communications"]) for c in state_end["conversations"]),
            "twin_faults": httpx.get(self.twin_url + "/_twin/counts", timeout=30).json().get("faults", {}),
            "wall_s": round(time.monotonic() - self.t0, 1),
        }
        return rows, figures

    def state(self) -> dict[str, Any]:
        return httpx.get(self.twin_url + "/_twin/state", timeout=120).json()

    # --- the checks ----------------------------------------------------------------------------
    def check(self, traffic: Traffic, sent: Sent, monitor: Monitor, state_q: dict, state_end: dict,
              quiet: bool, now: float, inactive_s: float, closed_s: float) -> list[Row]:
        a = self.args
        rows: list[Row] = []

        def row(name: str, expected: str, seen: str, ok: bool | None) -> None:
            rows.append(Row(name, expected, seen, "INFO" if ok is None else ("OK" if ok else "FAIL")))

        row("webhooks answered as expected", "all (200; 403/400 for forged/incomplete)",
            f"{sent.ok} x 200, {sent.refused_as_expected} refused as meant, "
            f"{sum(sent.unexpected.values())} otherwise {dict(sent.unexpected) or ''}, "
            f"{sent.unanswered} never answered",
            not sent.unexpected and not sent.unanswered)
        row("quiescence (every shard's log empty)", f"within {a.quiesce_timeout:g} s", "yes" if quiet else "no", quiet)

        # every accepted communication exactly once (by resourceId, across all conversations)
        found: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
        for conv in state_end["conversations"]:
            for comm in conv["communications"]:
                found[comm.get("resourceId")].append((conv, comm))
        expected = {rid: e for rid, e in traffic.expected.items() if rid not in sent.unanswered_rids}
        missing = [rid for rid in expected if not found.get(rid)]
        doubled = [rid for rid in expected if len(found.get(rid, ())) > 1]
        unexpected = [rid for rid in found if rid not in traffic.expected]
        waiting = self.logged_ids()
        lost = [rid for rid in missing if rid not in waiting]
        row("answered 200, then neither in v2 nor in the log (lost)", "0",
            f"{len(lost)} ({len(missing) - len(lost)} of the missing still in the log)" + _sample(lost), not lost)
        row("communications in v2 exactly once", f"{len(expected)} once each",
            f"{len(expected) - len(missing) - len(doubled)} once, {len(missing)} missing, "
            f"{len(doubled)} doubled, {len(unexpected)} unexpected" + _sample(missing + doubled + unexpected),
            not missing and not doubled and not unexpected)
        wrong_cfg = [rid for rid, e in expected.items() for conv, _ in found.get(rid, ())
                     if (conv.get("metadata") or {}).get("threadlineConfiguration") != e.config]
        wrong_text = [rid for rid, e in expected.items() for _, comm in found.get(rid, ())
                      if not _text_in(comm, e.text)]
        row("each in its configuration, with its text", "0 wrong", f"{len(wrong_cfg)} wrong configuration, "
            f"{len(wrong_text)} wrong text" + _sample(wrong_cfg + wrong_text), not wrong_cfg and not wrong_text)
        backwards = []
        for rid, statuses in sent.statuses.items():
            best = max(statuses, key=STATUS_RANK.get)
            for _, comm in found.get(rid, ()):
                got = [r.get("deliveryStatus") for r in comm.get("recipients") or []]
                if got != [best]:
                    backwards.append(f"{rid}:{got}!={best}")
        row("deliveryStatus = best status answered (out of order, repeated)",
            f"{len(sent.statuses)} messages", f"{len(sent.statuses) - len(backwards)} right, {len(backwards)} wrong"
            + _sample(backwards), not backwards)

        # one open conversation per grouping key (at quiescence, before the timeouts close them)
        for label, st in (("at quiescence", state_q), ("at the end", state_end)):
            keyed: dict[tuple, list[str]] = defaultdict(list)
            for conv in st["conversations"]:
                if conv["status"] in OPEN:
                    md = conv.get("metadata") or {}
                    keyed[(md.get("threadlineConfiguration"), md.get("threadlineGroupingKey"))].append(conv["id"])
            over = {k: v for k, v in keyed.items() if len(v) > 1}
            row(f"grouping keys with > 1 open conversation ({label})", "0",
                f"{len(over)} of {len(keyed)} keys ({sum(len(v) for v in over.values())} conversations)", not over)

        # lifecycle: nothing ACTIVE past its inactive timeout, nothing open past its closed timeout
        slack = a.lifecycle_slack
        late_active = [c["id"] for c in state_end["conversations"]
                       if c["status"] == "ACTIVE" and now > _last_activity(c) + inactive_s + slack]
        late_open = [c["id"] for c in state_end["conversations"]
                     if c["status"] in OPEN and now > _last_activity(c) + closed_s + slack]
        empty = sum(1 for c in state_end["conversations"] if not c["communications"])
        row(f"ACTIVE past inactive timeout ({inactive_s:g} s + {slack:g} s)", "0",
            f"{len(late_active)} of {len(state_end['conversations'])} ({empty} with no communication)"
            + _sample(late_active), not late_active)
        row(f"open past closed timeout ({closed_s:g} s + {slack:g} s)", "0", f"{len(late_open)}" + _sample(late_open),
            not late_open)

        # lifecycle timers: how late each transition was PATCHed (the engine's timer_lag histogram)
        totals = {k.decode(): int(v) for k, v in redis.Redis.from_url(self.redis.url).hgetall(
            keys.STATS_TOTAL).items() if k.startswith(b"timer_lag|")}
        lag_n = sum(v for k, v in totals.items() if k.endswith("|count"))
        lag_late = sum(v for k, v in totals.items() if k.endswith("|b:inf"))
        lag_sum = sum(v for k, v in totals.items() if k.endswith("|sum"))
        # a crash delays what was due meanwhile (a leader's lease passes in <= 5 s, a Redis
        # restart, a killed batch's timers come back after their claim): a few, not a share
        row("lifecycle transitions PATCHed > 10 s after their deadline", "<= 5% of them",
            f"{lag_late} of {lag_n} (mean lag {lag_sum / max(1, lag_n) / 1000:.1f} s; "
            f"{totals.get('timer_lag|INACTIVE|count', 0)} to INACTIVE, "
            f"{totals.get('timer_lag|CLOSED|count', 0)} to CLOSED)",
            lag_late <= 0.05 * lag_n)

        # shards: progress while they had entries
        shard, stall = monitor.worst()
        since = monitor.max_stall_from.get(shard)
        when = f" from {since - self.t0:.1f} s" if since is not None else ""
        row("longest time a shard had entries and no progress", f"<= {a.stall_bound:g} s",
            f"{stall:.1f} s (shard {shard}{when}; {monitor.samples} samples, every {a.sample_every:g} s)",
            stall <= a.stall_bound)

        # dead letters: only for bad input, and every bad input dead-lettered
        letters = self.dead_letters()
        matched: Counter = Counter()
        stray, wrong_reason = [], []
        for fields in letters:
            text = json.dumps(fields)
            marker = next((m for m in traffic.bad if m in text), None)
            if marker is None:
                stray.append(f"{fields.get('reason')}:{_ids(fields)}")
                continue
            matched[marker] += 1
            if fields.get("reason") != traffic.bad[marker]:
                wrong_reason.append(f"{marker}:{fields.get('reason')}!={traffic.bad[marker]}")
        unlettered = [m for m in traffic.bad if not matched[m]]
        reasons = Counter(f.get("reason") for f in letters)
        kinds = ", ".join(sorted(set(traffic.bad.values())))
        row("dead letters only where input was bad", f"{len(traffic.bad)} ({kinds})",
            f"{len(letters)} {dict(reasons)}; {len(stray)} for good input, {len(unlettered)} bad not lettered, "
            f"{len(wrong_reason)} wrong reason" + _sample(stray + unlettered + wrong_reason),
            not stray and not unlettered and not wrong_reason)

        row("processes that exited on their own", "0", f"{len(self.unexpected_exits)} {self.unexpected_exits or ''}",
            not self.unexpected_exits)

        # memory after everything closed
        info = redis.Redis.from_url(self.redis.url).info("memory")
        db = redis.Redis.from_url(self.redis.url)
        closed = sum(1 for c in state_end["conversations"] if c["status"] == "CLOSED")
        retention = _retention_setting()
        row("Redis memory at the end", "informational" if retention is None else retention,
            f"{info['used_memory'] / 1e6:.1f} MB used, {db.dbsize()} keys, {closed} closed conversations "
            f"(retention sweep: {'not on this branch' if retention is None else 'days-scale, not run by the soak'})",
            None)
        return rows

    def logged_ids(self) -> set[str]:
        """Resource ids of the entries still in the event log (read or not), all shards."""
        r = redis.Redis.from_url(self.redis.url)
        out: set[str] = set()
        for n in range(self.args.shards):
            for _, f in r.xrange(keys.events(n)):
                p = json.loads(f.get(b"p") or b"{}")
                if p.get("TranscriptionSid") and p.get("SequenceId"):
                    out.add(f"{p['TranscriptionSid']}:{p['SequenceId']}")
                if p.get("MessageSid"):
                    out.add(p["MessageSid"])
        r.close()
        return out

    def dead_letters(self) -> list[dict[str, str]]:
        r = redis.Redis.from_url(self.redis.url)
        return [{k.decode(): v.decode() for k, v in f.items()} for _, f in r.xrange(keys.DEAD_LETTERS)]

    def close(self, keep: bool) -> None:
        for role in self.roles.values():
            try:
                role.stop()
            except Exception:  # a stuck process: killed below with its group
                if role.proc is not None:
                    role.proc.signal(signal.SIGKILL)
        self.redis.stop()
        if keep:
            named = " ".join(f"{r.name}={p}" for r in self.roles.values() for p in r.logs)
            print(f"logs kept: {self.tmp} and {named}")
            return
        for role in self.roles.values():
            for p in role.logs:
                p.unlink(missing_ok=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _last_activity(conv: dict) -> float:
    """Epoch seconds of the conversation's last communication write (its creation when empty)."""
    stamps = [c.get("updatedAt") or c.get("createdAt") for c in conv["communications"]] or [conv["createdAt"]]
    return max(datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() for s in stamps if s)


def _text_in(comm: dict, text: str) -> bool:
    return text in json.dumps(comm.get("content") or {})


def _ids(fields: dict[str, str]) -> str:
    try:
        p = json.loads(fields.get("p") or "{}")
    except ValueError:
        return "?"
    return p.get("MessageSid") or p.get("TranscriptionSid") or p.get("CallSid") or p.get("CloudEventId") or "?"


def _sample(items: list[str], n: int = 3) -> str:
    return f" e.g. {', '.join(map(str, items[:n]))}" if items else ""


def _retention_setting() -> str | None:
    from workers.settings import Settings

    for f in Settings.model_fields.values():
        if f.validation_alias == "THREADLINE_RETENTION_DAYS":
            return "THREADLINE_RETENTION_DAYS present"
    return None


def print_table(rows: list[Row]) -> None:
    w = [max(len(h), *(len(getattr(r, a)) for r in rows)) for h, a in
         (("invariant", "invariant"), ("expected", "expected"))]
    print(f"\n{'invariant':<{w[0]}}  {'expected':<{w[1]}}  {'verdict':<7}  seen")
    print(f"{'-' * w[0]}  {'-' * w[1]}  -------  ----")
    for r in rows:
        print(f"{r.invariant:<{w[0]}}  {r.expected:<{w[1]}}  {r.verdict:<7}  {r.seen}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--webhooks", type=int, default=2000, help="webhook deliveries to send (default 2000)")
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--webs", type=int, default=1, choices=(1, 2))
    ap.add_argument("--kills", type=int, default=3, help="SIGKILLs: workers, and every 4th the scheduler leader")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-redis-restart", action="store_true")
    ap.add_argument("--redis-away", type=float, default=1.0, help="seconds Redis stays down when restarted")
    ap.add_argument("--rate", type=float, default=150.0, help="webhooks per second offered (default 150)")
    ap.add_argument("--concurrency", type=int, default=32, help="scenarios in flight")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--jitter-ms", type=float, default=80.0)
    ap.add_argument("--held-rate", type=float, default=0.005,
                    help="share of v2 requests the twin processes but answers after the client's timeout")
    ap.add_argument("--twilio-timeout", type=float, default=3.0, help="THREADLINE_TWILIO_TIMEOUT")
    ap.add_argument("--minute-seconds", type=float, default=1.0, help="THREADLINE_MINUTE_SECONDS")
    ap.add_argument("--inactive", type=int, default=4, help="statusTimeouts.inactive (configured minutes)")
    ap.add_argument("--closed", type=int, default=15, help="statusTimeouts.closed (configured minutes)")
    ap.add_argument("--lifecycle-slack", type=float, default=8.0, help="seconds a timeout may be late")
    ap.add_argument("--stall-bound", type=float, default=15.0, help="longest allowed shard stall (s)")
    ap.add_argument("--quiesce-timeout", type=float, default=180.0)
    ap.add_argument("--give-up", type=float, default=60.0, help="seconds a webhook is retried on 5xx")
    ap.add_argument("--sample-every", type=float, default=0.5)
    ap.add_argument("--json", type=Path, default=None, help="write rows and figures here")
    ap.add_argument("--keep-logs", action="store_true")
    ap.add_argument("--log-level", default="WARNING", help="THREADLINE_LOG_LEVEL of web and workers")
    ap.add_argument("--quiet", action="store_true")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    soak = Soak(args)
    failed = True
    try:
        rows, figures = asyncio.run(soak.run())
        failed = any(r.verdict == "FAIL" for r in rows)
    finally:
        soak.close(keep=args.keep_logs or failed)
    print_table(rows)
    f = figures
    print(f"\nwebhooks {f['webhooks']} sent in {f['send_seconds']} s ({f['events_per_s']}/s offered), "
          f"{f['answered_200']} answered 200, {f['retried_5xx']} 5xx retried; events logged {f['events_logged']}, "
          f"{f['delivered_per_s']} events/s from the first webhook to quiescence")
    print(f"kills {f['kills_total']} {f['kills']}; redis restarts {f['redis_restarts']} "
          f"({f['redis_away_s']} s away); quiescent {f['quiescence_s']} s after the last webhook; "
          f"peak backlog {f['peak_backlog']}")
    print(f"v2: {f['conversations']} conversations, {f['communications']} communications; "
          f"twin faults injected {f['twin_faults']}; wall {f['wall_s']} s; "
          f"machine {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": [r.__dict__ for r in rows], "figures": figures,
                                         "events": soak.events}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
