"""``threadline configs sync``: bind every threadline configuration to a v2 Configuration.

v2 requires a ``configurationId`` on every conversation (DESIGN §3), so each threadline
configuration needs a v2 Configuration: the one named by its ``twilioConfigurationId``, or one
this command creates. For each configuration in the store (the admin API's and the
THREADLINE_CONFIG file's, as the service sees them):

- no ``twilioConfigurationId`` (and no binding recorded by an earlier sync) → ``POST
  /v2/ControlPlane/Configurations``; bound → ``PUT /v2/ControlPlane/Configurations/{id}``
  (a full replacement), skipped when v2 already holds the same settings;
- the body is :meth:`Configuration.v2_body`: Orchestrator's own fields, ALWAYS without
  ``captureRules`` (``statusTimeouts`` kept), so Twilio's hosted capture never captures the
  traffic threadline captures;
- each write carries a fresh ``Idempotency-Key`` (a UUID, reused by the client's retries of
  that write, so a retried POST never makes two configurations);
- the 202's operation is polled until COMPLETED or FAILED (bounded by ``timeout``); the v2
  id (operation ``related.configurationId``) is recorded into the store as the
  configuration's ``twilioConfigurationId`` (a new version, same source) and into
  ``tl:config:v2ids``, so a later sync PUTs instead of creating a duplicate even when a
  reload of the file dropped the field.

A configuration with ``conversationsV1Bridge`` gets a second line: its classic service's
post-event webhook pointed at threadline (:mod:`workers.twilio.classic`, which records what was
there for ``disconnect``).

``memoryStoreId``: v2 requires one on create and PUT. A configuration without one is refused
with a line naming it — unless it is already bound (``twilioConfigurationId``): then the v2
Configuration is someone else's to manage and is left as it is (``kept``), not a failure.

The command prints one line per configuration and exits 1 when any failed.
"""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any, TextIO

from workers.capture.configuration import Configuration
from workers.capture.store import AsyncConfigStore, VersionedConfig
from workers.foundations import keys
from workers.foundations.log import get_logger
from workers.foundations.settings import Settings
from workers.twilio import classic
from workers.twilio.client import V2Client, V2Error

logger = get_logger("threadline.configsync")

# Outcomes of one configuration's sync.
CREATED, UPDATED, UNCHANGED, KEPT, FAILED = "created", "updated", "unchanged", "kept", "failed"


@dataclass(frozen=True)
class SyncResult:
    config_id: str
    outcome: str
    twilio_id: str | None = None
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome == FAILED

    def line(self) -> str:
        head = f"{self.config_id}: {self.outcome}"
        if self.twilio_id:
            head += f" {self.twilio_id}"
        return f"{head} ({self.detail})" if self.detail else head


def _same(body: dict[str, Any], remote: dict[str, Any]) -> bool:
    """True when v2 already holds every field threadline would PUT (and no capture rules)."""
    for name, value in body.items():
        if name == "channelSettings":
            theirs = remote.get("channelSettings") or {}
            mine = {ch: s for ch, s in value.items() if s}
            theirs = {ch: {k: v for k, v in (s or {}).items() if v}
                      for ch, s in theirs.items() if s}
            if mine != theirs:
                return False
        elif remote.get(name) != value:
            return False
    return True


async def _write(client: V2Client, body: dict, twilio_id: str | None, timeout: float,
                 interval: float | None) -> tuple[str, dict]:
    key = str(uuid.uuid4())
    if twilio_id:
        accepted = await client.update_configuration(twilio_id, body, idempotency_key=key)
    else:
        accepted = await client.create_configuration(body, idempotency_key=key)
    op = await client.wait_operation(accepted, timeout, interval=interval)
    if op.get("status") == "FAILED":
        err = op.get("error") or {}
        why = err.get("detail") or err.get("title") or "no detail given"
        raise V2Error(err.get("status"), None, f"operation {accepted.operation_id} FAILED: {why}",
                      transient=False, route="GET /v2/ControlPlane/Operations/{id}",
                      reason="operation_failed")
    related = {**accepted.related, **(op.get("related") or {})}
    new_id = twilio_id or related.get("configurationId")
    if not new_id:
        raise V2Error(200, None, f"operation {accepted.operation_id} COMPLETED without "
                      "related.configurationId", transient=False, reason="v2_bad_response")
    return new_id, op


