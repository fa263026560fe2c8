"""The capture rules, held in memory by each web process and kept fresh (for forwarding's passive voice).

The forwarding relay decides, on the incoming-call webhook, whether a VOICE rule captures the
call (:mod:`service.webhooks.voice_start`). That decision must not cost the webhook a Redis
round trip, nor a reload of every configuration: so each web process keeps the rule index the
workers use (:class:`workers.capture.index.RuleIndex`, O(1) per call) and the live
configurations, and checks the configuration store's generation counter every
:data:`REFRESH_SECONDS` (one GET), rebuilding only when it moved — the workers' own rule
(``workers.jobs`` rebuilds per batch on the same counter). A rule change reaches every web process
within that interval; while Redis is away the last rules stay in force.
"""
from __future__ import annotations

from service.webhooks.refreshed import Refreshed
from workers.capture.index import RuleIndex
from workers.capture.store import ConfigStore
from workers.foundations import log
from workers.twilio import upstreams

logger = log.get_logger("threadline.forwarding")

REFRESH_SECONDS = upstreams.SETTLE_SECONDS / 2


class RulesCache(Refreshed):
    what = "capture rules"

    def __init__(self, redis_sync) -> None:
        super().__init__(REFRESH_SECONDS, logger)
        self._store = ConfigStore(redis_sync)
        self.index = RuleIndex.build([])
        self.configs: dict = {}
        self._generation: int | None = None

    def refresh(self) -> bool:
        """Rebuild when the generation moved (blocking; run in a thread). True when rebuilt."""
        gen = self._store.generation()
        if gen == self._generation:
            return False
        current = self._store.current()
        self.index, self.configs = RuleIndex.build(current), {vc.id: vc for vc in current}
        self._generation = gen
        logger.info("capture rules loaded", extra={"configurations": len(current), "generation": gen})
        return True
