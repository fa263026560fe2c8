"""``threadline dev --demo``: a sample configuration and realistic signed traffic, over HTTP.

It loads one configuration (SMS and WhatsApp on a business number, ``inactive: 1`` /
``closed: 2`` minutes — the dev runner scales a minute to 10 s, so conversations go INACTIVE
after ~10 s and CLOSE after ~20 s), binds it to a v2 Configuration (``configs sync``, on the
twin), then plays several customers: inbound messages, the business's replies (seeded in the
twin's Messages API, as Twilio would hold them) and their status callbacks — each webhook
signed with the auth token the web tier validates and POSTed to the web tier like Twilio does.
"""
from __future__ import annotations

import asyncio
import time
import uuid

import httpx
from twilio.request_validator import RequestValidator

from workers.log import get_logger
from workers.settings import Settings

logger = get_logger("threadline.demo")

BUSINESS = "+15005550100"
CUSTOMERS_SMS = ["+14155550101", "+14155550102", "+14155550103"]
CUSTOMERS_WA = ["+447700900104", "+447700900105"]
MEMORY_STORE = "mem_store_0" + "0" * 25

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
           "Do you open on Sundays?", "Thanks!"]
REPLIES = ["Hello! Yes, it ships today.", "Of course: reply with the new address.",
           "We open 10:00 to 16:00 on Sundays."]


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def load_configuration(settings: Settings) -> None:
    from workers.capture.configuration import Configuration
    from workers.capture.store import ConfigStore
    from workers.redis_conn import connect

    ConfigStore(connect(settings)).put(Configuration.model_validate(CONFIG))


def bind_configuration(settings: Settings) -> None:
    from workers.redis_conn import connect_async
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
    """Posts signed webhooks to the web tier, as Twilio would."""

    def __init__(self, settings: Settings, web_url: str) -> None:
        self.settings = settings
        self.web = web_url.rstrip("/")
        self.public = (settings.public_url or self.web).rstrip("/")
        self.validator = RequestValidator(settings.twilio_auth_token or "")
        self.http = httpx.Client(timeout=10.0)
        self.account = settings.twilio_account_sid or ""
        self.posted = 0

    def post(self, path: str, params: dict[str, str]) -> int:
        signature = self.validator.compute_signature(self.public + path, params)
        resp = self.http.post(self.web + path, data=params,
                              headers={"X-Twilio-Signature": signature,
                                       "I-Twilio-Idempotency-Token": uuid.uuid4().hex})
        self.posted += 1
        if resp.status_code != 200:
            logger.warning("demo webhook refused", extra={"path": path, "status": resp.status_code})
        return resp.status_code

    def inbound(self, customer: str, business: str, body: str) -> None:
        sid = _sid("SM")
        self.post("/webhooks/twilio/messaging", {
            "MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "AccountSid": self.account,
            "From": customer, "To": business, "Body": body, "NumMedia": "0", "NumSegments": "1",
            "SmsStatus": "received", "ApiVersion": "2010-04-01"})

    def reply(self, business: str, customer: str, body: str) -> None:
        """An outbound reply: Twilio holds the message; threadline hears its status callbacks."""
        sid = _sid("SM")
        if self.settings.twilio_base_url:  # the twin: seed the message its Messages API serves
            try:
                self.http.post(self.settings.twilio_base_url + "/_twin/messages",
                               json={"sid": sid, "from": business, "to": customer, "body": body,
                                     "status": "delivered"})
            except httpx.HTTPError:
                pass
        for status in ("sent", "delivered"):
            self.post("/webhooks/twilio/messaging/status", {
                "MessageSid": sid, "SmsSid": sid, "AccountSid": self.account, "From": business,
                "To": customer, "MessageStatus": status, "SmsStatus": status,
                "ApiVersion": "2010-04-01"})


def play(settings: Settings, web_url: str) -> int:
    """Several customers over SMS and WhatsApp, with replies; returns webhooks posted."""
    p = Player(settings, web_url)
    convs = [(c, BUSINESS) for c in CUSTOMERS_SMS] + \
            [(f"whatsapp:{c}", f"whatsapp:{BUSINESS}") for c in CUSTOMERS_WA]
    for i, (customer, business) in enumerate(convs):
        p.inbound(customer, business, INBOUND[i % len(INBOUND)])
        time.sleep(0.2)
        p.reply(business, customer, REPLIES[i % len(REPLIES)])
        time.sleep(0.2)
    # a second round for some: replies keep those conversations ACTIVE a little longer
    for customer, business in convs[::2]:
        p.inbound(customer, business, INBOUND[-1])
        time.sleep(0.2)
    return p.posted


def run(settings: Settings, web_url: str) -> None:
    """The whole demo; logs what it did (never message bodies)."""
    try:
        load_configuration(settings)
        bind_configuration(settings)
        n = play(settings, web_url)
        logger.info("demo traffic played", extra={
            "webhooks": n, "note": "conversations go INACTIVE and CLOSE within a minute; "
                                   "watch /dashboard or GET /api/v1/conversations"})
    except Exception:
        logger.exception("demo failed")
