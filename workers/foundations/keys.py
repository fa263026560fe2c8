"""Every Redis key name threadline uses, in one place.

Operators and dashboards read these keys directly, so they are part of the interface
(DESIGN §3, §6). Each section is owned by the module named in its comment.
"""
from __future__ import annotations

PREFIX = "tl:"

# RQ queue of the drains (and every other job but the lifecycle's).
QUEUE = "threadline"
# RQ queue of the lifecycle's apply batches. A queue of their own, which workers take from in
# turn with QUEUE (RQ's round robin): on one queue, drains (enqueued at its front) kept arriving
# under load and the lifecycle batches behind them waited 100 s in the soak.
LIFECYCLE_QUEUE = "threadline-lifecycle"

# --- event log (workers.eventlog.writer, service.webhooks.ingress) -------------------------------------------
CONSUMER_GROUP = "threadline"


def events(shard: int) -> str:
    """The Redis Stream holding shard ``shard``'s webhooks, in arrival order."""
    return f"{PREFIX}events:{shard}"


def consumer(shard: int) -> str:
    """The consumer name inside the group: the shard's own, so any lease holder re-reads its pending entries."""
    return f"shard-{shard}"


def drain_flag(shard: int) -> str:
    """Set (NX) when a drain_shard job for the shard is queued or running."""
    return f"{PREFIX}drain:{shard}"


def shard_lease(shard: int) -> str:
    """The lease (with fencing token) held by the one drain running for the shard."""
    return f"{PREFIX}lease:shard:{shard}"


def fence_counter(shard: int) -> str:
    return f"{PREFIX}fence:shard:{shard}"


def dedupe(event_key: str) -> str:
    """Marks one delivered webhook event as taken, for the dedupe window."""
    return f"{PREFIX}dedupe:{event_key}"


# Written (60 s TTL) by GET /readyz to prove the log is writable (service.views.health).
READY_PROBE = f"{PREFIX}readyz"


# --- dead letters (workers.eventlog.deadletters) -----------------------------------------------------
DEAD_LETTERS = f"{PREFIX}dead"


def dead_letter_claim(dead_id: str) -> str:
    """String (``SET NX``, short TTL): one replay of this dead letter is under way."""
    return f"{PREFIX}dead:replaying:{dead_id}"
# Hash: threadline configuration id → the v2 Configuration id ``configs sync`` bound it to. Kept
# apart from the configuration itself so a file reload that drops twilioConfigurationId never
# makes the next sync create a second v2 Configuration.
CONFIG_V2_IDS = f"{PREFIX}config:v2ids"

# --- stats (workers.stats.counters) ------------------------------------------------------------------
STATS_TOTAL = f"{PREFIX}stats:total"


def stats_minute(minute: int) -> str:
    """Counters of one wall-clock minute (epoch seconds // 60)."""
    return f"{PREFIX}stats:m:{minute}"

# --- lifecycle (workers.lifecycle.timers, workers.scheduler, workers.lifecycle.expiry) --------------------
# Sorted set: conversation id → due time (epoch seconds) of its next lifecycle check.
TIMERS = f"{PREFIX}timers"
# The scheduler leader's lease (value: the holder's token); only the holder sweeps.
SCHEDULER_LEASE = f"{PREFIX}lease:scheduler"


def lifecycle_lock(conversation_id: str) -> str:
    """Held while one apply_timeout / explicit PATCH decides and sends a conversation's status."""
    return f"{PREFIX}lock:lc:{conversation_id}"


def lifecycle_pending(conversation_id: str) -> str:
    """The status a PATCH was about to send (set before the call, cleared after the store
    update), so a retry after a crash asks v2 first instead of PATCHing twice."""
    return f"{PREFIX}lc:pending:{conversation_id}"


# Hash: conversation id → JSON reason, for conversations whose status PATCH v2 refused for good.
LIFECYCLE_FLAGGED = f"{PREFIX}lc:flagged"
# Hash: open conversation id → "since[|reactivated]" (epoch s): when its status was last set,
# and when an operator last reactivated it (workers.lifecycle.policy.decide's inputs).
LIFECYCLE_SINCE = f"{PREFIX}lc:since"
# Hash: conversation id → epoch s its close was last found held by the event log's watermark
# (workers.lifecycle.expiry): from then on the close waited for the log, not for the lifecycle.
LIFECYCLE_HELD = f"{PREFIX}lc:held"


