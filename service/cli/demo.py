"""``threadline dev --demo``: a sample configuration and traffic that keeps happening on the twin.

It loads one configuration (SMS and WhatsApp on the business number, ``inactive: 1`` /
``closed: 2`` minutes — the dev runner scales a minute to 10 s, so a quiet conversation goes
INACTIVE after ~10 s and CLOSES after ~20 s), binds it to a v2 Configuration (``configs sync``,
on the twin), gives the twin's account the business number and points its ``SmsUrl`` at
threadline through the twin's IncomingPhoneNumbers API (as ``threadline connect --forward`` or
an operator would), then makes traffic *happen* on the twin until the process stops:
customers write in (``/_twin/simulate/message``, inbound), the business answers (outbound, with
a ``StatusCallback`` to threadline, now and then undelivered), some customers write again,
others go quiet and their conversations close, new customers arrive. The twin sends the signed
webhooks, as Twilio would. Now and then the demo also posts a webhook with a wrong signature,
so the dashboard's refusals move too.

The pace (a step every ~2 s) is one a person can follow on ``/dashboard``. Nothing here logs a
message body.
"""
from __future__ import annotations

import asyncio
import itertools
import random
import threading
import uuid

import httpx

from workers.foundations.log import get_logger
from workers.foundations.settings import Settings

logger = get_logger("threadline.demo")

BUSINESS = "+15005550100"
CUSTOMERS_SMS = ["+14155550101", "+14155550102", "+14155550103", "+14155550104", "+14155550105"]
CUSTOMERS_WA = ["+447700900104", "+447700900105", "+447700900106"]
MEMORY_STORE = "mem_store_0" + "0" * 25
# A ready-to-paste explain that matches the demo (printed in the banner; the README uses it too).
EXPLAIN = f"threadline rules explain --channel SMS --from {CUSTOMERS_SMS[0]} --to {BUSINESS}"

CONFIG = {
    "id": "demo",
    "displayName": "threadline demo",
    "description": "Sample configuration loaded by threadline dev --demo",
    "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
    "memoryStoreId": MEMORY_STORE,
    "channelSettings": {
        "SMS": {"captureRules": [{"from": "*", "to": BUSINESS}, {"from": BUSINESS, "to": "*"}],
                "statusTimeouts": {"inactive": 1, "closed": 2}},
        "WHATSAPP": {"captureRules": [{"from": "*", "to": f"whatsapp:{BUSINESS}"},
                                      {"from": f"whatsapp:{BUSINESS}", "to": "*"}],
                     "statusTimeouts": {"inactive": 1, "closed": 2}},
    },
    "participantTypes": {BUSINESS: "AGENT"},
}

INBOUND = ["Hi, is my order on its way?", "Can I change my delivery address?",
           "Do you open on Sundays?", "Is the blue one back in stock?", "Thanks!"]
REPLIES = ["Hello! Yes, it ships today.", "Of course: reply with the new address.",
           "We open 10:00 to 16:00 on Sundays.", "It is: shall I put one aside?"]

STEP_SECONDS = 2.0


def banner_lines() -> list[str]:
    """What the demo plays, for the dev banner: its numbers and an explain that matches."""
    return [f"  demo: business number {BUSINESS} (SMS and WhatsApp); customers "
            f"{', '.join(CUSTOMERS_SMS[:2])}, … and whatsapp:{CUSTOMERS_WA[0]}, …",
            f"  try:  {EXPLAIN}"]


def load_configuration(settings: Settings) -> None:
    from workers.capture.configuration import Configuration
    from workers.capture.store import ConfigStore
    from workers.foundations.redis_conn import connect

    ConfigStore(connect(settings)).put(Configuration.model_validate(CONFIG))


def bind_configuration(settings: Settings) -> None:
    from workers.foundations.redis_conn import connect_async
    from workers.twilio import sync as configsync

    async def go() -> None:
        redis = connect_async(settings)
        try:
            results = await configsync.sync_all(settings, redis, only=["demo"], timeout=30.0)
            logger.info("demo configuration bound", extra={"results": [str(r) for r in results]})
        finally:
            await redis.aclose()

    asyncio.run(go())


