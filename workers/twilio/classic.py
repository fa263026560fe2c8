"""The classic bridge's hold on a Conversations (classic) service's webhook configuration.

``threadline configs sync`` and ``threadline connect`` point every bridged service's post-event
webhook at threadline
(:func:`connect_service`): ``PostWebhookUrl`` = ``$THREADLINE_PUBLIC_URL/webhooks/twilio/conversations``,
``Method`` POST, and ``Filters`` = the post-events the bridge reads (kept with any the service
already had). A classic service has ONE post-event URL: what was there is recorded first
(``tl:classic:saved:{IS}``, written once, so a second sync never records threadline's own
setting as the original), and :func:`restore_service` — which ``threadline disconnect`` calls, as
does ``threadline configs unsync`` — puts it back exactly and forgets the record.

A service whose post-event URL pointed at the operator's application stops feeding that
application when the bridge takes it: the sync says so (``replaced``), and
docs/classic-bridge.md describes Event Streams as the way to keep both.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

from workers.foundations import keys
from workers.foundations.log import get_logger
from workers.foundations.settings import Settings
from workers.parse.classic import EVENTS
from workers.twilio.client import V2Client

logger = get_logger("threadline.classic")

PATH = "/webhooks/twilio/conversations"
SET, UNCHANGED, REPLACED, RESTORED, NOTHING = "set", "unchanged", "replaced", "restored", "nothing saved"


def target(settings: Settings) -> str | None:
    """The post-event URL the bridge needs (None without THREADLINE_PUBLIC_URL)."""
    return settings.public_url.rstrip("/") + PATH if settings.public_url else None


async def connect_service(client: V2Client, redis: Any, service_sid: str, url: str) -> str:
    """Point the service's post-event webhook at ``url`` with the bridge's filters; the outcome
    (``set``; ``replaced`` when another URL was there; ``unchanged``)."""
    current = await client.fetch_classic_webhooks(service_sid)
    filters = [f for f in current.get("filters") or [] if isinstance(f, str)]
    wanted = filters + [e for e in EVENTS if e not in filters]
    if current.get("post_webhook_url") == url and wanted == filters and current.get("method") == "POST":
        return UNCHANGED
    saved = {"post_webhook_url": current.get("post_webhook_url"), "filters": filters,
             "method": current.get("method") or "POST"}
    if current.get("post_webhook_url") != url:  # never record threadline's own URL as the original
        await redis.set(keys.classic_webhooks_saved(service_sid), json.dumps(saved), nx=True)
    await client.update_classic_webhooks(service_sid, {"PostWebhookUrl": url, "Method": "POST",
                                                       "Filters": wanted})
    previous = saved["post_webhook_url"]
    logger.info("classic service webhooks set", extra={"service": service_sid})
    return REPLACED if previous and previous != url else SET


async def restore_service(client: V2Client, redis: Any, service_sid: str) -> str:
    """Put back the webhook configuration :func:`connect_service` recorded, and forget it."""
    raw = await redis.get(keys.classic_webhooks_saved(service_sid))
    if raw is None:
        return NOTHING
    saved = json.loads(raw)
    form: dict[str, Any] = {"PostWebhookUrl": saved.get("post_webhook_url") or "",
                            "Method": saved.get("method") or "POST"}
    if saved.get("filters"):
        form["Filters"] = saved["filters"]
    await client.update_classic_webhooks(service_sid, form)
    await redis.delete(keys.classic_webhooks_saved(service_sid))
    logger.info("classic service webhooks restored", extra={"service": service_sid})
    return RESTORED


async def saved_services(redis: Any) -> list[str]:
    """The services whose original webhook configuration threadline holds."""
    prefix = keys.classic_webhooks_saved("")
    out = []
    async for key in redis.scan_iter(match=prefix + "*"):
        name = key.decode() if isinstance(key, bytes) else key
        out.append(name[len(prefix):])
    return sorted(out)


async def restore_all(settings: Settings, redis: Any, client: V2Client | None = None) -> dict[str, str]:
    """Restore every recorded service (``disconnect``): service Sid → outcome."""
    own = client is None
    client = client or V2Client(settings)
    try:
        return {sid: await restore_service(client, redis, sid) for sid in await saved_services(redis)}
    finally:
        if own:
            await client.aclose()


async def connect_all(settings: Settings, redis: Any, services: list[str], url: str,
                      client: V2Client | None = None) -> dict[str, str]:
    """:func:`connect_service` for each service (``connect``): service Sid → outcome."""
    own = client is None
    client = client or V2Client(settings)
    try:
        return {sid: await connect_service(client, redis, sid, url) for sid in services}
    finally:
        if own:
            await client.aclose()


def connect_all_blocking(settings: Settings, services: list[str], url: str) -> dict[str, str]:
    """:func:`connect_all` for a synchronous caller (a CLI command): its own Redis and loop."""
    from workers.foundations.redis_conn import connect_async

    async def main() -> dict[str, str]:
        redis = connect_async(settings)
        try:
            return await connect_all(settings, redis, services, url)
        finally:
            await redis.aclose()

    return asyncio.run(main())


def restore_all_blocking(settings: Settings) -> dict[str, str]:
    """:func:`restore_all` for a synchronous caller (a CLI command): its own Redis and loop."""
    from workers.foundations.redis_conn import connect_async

    async def main() -> dict[str, str]:
        redis = connect_async(settings)
        try:
            return await restore_all(settings, redis)
        finally:
            await redis.aclose()

    return asyncio.run(main())
