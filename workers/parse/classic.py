"""A Conversations (classic) post-event webhook → a CaptureEvent on channel CHAT. Pure.

A classic service posts its post-event webhooks (``onMessageAdded``, ``onConversationStateUpdated``,
…) form-encoded, with ``EventType``, ``ChatServiceSid`` and ``ConversationSid`` on every one
(the same fields, PascalCase, that Event Streams carries in a classic event's ``data``). The
bridge reads the events listed in :data:`EVENTS`; any other post-event (``onDeliveryUpdated``,
``onUserAdded``, …) is acknowledged and counted as ignored (None).

The CaptureEvent keeps the CHAT shape the delivery needs: ``from_bare`` is the author (a
message) or identity (a participant), ``to_bare`` the classic ConversationSid, ``resource_id``
the Sid of the resource the event is about (a message's ``IM…`` is the communication's
``resourceId``), and ``metadata`` the classic fields: ``event``, ``service``, ``conversation``,
``state``, ``participant``, ``identity``, ``index`` and ``version`` — the resource's last
change (DateRemoved, DateUpdated, StateUpdated or DateCreated), which orders two events of one
message or one conversation when they arrive out of order.
"""
from __future__ import annotations

from workers.eventlog.entries import LogEntry
from workers.foundations.constants import CHAT
from workers.parse.event import CaptureEvent, ParseError, iso_ms, parse_timestamp

MESSAGE_ADDED, MESSAGE_UPDATED, MESSAGE_REMOVED = "onMessageAdded", "onMessageUpdated", "onMessageRemoved"
CONVERSATION_ADDED, CONVERSATION_UPDATED = "onConversationAdded", "onConversationUpdated"
CONVERSATION_STATE, CONVERSATION_REMOVED = "onConversationStateUpdated", "onConversationRemoved"
PARTICIPANT_ADDED, PARTICIPANT_REMOVED = "onParticipantAdded", "onParticipantRemoved"

MESSAGE_EVENTS = (MESSAGE_ADDED, MESSAGE_UPDATED, MESSAGE_REMOVED)
CONVERSATION_EVENTS = (CONVERSATION_ADDED, CONVERSATION_UPDATED, CONVERSATION_STATE, CONVERSATION_REMOVED)
PARTICIPANT_EVENTS = (PARTICIPANT_ADDED, PARTICIPANT_REMOVED)
# The post-event filters the bridge sets on a classic service and reads (issue 17).
EVENTS = CONVERSATION_EVENTS + PARTICIPANT_EVENTS + MESSAGE_EVENTS

STATES = ("active", "inactive", "closed")
# Who a message is from when the REST API created it without an Author.
SYSTEM_AUTHOR = "system"


def parse_classic(entry: LogEntry) -> CaptureEvent | None:
    """The CaptureEvent of a classic post-event, None for one the bridge does not read."""
    p = entry.params
    event = p.get("EventType", "")
    if event not in EVENTS:
        return None
    service, conversation = p.get("ChatServiceSid", ""), p.get("ConversationSid", "")
    # Event Streams' classic events carry no ChatServiceSid: the worker finds it (empty here).
    if (service and not service.startswith("IS")) or not conversation.startswith("CH"):
        raise ParseError("classic_bad_sid", "ChatServiceSid or ConversationSid is not a classic Sid")
    author, resource, text = "", conversation, None
    if event in MESSAGE_EVENTS:
        resource = p.get("MessageSid", "")
        if not resource:
            raise ParseError("classic_missing_sid", f"{event} without MessageSid")
        author = p.get("Author") or SYSTEM_AUTHOR
        if event != MESSAGE_REMOVED:
            text = p.get("Body", "")
    elif event in PARTICIPANT_EVENTS:
        resource = p.get("ParticipantSid", "")
        if not resource:
            raise ParseError("classic_missing_sid", f"{event} without ParticipantSid")
        # An SMS/WhatsApp participant has no identity: its binding's address stands for it.
        author = p.get("Identity") or p.get("MessagingBinding.Address") or ""
    state = (p.get("StateTo") if event == CONVERSATION_STATE else p.get("State")) or ""
    if state and state not in STATES:
        raise ParseError("classic_bad_state", "State is not active, inactive or closed")
    stamps = [parse_timestamp(p.get(name)) for name in
              ("DateRemoved", "DateUpdated", "StateUpdated", "DateCreated")]
    version = next((s for s in stamps if s), None)
    created = parse_timestamp(p.get("DateCreated"))
    occurred = created if event in MESSAGE_EVENTS and created else version
    metadata = {"event": event, "service": service, "conversation": conversation,
                "state": state, "participant": p.get("ParticipantSid", ""),
                "identity": author, "index": p.get("Index", ""), "version": version or "",
                "source": p.get("Source", "")}
    return CaptureEvent(
        kind=entry.kind, channel=CHAT, from_addr=author, to_addr=conversation,
        from_bare=author, to_bare=conversation, direction="inbound", resource_id=resource,
        text=text, delivery_status=None,
        occurred_at=occurred or iso_ms(entry.received_at_ms), metadata=metadata,
        account=entry.account or p.get("AccountSid", ""), received_at_ms=entry.received_at_ms,
        cid=entry.cid, occurred_at_source="twilio" if occurred else "received")
