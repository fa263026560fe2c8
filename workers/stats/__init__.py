"""Counters and histograms in Redis, and every way of reading them back.

Holds: the counter and histogram writers (:mod:`.counters`, re-exported here, so
``from workers import stats; stats.field(...)`` reads as it always did), the hot-path
buffer (:mod:`.buffer`), live gauges (:mod:`.gauges`), reads (:mod:`.read`) and the
summary people look at first (:mod:`.summary`). It sits just above the foundations because
eleven modules across the engine count things: it may import only the foundations
(``settings``, ``keys``, ``log``, ``redis_conn``, ``addresses``).
"""
from workers.stats.counters import *  # noqa: F403
from workers.stats.counters import __all__ as __all__
