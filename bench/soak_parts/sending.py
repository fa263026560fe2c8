"""Sending the soak's webhooks at a rate, with Twilio's retries, and what the answers were."""
from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx

from bench.soak_parts.traffic import FORM, Step, stamp
from tests.conftest import PUBLIC_URL
from tests.web_fixtures import sign


@dataclass
class Sent:
    ok: int = 0
    refused_as_expected: int = 0
    unexpected: Counter = field(default_factory=Counter)     # "<expect>→<got>"
    unanswered: int = 0
    retried_5xx: int = 0
    first: float = 0.0
    last_ok: float = 0.0
    # message sid → (deliveryStatus, epoch seconds it was answered 200) of each status callback
    statuses: dict[str, list[tuple[str, float]]] = field(default_factory=lambda: defaultdict(list))
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
                        s.statuses[value[0]].append((value[1], time.time()))
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
