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
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from bench.soak_parts.sending import Sender, Sent  # noqa: E402
from bench.soak_parts.traffic import OURS_A, OURS_B, build_traffic  # noqa: E402
from bench.soak_parts.verdicts import Row, check, last_activity, print_table  # noqa: E402
from bench.soak_parts.watching import Monitor  # noqa: E402
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL  # noqa: E402
from tests.private_redis import PrivateRedis  # noqa: E402
from tests.procs import Proc, free_port  # noqa: E402
from workers.foundations import keys  # noqa: E402

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
        last = max((last_activity(c) for c in state_q["conversations"]), default=time.time())
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
        rows = check(self, traffic, sender.sent, monitor, state_q, state_end, quiet_at is not None,
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