# --- configurations (workers.capture.store) ---------------------------------------------------
# Current version of each configuration id: hash id → version (an id absent = deleted).
CONFIG_CURRENT = f"{PREFIX}config:current"
# The grouping type each current configuration was created with (immutable while it lives).
CONFIG_GROUPING = f"{PREFIX}config:grouping"
# Where each current configuration came from: "file" (THREADLINE_CONFIG) or "api".
CONFIG_SOURCE = f"{PREFIX}config:source"
# Bumped on every change: workers rebuild their rule index only when it moves.
CONFIG_GENERATION = f"{PREFIX}config:generation"


def config_version(config_id: str, version: int) -> str:
    """One immutable version of a configuration (canonical JSON); kept after a delete, because
    conversations stay pinned to the version they were created with."""
    return f"{config_version_prefix(config_id)}{version}"


# The versions' keys start so: then the id, ':' and the number (the store's Lua script builds them).
CONFIG_VERSIONS = f"{PREFIX}config:v:"


def config_version_prefix(config_id: str) -> str:
    """``config_version`` without the number (the store's Lua script appends it)."""
    return f"{CONFIG_VERSIONS}{config_id}:"


def config_version_counter(config_id: str) -> str:
    """Last version number given to the id; never reset, so a re-created id never reuses one."""
    return f"{PREFIX}config:seq:{config_id}"


# --- conversations and communications (workers.conversations.store, workers.delivery.deliver) -------------
# Sorted set of every conversation id by creation time (epoch s): the admin listing.
CONVERSATIONS = f"{PREFIX}convs"
# Hash: status (CREATING/ACTIVE/INACTIVE/CLOSED) → how many conversations have it now; moved in
# the same script as the record's status, read by the stats gauges.
CONVERSATION_STATUS_COUNTS = f"{PREFIX}convs:status"
# Hash, the grouping index: ``conversation_index_field(configuration, key)`` → the id of that
# key's one open conversation. One shared hash, not a key each: a field costs less (≈150 B
# against ≈175 B for a string key, measured at 100,000).
CONVERSATION_INDEX = f"{PREFIX}convidx"
# Hash: the grouping index's field → the id of the last conversation made for it, written by
# the release before issue 12's second part (a redelivered post now finds the conversation it
# was tried in from its own state, never from the key's latest): only deleted, by retention.
CONVERSATION_LAST = f"{PREFIX}convlast"
# Hash: v2 conversation id → threadline id.
CONVERSATION_TWILIO_IDS = f"{PREFIX}convtw"
# Sorted set: CLOSED conversation id → when it closed (epoch s); the retention sweep
# (workers.conversations.retention) deletes what closed more than THREADLINE_RETENTION_DAYS ago.
CONVERSATIONS_CLOSED = f"{PREFIX}convs:closed"
# String: how far the one-time backfill of CONVERSATIONS_CLOSED has read CONVERSATIONS (a
# creation time), then ``done``: conversations closed before that index existed are put in it.
CONVERSATIONS_CLOSED_BACKFILL = f"{PREFIX}convs:closed:backfill"


def conversation(conv_id: str) -> str:
    """Hash: one conversation record (threadline id ``tlc_…``; fields in workers.conversations.record)."""
    return f"{PREFIX}conv:{conv_id}"


def conversation_index_field(config_id: str, grouping_key: str) -> str:
    """The grouping index's field for configuration + grouping key."""
    return f"{config_id}:{grouping_key}"


def conversation_lock(config_id: str, grouping_key: str) -> str:
    """Held (token lease) while one writer gets-or-creates and posts to the key's conversation."""
    return f"{PREFIX}lock:conv:{config_id}:{grouping_key}"


def message_state(resource_id: str) -> str:
    """Hash per message: best deliveryStatus seen (``best``), its occurredAt (``at``), and
    ``posted:{conversation id}`` = the status last accepted by v2 in that conversation, and
    ``tried:{conversation id}`` = its configuration id, written before a post into that
    conversation (workers.conversations.messages.MessageMemory.attempt_in)."""
    return f"{PREFIX}msg:{resource_id}"


