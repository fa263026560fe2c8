"""The event log: what a webhook becomes, the one script that appends it, and the dead letters.

Holds: log entries and the pure rules that place them on a shard (:mod:`.entries`), the
append script with its dedupe, counters and drain flag (:mod:`.writer` and ``append.lua``;
re-exported here: ``eventlog.append_many(...)``, ``eventlog.ACCEPTED``), and the dead-letter
stream with its replay (:mod:`.deadletters`). Dead letters live here, not in delivery,
because the web tier writes them too (an Event Streams event it cannot read). It may import
the foundations and :mod:`workers.stats`; it never imports capture, parse or anything below.
"""
from workers.eventlog.writer import *  # noqa: F403
from workers.eventlog.writer import __all__ as __all__