async def sync_one(vc: VersionedConfig, store: AsyncConfigStore, client: V2Client, redis,
                   *, timeout: float = 60.0, interval: float | None = None) -> SyncResult:
    config = vc.config
    raw_bound = await redis.hget(keys.CONFIG_V2_IDS, config.id)
    recorded = raw_bound.decode() if isinstance(raw_bound, bytes) else raw_bound
    twilio_id = config.twilioConfigurationId or recorded
    if not config.memoryStoreId:
        if twilio_id:
            return SyncResult(config.id, KEPT, twilio_id,
                              "no memoryStoreId: the bound v2 Configuration is left as it is")
        return SyncResult(config.id, FAILED, None,
                          "refused: no memoryStoreId, which v2 requires to create a "
                          "Configuration; set memoryStoreId or bind an existing v2 Configuration "
                          "with twilioConfigurationId")
    body = config.v2_body()
    try:
        if twilio_id:
            remote = await client.fetch_configuration(twilio_id)
            if _same(body, remote):
                await _record(store, redis, vc, twilio_id)
                return SyncResult(config.id, UNCHANGED, twilio_id)
        new_id, op = await _write(client, body, twilio_id, timeout, interval)
    except V2Error as exc:
        if exc.status == 404 and twilio_id:
            return SyncResult(config.id, FAILED, twilio_id,
                              f"v2 Configuration {twilio_id} not found; remove "
                              "twilioConfigurationId to create a new one")
        return SyncResult(config.id, FAILED, twilio_id, str(exc))
    await _record(store, redis, vc, new_id)
    outcome = UPDATED if twilio_id else CREATED
    logger.info("configuration synced", extra={"configuration": config.id, "outcome": outcome,
                                               "twilio_configuration": new_id})
    return SyncResult(config.id, outcome, new_id, f"operation {op.get('operationId', '?')} "
                      f"{op.get('status')}")


async def _record(store: AsyncConfigStore, redis, vc: VersionedConfig, twilio_id: str) -> None:
    """Write the binding into ``tl:config:v2ids`` and into the configuration itself.

    The configuration is re-read first: if it changed meanwhile, the id goes onto the newer
    version (its other changes reach v2 at the next sync).
    """
    await redis.hset(keys.CONFIG_V2_IDS, vc.id, twilio_id)
    latest = await store.get(vc.id) or vc
    if latest.config.twilioConfigurationId == twilio_id:
        return
    bound = Configuration.model_validate({**latest.config.to_json(),
                                          "twilioConfigurationId": twilio_id})
    await store.put(bound, mode="upsert", source=vc.source)


async def sync_all(settings: Settings, redis, *, only: list[str] | None = None,
                   timeout: float = 60.0, interval: float | None = None,
                   client: V2Client | None = None) -> list[SyncResult]:
    """Sync every configuration (or the ids in ``only``), one after another."""
    store = AsyncConfigStore(redis)
    configs = await store.current()
    results: list[SyncResult] = []
    if only:
        known = {vc.id for vc in configs}
        results += [SyncResult(i, FAILED, None, "no such configuration") for i in only
                    if i not in known]
        configs = [vc for vc in configs if vc.id in only]
    own = client is None
    client = client or V2Client(settings)
    try:
        for vc in configs:
            results.append(await sync_one(vc, store, client, redis, timeout=timeout,
                                          interval=interval))
            if vc.config.conversationsV1Bridge is not None:
                results.append(await _sync_classic(settings, vc, client, redis))
    finally:
        if own:
            await client.aclose()
    return results


async def _sync_classic(settings: Settings, vc: VersionedConfig, client: V2Client, redis) -> SyncResult:
    """The bridged classic service's post-event webhook, pointed at threadline (:mod:`.classic`)."""
    service = vc.config.conversationsV1Bridge.serviceId  # type: ignore[union-attr]
    label = f"{vc.id} (classic service {service})"
    url = classic.target(settings)
    if url is None:
        return SyncResult(label, FAILED, None, "THREADLINE_PUBLIC_URL is not set: the classic "
                          "service's webhook must name where threadline is")
    try:
        outcome = await classic.connect_service(client, redis, service, url)
    except V2Error as exc:
        return SyncResult(label, FAILED, None, f"webhook configuration not set: {exc}")
    detail = ("its previous post-event URL is recorded (restored by `threadline disconnect`) "
              "and no longer receives the service's post-events") if outcome == classic.REPLACED else ""
    return SyncResult(label, f"webhooks {outcome}", None, detail)


def run(settings: Settings, *, only: list[str] | None, timeout: float, out: TextIO,
        err: TextIO) -> int:
    """The CLI: one line per configuration on ``out``; exit 1 when any failed."""
    from workers.foundations.redis_conn import connect_async

    async def main() -> list[SyncResult]:
        redis = connect_async(settings)
        try:
            return await sync_all(settings, redis, only=only, timeout=timeout)
        finally:
            await redis.aclose()

    results = asyncio.run(main())
    if not results:
        print("no configurations to sync (add some with THREADLINE_CONFIG or the admin API)",
              file=err)
        return 1
    for r in results:
        print(r.line(), file=out)
    failed = sum(r.failed for r in results)
    if failed:
        print(f"{failed} of {len(results)} configuration(s) failed", file=err)
    return 1 if failed else 0
