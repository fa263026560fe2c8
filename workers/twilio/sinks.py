"""Event Streams mode of `threadline connect`: one webhook Sink, one Subscription, nothing else.

The sink sends to ``$THREADLINE_PUBLIC_URL/webhooks/twilio/events``; the subscription takes
every event type threadline reads (:data:`EVENT_TYPES`: inbound messages, every outbound
message status, call status events — what ``service.webhooks.eventstreams`` maps; and, when a
configuration bridges a classic service, :data:`CLASSIC_EVENT_TYPES`), at the schema versions
it parses. The operator's application and its numbers are never touched: outbound
messages are seen whether or not the application sets a StatusCallback.

Idempotent: both resources carry :data:`DESCRIPTION`, and the next run finds them by it (the
sink also by its destination, so two threadline deployments on one account keep apart). A
subscription whose event types differ from the wanted ones (an older threadline's, or a bridge
added or removed since) is replaced. What connect made or found is recorded in Redis
(:data:`workers.foundations.keys.CONNECT_EVENT_STREAMS`), and `disconnect` deletes exactly that —
never a sink it did not record.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from workers.foundations import keys
from workers.foundations.settings import Settings
from workers.twilio.connect import EVENTS_PATH, Report, public_url

DESCRIPTION = "threadline passive capture"
_MESSAGE_STATUSES = ("queued", "sent", "delivered", "undelivered", "failed", "read")
_CALL_STATUSES = ("initiated", "ringing", "answered", "completed")
# (type, schema_version): the versions service.webhooks.eventstreams reads.
EVENT_TYPES: tuple[tuple[str, int], ...] = (
    ("com.twilio.messaging.inbound-message.received", 6),
    *((f"com.twilio.messaging.message.{s}", 7) for s in _MESSAGE_STATUSES),
    *((f"com.twilio.voice.status-callback.call.{s}", 2) for s in _CALL_STATUSES),
)
# A bridged classic service's post-events (workers.parse.classic.EVENTS) as Event Streams carries
# them: every message the service holds, also those the application sends through the REST API
# without ``X-Twilio-Webhook-Enabled`` (docs/classic-bridge.md). Schema ``Conversations.<Name>/2``.
CLASSIC_EVENT_TYPES: tuple[tuple[str, int], ...] = tuple(
    (f"com.twilio.conversations.{t}", 2) for t in (
        "conversation.added", "conversation.updated", "conversation-state.updated",
        "conversation.removed", "participant.added", "participant.removed",
        "message.added", "message.updated", "message.removed"))


def event_types(bridged: bool) -> tuple[tuple[str, int], ...]:
    """The types the sink subscribes to: the classic ones too when a configuration bridges a
    classic service."""
    return EVENT_TYPES + (CLASSIC_EVENT_TYPES if bridged else ())


def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def connect(twilio: Client, redis: Any, settings: Settings, report: Report, *,
            bridged: bool = False) -> None:
    destination = public_url(settings) + EVENTS_PATH
    events = twilio.events.v1
    sinks = report.read("list Event Streams sinks", lambda: events.sinks.list())
    ours = [s for s in sinks if s.description == DESCRIPTION]
    mine = [s for s in ours if (s.sink_configuration or {}).get("destination") == destination]
    for other in ours:
        if other not in mine:
            report.note(f"sink {other.sid} (threadline, another destination) left as it is")
    if mine:
        sink_sid: str | None = mine[0].sid
        report.note(f"sink {sink_sid} → {destination} already there")
    else:
        config = {"destination": destination, "method": "POST", "batch_events": True}
        made = report.change(f"create an Event Streams webhook sink → {destination}",
                             lambda: events.sinks.create(description=DESCRIPTION, sink_configuration=config,
                                                         sink_type="webhook"))
        sink_sid = made.sid if made is not None else None
    subscription_sid = _subscription(events, sink_sid, report, event_types(bridged))
    if report.dry_run or sink_sid is None or subscription_sid is None:
        return
    redis.hset(keys.CONNECT_EVENT_STREAMS, mapping={
        "sink": sink_sid, "subscription": subscription_sid, "destination": destination,
        "account": settings.twilio_account_sid or ""})


def _subscription(events: Any, sink_sid: str | None, report: Report,
                  wanted_types: tuple[tuple[str, int], ...]) -> str | None:
    """The sink's threadline subscription, created (or replaced) when missing or different."""
    wanted = {t for t, _ in wanted_types}
    types = [{"type": t, "schema_version": v} for t, v in wanted_types]
    what = f"subscribe the sink to {len(wanted_types)} event types"
    if sink_sid is None:  # a dry run that would create the sink
        report.change(what, lambda: None)
        return None
    subs = report.read("list the sink's subscriptions", lambda: events.subscriptions.list(sink_sid=sink_sid))
    for sub in (s for s in subs if s.description == DESCRIPTION):
        handle = events.subscriptions(sub.sid)
        listed = report.read("list a subscription's event types", handle.subscribed_events.list)
        if {e.type for e in listed} == wanted:
            report.note(f"subscription {sub.sid} to {len(wanted)} event types already there")
            return str(sub.sid)
        report.change(f"delete subscription {sub.sid} (its event types differ)", handle.delete)
    made = report.change(what, lambda: events.subscriptions.create(
        description=DESCRIPTION, sink_sid=sink_sid, types=types))
    return made.sid if made is not None else None


def disconnect(twilio: Client, redis: Any, report: Report) -> None:
    recorded = {_str(k): _str(v) for k, v in redis.hgetall(keys.CONNECT_EVENT_STREAMS).items()}
    if not recorded:
        report.note("Event Streams: nothing recorded by connect")
        return
    events = twilio.events.v1
    if recorded.get("subscription"):
        report.change(f"delete subscription {recorded['subscription']}",
                      lambda: _gone_is_fine(lambda: events.subscriptions(recorded["subscription"]).delete()))
    if recorded.get("sink"):
        report.change(f"delete sink {recorded['sink']}",
                      lambda: _gone_is_fine(lambda: events.sinks(recorded["sink"]).delete()))
    if not report.dry_run:
        redis.delete(keys.CONNECT_EVENT_STREAMS)


def _gone_is_fine(call: Callable[[], object]) -> None:
    """A delete whose resource is already gone (404) has nothing left to do."""
    try:
        call()
    except TwilioRestException as exc:
        if exc.status != 404:
            raise
