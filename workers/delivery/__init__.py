"""The drain and delivery into v2: from a shard's log entries to communications.

Holds: the drain (:mod:`.drain`) under its shard lease (:mod:`.leases`) — its batches sorted
into lanes (:mod:`.batch`), each lane's reads and writes in one round trip each (:mod:`.lane`),
acknowledgements fenced by the lease (:mod:`.commit`) — delivering one
event into one configuration's conversation — participants, communications
(:mod:`.deliver`), voice calls and transcripts (:mod:`.voice`), GROUP_BY_PROFILE
resolution (:mod:`.profiles`) with the local profile directory (:mod:`.directory`), the
classic bridge (:mod:`.classic`, a package: a classic service's events into v2), and
``rules explain`` (:mod:`.explain`), which lives here because it answers with the
conversation an event *would* join, so it needs profiles and conversation records. It is the
bottom of the engine: it may import every other package; only ``workers.jobs`` imports it.
"""
