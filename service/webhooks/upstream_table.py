"""Which numbers are forwarded, held in memory by each web process and kept fresh.

A webhook must not pay a Redis round trip to learn whether its number is forwarded: the ingress
path is one round trip (the append), and most deliveries are not forwarded at all. So each web
process keeps the whole table (:mod:`workers.twilio.upstreams`, a few hundred bytes a number)
and checks the generation counter beside it every :data:`REFRESH_SECONDS`, reloading only when it
moved. A change therefore reaches every web process within that interval; `threadline connect`
waits :data:`workers.twilio.upstreams.SETTLE_SECONDS` after recording before it points a number at
threadline, so the first forwarded webhook already finds its upstream. While Redis is away the
last table stays in force.
"""
from __future__ import annotations

from service.webhooks.refreshed import Refreshed
from workers.foundations import log
from workers.twilio import upstreams
from workers.twilio.upstreams import Upstream

logger = log.get_logger("threadline.forwarding")

REFRESH_SECONDS = upstreams.SETTLE_SECONDS / 2


class UpstreamTable(Refreshed):
    what = "forwarding table"

    def __init__(self, redis_sync) -> None:
        super().__init__(REFRESH_SECONDS, logger)
        self._redis = redis_sync
        self._by_number: dict[str, Upstream] = {}
        self._generation: int | None = None

    def get(self, number: str | None) -> Upstream | None:
        """The upstream recorded for ``number`` (Twilio's ``To``), or None. No I/O."""
        if not number or not self._by_number:
            return None
        return self._by_number.get(number.strip())

    def __len__(self) -> int:
        return len(self._by_number)

    def refresh(self) -> bool:
        """Reload when the generation moved (blocking; run in a thread). True when reloaded."""
        gen = upstreams.generation(self._redis)
        if gen == self._generation:
            return False
        table = upstreams.load(self._redis)
        self._by_number, self._generation = table, gen
        logger.info("forwarding table loaded", extra={"numbers": len(table), "generation": gen})
        return True