class Player:
    """Makes traffic happen on the twin's account, as customers and the business would."""

    def __init__(self, settings: Settings, web_url: str, seed: int | None = None) -> None:
        self.settings = settings
        self.web = web_url.rstrip("/")
        self.public = (settings.public_url or self.web).rstrip("/")
        self.twin = (settings.twilio_base_url or "").rstrip("/")
        self.auth = (settings.twilio_account_sid or "", settings.twilio_auth_token or "")
        self.http = httpx.Client(timeout=10.0)
        self.random = random.Random(seed)
        self.steps = 0

    def give_number(self) -> None:
        """The business number on the twin's account, its incoming messages sent to threadline."""
        r = self.http.post(f"{self.twin}/_twin/numbers", json={"phoneNumber": BUSINESS})
        r.raise_for_status()
        sid = r.json()["sid"]
        base = f"{self.twin}/2010-04-01/Accounts/{self.auth[0]}/IncomingPhoneNumbers/{sid}.json"
        r = self.http.post(base, auth=self.auth, data={
            "SmsUrl": f"{self.public}/webhooks/twilio/messaging", "SmsMethod": "POST"})
        r.raise_for_status()

    def inbound(self, customer: str, channel: str) -> None:
        self._simulate({"from": customer, "to": BUSINESS, "channel": channel,
                        "body": self.random.choice(INBOUND)})

    def reply(self, customer: str, channel: str, fail: bool = False) -> None:
        body = {"from": BUSINESS, "to": customer, "channel": channel, "direction": "outbound",
                "body": self.random.choice(REPLIES),
                "statusCallback": f"{self.public}/webhooks/twilio/messaging/status"}
        if fail:
            body["fail"] = "30003"
        self._simulate(body)

    def forged(self) -> None:
        """A webhook signed with the wrong token: threadline answers 403 and counts it."""
        sid = "SM" + uuid.uuid4().hex
        self.http.post(f"{self.web}/webhooks/twilio/messaging",
                       headers={"X-Twilio-Signature": "bm90LXNpZ25lZA=="},
                       data={"MessageSid": sid, "AccountSid": self.auth[0], "From": CUSTOMERS_SMS[0],
                             "To": BUSINESS, "Body": "forged"})

    def _simulate(self, body: dict) -> None:
        r = self.http.post(f"{self.twin}/_twin/simulate/message", json=body)
        if r.status_code != 202:
            logger.warning("demo traffic refused by the twin", extra={"status": r.status_code})

    def step(self) -> None:
        """One thing happening: a customer writes and is answered, or writes again, or a forgery."""
        self.steps += 1
        if self.steps % 15 == 0:
            self.forged()
            return
        channel = "WHATSAPP" if self.random.random() < 0.35 else "SMS"
        customer = self.random.choice(CUSTOMERS_WA if channel == "WHATSAPP" else CUSTOMERS_SMS)
        self.inbound(customer, channel)
        if self.random.random() < 0.8:
            self.reply(customer, channel, fail=self.random.random() < 0.08)


def play(settings: Settings, web_url: str, stop: threading.Event, *, step_seconds: float = STEP_SECONDS,
         seed: int | None = None) -> int:
    """Play until ``stop`` is set; returns how many steps were played."""
    p = Player(settings, web_url, seed)
    p.give_number()
    # A first round, one customer per channel at once, so the page has something at first look.
    for customer, channel in ((CUSTOMERS_SMS[0], "SMS"), (CUSTOMERS_WA[0], "WHATSAPP")):
        p.inbound(customer, channel)
        p.reply(customer, channel)
    for _ in itertools.count():
        if stop.wait(step_seconds):
            break
        try:
            p.step()
        except httpx.HTTPError as exc:  # the twin restarting, a slow machine: the next step tries again
            logger.warning("demo step failed", extra={"error": type(exc).__name__})
    return p.steps


def run(settings: Settings, web_url: str, stop: threading.Event) -> None:
    """The whole demo, until ``stop``; logs what it did (never message bodies)."""
    try:
        load_configuration(settings)
        bind_configuration(settings)
        logger.info("demo playing", extra={"business": BUSINESS, "every_seconds": STEP_SECONDS})
        steps = play(settings, web_url, stop)
        logger.info("demo stopped", extra={"steps": steps})
    except Exception:
        logger.exception("demo failed")