def message_attempts(conv_id: str) -> str:
    """Set (with a TTL), written by the release before issue 12's second part (attempts are now
    ``tried:`` fields of ``message_state``): only deleted, by retention and its own TTL."""
    return f"{PREFIX}msgtry:{conv_id}"


def message_body(account: str, message_sid: str) -> str:
    """Hash (with a TTL): a message's body and time fetched from the Messages API, fetched once."""
    return f"{PREFIX}msgbody:{account}:{message_sid}"


# --- voice calls and customer profiles
# (workers.conversations.calls, workers.delivery.profiles, workers.delivery.directory)
def call(call_sid: str) -> str:
    """Hash (with a TTL): one call leg as threadline saw it — parties, direction, parent leg,
    callType, the conversation(s) it feeds, active routing (the double-billing guard)."""
    return f"{PREFIX}call:{call_sid}"


# Passive voice's poll of in-progress calls (workers.delivery.callpoll): a flag set NX with a TTL
# while a poll job is queued or running (a slow poll never piles up jobs), and the set of live
# calls already reported (replaced by each poll, so it holds the live calls only; a call removed
# from it — its transcription refused with 21220 — is reported again by the next poll).
CALL_POLL_FLAG = f"{PREFIX}callpoll:flag"
CALL_POLL_KNOWN = f"{PREFIX}callpoll:known"


# Local profile directory (configurations without a Memory store): bare address → profile id,
# every profile's address set, and the profiles by creation time (for the admin listing).
PROFILE_ADDRESSES = f"{PREFIX}profiles:addr"
PROFILES = f"{PREFIX}profiles"
PROFILE_SET_PREFIX = f"{PREFIX}profile:"


def profile_cache(store_id: str, id_type: str, value: str) -> str:
    """Memory lookup result (a profile id), cached for THREADLINE_PROFILE_CACHE_SECONDS."""
    return f"{PREFIX}profcache:{store_id}:{id_type}:{value}"


def profile_lock(store_id: str, value: str) -> str:
    """Held while one worker looks up (and maybe creates) the profile of one identifier."""
    return f"{PREFIX}lock:profile:{store_id}:{value}"


def memory_store_bad(store_id: str) -> str:
    """Set for a minute after Memory refused a store for good (404/400/401/403)."""
    return f"{PREFIX}memory:bad:{store_id}"


# --- the classic bridge (workers.delivery.classic, workers.twilio.classic) ------------------------
def classic_message(message_sid: str) -> str:
    """A bridged classic message: ``v`` the version (its last change) applied, ``r`` = 1 once
    removed; expires after 30 days (workers.delivery.classic.TTL_S), as the keys below."""
    return f"{PREFIX}classic:msg:{message_sid}"


def classic_removed(conversation_sid: str) -> str:
    """Set when a classic conversation was removed: later events for it are counted, not delivered."""
    return f"{PREFIX}classic:gone:{conversation_sid}"


def classic_service(conversation_sid: str) -> str:
    """The classic service of a conversation (Event Streams' classic events do not name it)."""
    return f"{PREFIX}classic:svc:{conversation_sid}"


def classic_webhooks_saved(service_sid: str) -> str:
    """The classic service's webhook configuration as it was before ``configs sync`` set it
    (JSON), so ``disconnect`` can put it back."""
    return f"{PREFIX}classic:saved:{service_sid}"


# --- threadline connect (workers.twilio.upstreams, workers.twilio.connect) ---------------------------
# Hash: E.164 number → JSON of the number's own webhooks (SmsUrl, VoiceUrl, StatusCallback and
# their methods) as `connect --forward` found them: where forwarded webhooks are relayed, and what
# `disconnect` puts back. Read by every web process (service.webhooks.upstream_table).
UPSTREAMS = f"{PREFIX}connect:upstreams"
# Bumped on every change to UPSTREAMS: web processes reload the table only when it moves.
UPSTREAMS_GENERATION = f"{PREFIX}connect:upstreams:gen"
# Hash: what `connect` made in Event Streams (``sink``, ``subscription`` SIDs, ``account``), so
# `disconnect` deletes exactly that.
CONNECT_EVENT_STREAMS = f"{PREFIX}connect:eventstreams"
