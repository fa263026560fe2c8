"""Sending a conversation's status to v2 and recording it: the one I/O path of the lifecycle.

Both the timer job (``workers.lifecycle.expiry``) and the admin API's explicit PATCH go
through :func:`send_status`, under the conversation's grouping-key lock (the engine's lock,
so a close never interleaves with a communication being posted to the same conversation).

Never twice in effect: before the PATCH the wanted status is written to a *pending* key; if
a process dies between the PATCH and the store update, the retry finds the pending key and
asks v2 for the conversation's status first, PATCHing only if v2 does not have it yet.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from workers import stats
from workers.conversations.store import CLOSED, Conversation, ConversationStore
from workers.eventlog import deadletters
from workers.foundations import keys
from workers.foundations.errors import Permanent, Transient
from workers.foundations.log import get_logger
from workers.foundations.settings import Settings
from workers.foundations.text import as_str
from workers.lifecycle import timers
from workers.twilio.client import V2Client, V2Error

logger = get_logger("threadline.lifecycle")

# Hash: conversation id → "since" epoch s of its current status (INACTIVE stickiness) and an
# explicit reactivation time, as "since|reactivated". One field per open conversation.
SINCE = keys.LIFECYCLE_SINCE


class TransientFailure(Transient):
    """v2 did not answer usefully after the client's retries; try again later."""


class Refused(Permanent):
    """v2 refused the PATCH for good; the conversation is flagged and a dead letter written."""

    def __init__(self, reason: str, error: str) -> None:
        super().__init__(error)
        self.reason, self.error = reason, error


@dataclass(frozen=True)
class Sent:
    status: str
    patched: bool   # False: v2 already had it (a retry after a crash, or closed elsewhere)



async def since_of(redis, conv_id: str) -> tuple[float, float | None]:
    raw = await redis.hget(SINCE, conv_id)
    if not raw:
        return float("-inf"), None
    since, _, react = as_str(raw).partition("|")
    return float(since), (float(react) if react else None)


async def send_status(settings: Settings, redis, store: ConversationStore, v2: V2Client,
                      conv: Conversation, status: str, reason: str,
                      due: float | None = None, next_due: float | None = None,
                      ready: float | None = None) -> Sent:
    """PATCH ``status`` to v2 and record it (store, timers, counters). Caller holds the lock.

    ``reason``: ``timeout`` | ``traffic`` | ``explicit``. ``due``: the deadline that fired
    (for the timer-lag histogram); ``ready``: when it could apply (a close the event log held:
    later than ``due``; the lifecycle-lag histogram; default ``due``); ``next_due``: the timer
    to arm for the new status, in the same round trip. Raises :class:`TransientFailure` or
    :class:`Refused`.
    """
    pending_key = keys.lifecycle_pending(conv.id)
    patched = True
    # One round trip: mark the PATCH as pending and learn whether an earlier attempt was.
    pending = await redis.set(pending_key, status, ex=86400, get=True)
    if pending is not None and as_str(pending) == status and conv.twilio_id:
        try:
            remote = await v2.fetch_conversation(conv.twilio_id)
            patched = remote.get("status") != status
        except V2Error:
            patched = True
    if patched:
        try:
            await v2.patch_conversation(conv.twilio_id or conv.id, {"status": status})
        except V2Error as exc:
            if exc.conversation_closed:
                # v2 says it is CLOSED already (closed elsewhere): record that, PATCH nothing.
                status, reason, patched = CLOSED, "closed_in_v2", False
            elif exc.transient:
                raise TransientFailure(str(exc)) from None
            else:
                await _flag(settings, redis, conv, status, exc)
                raise Refused(exc.reason, str(exc)) from None

    now = time.time()
    if status == CLOSED:
        await store.close(conv.id, reason)
    else:
        await store.set_status(conv.id, status)
    pipe = redis.pipeline(transaction=False)
    pipe.delete(pending_key)
    pipe.hdel(keys.LIFECYCLE_FLAGGED, conv.id)
    counts: dict[str, int] = {}
    if patched:
        counts[stats.field("lifecycle_transitions", status, reason)] = 1
    if status == CLOSED:
        timers.cancel(pipe, conv.id)
        pipe.hdel(SINCE, conv.id)
        pipe.hdel(keys.LIFECYCLE_HELD, conv.id)
        counts[stats.field("conversations_closed", conv.configuration_id, reason)] = 1
    else:
        react = now if (status == "ACTIVE" and reason == "explicit") else None
        pipe.hset(SINCE, conv.id, f"{now!r}|{react!r}" if react else repr(now))
        if next_due is not None:
            timers.schedule(pipe, conv.id, next_due)
    stats.add(pipe, counts, retention_minutes=settings.stats_retention_minutes)
    if due is not None and patched:
        stats.observe(pipe, "timer_lag", max(0.0, (now - due) * 1000), status,
                      retention_minutes=settings.stats_retention_minutes)
        stats.observe(pipe, "lifecycle_lag", max(0.0, (now - max(due, ready or due)) * 1000), status,
                      retention_minutes=settings.stats_retention_minutes)
    await pipe.execute()
    logger.info("conversation status sent", extra={
        "conversation": conv.id, "twilio_conversation": conv.twilio_id, "status": status,
        "reason": reason, "patched": patched})
    return Sent(status, patched)


async def _flag(settings: Settings, redis, conv: Conversation, status: str, exc: V2Error) -> None:
    """Flag the conversation for the admin API, dead-letter the refused PATCH, count it."""
    flag = {"status": status, "error": str(exc)[:300], "at": time.time()}
    pipe = redis.pipeline(transaction=False)
    pipe.hset(keys.LIFECYCLE_FLAGGED, conv.id, json.dumps(flag))
    pipe.delete(keys.lifecycle_pending(conv.id))
    deadletters.dead_letter(
        pipe,
        {"k": "lifecycle_patch", "t": str(int(time.time() * 1000)), "a": "",
         "p": json.dumps({"conversation": conv.id, "twilioConversationId": conv.twilio_id,
                          "status": status}), "q": "{}", "c": ""},
        "lifecycle_patch_refused", exc.attempts, str(exc),
        retention_minutes=settings.stats_retention_minutes)
    stats.add(pipe, {stats.field("lifecycle_failures", exc.reason): 1},
              retention_minutes=settings.stats_retention_minutes)
    timers.cancel(pipe, conv.id)  # an operator looks at it; the timer would only fail again
    await pipe.execute()
    logger.warning("v2 refused a status PATCH; conversation flagged", extra={
        "conversation": conv.id, "status": status, "error": str(exc)[:300]})


async def flagged(redis, conv_id: str) -> dict | None:
    raw = await redis.hget(keys.LIFECYCLE_FLAGGED, conv_id)
    return json.loads(as_str(raw)) if raw else None
