"""Passive voice's poll: find the account's live calls that VOICE rules capture.

Why a poll: Twilio tells a number's ``StatusCallback`` about an inbound call only when it ends
(``completed``), and documents Event Streams call events as sent only when the original request
or TwiML subscribed to them. Without forwarding (which sees the incoming-call webhook), nothing
tells threadline that a captured call has started — so the scheduler's leader asks every
``THREADLINE_CALL_POLL_SECONDS`` (default 3; 0 = off): ``GET …/Calls.json?Status=in-progress``,
one request per page for the whole account (:func:`workers.twilio.voice_api.in_progress_calls`).

Each captured root call not reported before is appended to the event log as the status callback
Twilio would have sent (``CallStatus=in-progress``, ``CallbackSource=threadline-api``; counted
``webhooks|call_status|polled``), so the drain records it and starts its transcription exactly as
for a status callback or an Event Streams call event (:mod:`workers.delivery.transcribe`) — in
the call's shard, in order with its transcription callbacks. A dialled child leg is left to its
parent; a call no rule captures is not logged at all.

The calls reported are kept in ``tl:callpoll:known``: new ones are added, ended ones removed, so
the set holds the live calls only; a call whose start Twilio refused with 21220 is removed by the
drain, and the next poll reports it again (retried while it lives, never after).

Cost: the untranscribed start of a call is the time until the next poll (up to the interval,
half on average) plus a drain and one API request; docs/voice-and-profiles.md has the measurement.
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Any

from workers import eventlog, stats
from workers.capture.index import Match, RuleIndex
from workers.eventlog.entries import CALL_STATUS, LogEntry, shard_of
from workers.foundations import keys
from workers.foundations.log import get_logger
from workers.parse import ParseError
from workers.parse.voice import parse_call_status
from workers.twilio import voice_api
from workers.twilio.client import V2Error

logger = get_logger("threadline.callpoll")

KNOWN_TTL_SECONDS = 3600  # the set outlives a stopped poller by an hour at most


def has_voice_rules(configs: dict) -> bool:
    """Whether any live configuration has VOICE capture rules (the poll is on only then)."""
    for vc in configs.values():
        voice = vc.config.channelSettings.VOICE
        if voice is not None and voice.captureRules:
            return True
    return False


def capture_matches(entry: LogEntry, index: RuleIndex, configs: dict) -> list[Match]:
    """The live configurations whose VOICE rules capture a root call (as its status entry or
    incoming-call webhook); none for a dialled child leg or an unreadable entry. Pure: the
    forwarding relay decides with it too (service.webhooks.voice_start)."""
    if entry.params.get("ParentCallSid"):
        return []
    try:
        event = parse_call_status(entry)
    except ParseError:
        return []
    matches = index.match("VOICE", event.from_bare, event.to_bare, event.metadata,
                          direction=event.direction)
    return [m for m in matches if m.config_id in configs]


def captured(entry: LogEntry, index: RuleIndex, configs: dict) -> bool:
    """Whether a live call (as its status entry) is a root call some VOICE rule captures. Pure."""
    return bool(capture_matches(entry, index, configs))


async def poll(rt: Any) -> dict[str, int]:
    """One poll of the account's in-progress calls (``rt``: the worker's runtime)."""
    index, configs = await rt.rules()
    report = {"calls": 0, "captured": 0, "reported": 0}
    if not has_voice_rules(configs):
        return report
    account = rt.settings.twilio_account_sid or ""
    now_ms = int(time.time() * 1000)
    live: dict[str, LogEntry] = {}
    counts: Counter = Counter()
    try:
        async for call in voice_api.in_progress_calls(rt.client, account):
            report["calls"] += 1
            entry = LogEntry(CALL_STATUS, now_ms, account, voice_api.status_params(call), {}, "")
            if captured(entry, index, configs):
                live[entry.params["CallSid"]] = entry
    except V2Error as exc:
        counts[stats.field("call_polls", "failed")] += 1
        rt.client.stats.add(dict(counts))
        logger.warning("call poll failed", extra={"status": exc.status, "code": exc.code})
        return report
    counts[stats.field("call_polls", "ok")] += 1
    report["captured"] = len(live)
    known = {s.decode() if isinstance(s, bytes) else s for s in await rt.redis.smembers(keys.CALL_POLL_KNOWN)}
    new = [entry for sid, entry in live.items() if sid not in known]
    if new:
        shards = rt.settings.shards
        items: list[tuple[LogEntry, str | None, int]] = [
            (e, f"cs:{e.params['CallSid']}:in-progress:poll:{now_ms}", shard_of(CALL_STATUS, e.params, shards))
            for e in new]
        appended = await eventlog.append_many_async(rt.redis, items, rt.settings, outcome=eventlog.POLLED)
        for (_, _, shard), result in zip(items, appended, strict=True):
            if result.drain_needed:
                rt.enqueue_drain(shard)
        report["reported"] = len(new)
    pipe = rt.redis.pipeline(transaction=False)
    if new:
        pipe.sadd(keys.CALL_POLL_KNOWN, *[e.params["CallSid"] for e in new])
    gone = known - set(live)
    if gone:
        pipe.srem(keys.CALL_POLL_KNOWN, *gone)
    pipe.expire(keys.CALL_POLL_KNOWN, KNOWN_TTL_SECONDS)
    await pipe.execute()
    rt.client.stats.add(dict(counts))
    return report
