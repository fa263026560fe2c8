"""What to capture: configurations, their capture rules, the rule index, lint, grouping keys.

Holds: Orchestrator's Configuration model and its validation (:mod:`.configuration`), one
capture rule's validation (:mod:`.rules`), the versioned store in Redis (:mod:`.store`),
the ``THREADLINE_CONFIG`` file (:mod:`.file`), the O(1) rule index (:mod:`.index`), the
lints of ``rules check`` (:mod:`.lint`) and grouping keys (:mod:`.grouping`). The index and
grouping are pure. It may import the foundations and :mod:`workers.stats`; it knows nothing
of how a webhook is parsed or delivered (``rules explain``, which needs conversations and
profiles too, lives in :mod:`workers.delivery`).
"""
