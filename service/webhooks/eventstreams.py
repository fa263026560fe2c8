"""Event Streams: a sink delivery (a JSON array of CloudEvents) as the webhooks it stands for.

Each captured event type becomes the form parameters Twilio would have posted to the
matching webhook, so the engine parses one shape whatever the transport
(shared/reference/twilio-webhooks.md §7):

- ``com.twilio.messaging.inbound-message.received`` → an incoming message; ``data``'s camelCase
  names become Twilio's form names (``messageSid`` → ``MessageSid``, ``numberOfSegments`` →
  ``NumSegments``).
- ``com.twilio.messaging.message.<status>`` → a message status callback; ``messageStatus`` is
  UPPER case in Event Streams and lower case in callbacks, so it is lowered (or taken from the
  type's last word when absent).
- ``com.twilio.voice.status-callback.call.<status>`` (and the deprecated
  ``com.twilio.voice.webhook.status-callback.…``) → a call status callback: ``data.request.
  parameters`` *are* the callback's form parameters.

- ``com.twilio.conversations.<resource>.<action>`` (a classic service's post-events) → a classic
  bridge event (``EventType`` = ``onMessageAdded`` …), deduped with the webhook's own key so
  the service webhook and Event Streams can both feed the bridge.

Every other entry also carries ``CloudEventId``/``CloudEventType``/``CloudEventTime`` and is deduped on
the CloudEvent ``id`` (Event Streams delivers at least once, for up to 4 hours). Other types
(AMD, insights, error logs) are acknowledged and counted as ``ignored``. Pure: no I/O.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from service.webhooks.params import bad, require
from workers.eventlog.entries import CALL_STATUS, CLASSIC, MESSAGE, MESSAGE_STATUS, classic_dedupe_key

INBOUND = "com.twilio.messaging.inbound-message.received"
MESSAGE_PREFIX = "com.twilio.messaging.message."
CALL_PREFIXES = ("com.twilio.voice.status-callback.call.",
                 "com.twilio.voice.webhook.status-callback.call.")
MAX_EVENTS = 1000
# CloudEvents nest a few levels (batch → event → data → an object or two); the JSON decoder
# recurses once per level, so a hostile body of thousands of brackets is refused before it runs.
MAX_DEPTH = 32
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")

# camelCase names whose form spelling is not just the first letter upper-cased.
# Conversations (classic) post-events: the CloudEvent type's tail → the webhook's EventType.
CLASSIC_PREFIX = "com.twilio.conversations."
CLASSIC_EVENTS = {
    "conversation.added": "onConversationAdded", "conversation.updated": "onConversationUpdated",
    "conversation.removed": "onConversationRemoved",
    "conversation-state.updated": "onConversationStateUpdated",
    "participant.added": "onParticipantAdded", "participant.updated": "onParticipantUpdated",
    "participant.removed": "onParticipantRemoved", "message.added": "onMessageAdded",
    "message.updated": "onMessageUpdated", "message.removed": "onMessageRemoved",
}
_RENAMES = {"numberOfSegments": "NumSegments", "statusCallBackUrl": "StatusCallback"}
_ACCOUNT = re.compile(r"/Accounts/(AC[0-9a-fA-F]{32})")


@dataclass(frozen=True)
class Mapped:
    """One CloudEvent as a webhook: its kind, form parameters and dedupe key."""

    kind: str
    params: dict[str, str]
    dedupe_key: str


def account_hint(events: object) -> str | None:
    """The account of a batch (to pick the signing token before the signature is checked)."""
    if isinstance(events, dict):
        events = [events]
    if not isinstance(events, list):
        return None
    for ev in events:
        if not isinstance(ev, dict):
            continue
        data = ev.get("data")
        if isinstance(data, dict) and isinstance(data.get("accountSid"), str):
            return data["accountSid"]
        m = _ACCOUNT.search(str(ev.get("source", "")))
        if m:
            return m.group(1)
    return None


def parse_body(text: str) -> list:
    """The batch as a list of events (a lone object is taken as a batch of one)."""
    if _too_deep(text):
        raise bad(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        doc = json.loads(text)
    except ValueError:
        raise bad("body is not JSON") from None
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list):
        raise bad("body is not a JSON array of CloudEvents")
    if len(doc) > MAX_EVENTS:
        raise bad(f"more than {MAX_EVENTS} events in one delivery")
    return doc


def _too_deep(text: str) -> bool:
    """Whether brackets outside strings nest past MAX_DEPTH (no recursion: one regex pass each)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    depth = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_DEPTH:
            return True
    return False


def _form_name(name: str) -> str:
    return _RENAMES.get(name) or (name[:1].upper() + name[1:])


def _form_value(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _flat(data: dict) -> dict[str, str]:
    return {_form_name(str(k)): _form_value(v) for k, v in data.items() if v is not None}


def broken_event_fields(ev: object) -> dict[str, str]:
    """A dead letter's entry fields for an event that could not be read: kind
    ``event_streams`` (no webhook kind: the letter is not replayable), the account if known,
    and as parameters the event's id, type and ``data`` in form spelling (``Body`` and the
    like are then redacted by the dead-letter views as for any entry)."""
    ev = ev if isinstance(ev, dict) else {"value": ev}
    data = ev.get("data")
    params = _flat(data) if isinstance(data, dict) else {}
    for name, key in (("CloudEventId", "id"), ("CloudEventType", "type"), ("CloudEventTime", "time")):
        if ev.get(key) is not None:
            params[name] = _form_value(ev[key])
    if not isinstance(ev.get("data"), dict) and "data" in ev:
        params["Data"] = _form_value(ev["data"])[:2000]
    return {"k": "event_streams", "a": account_hint([ev]) or "",
            "p": json.dumps(params, separators=(",", ":"), ensure_ascii=False)}


def _classic(ev: dict, ev_id: str, ev_type: str, name: str, data: dict, index: int) -> Mapped:
    """A classic post-event from Event Streams, as the service's webhook would have posted it.

    ``data`` already has the webhook's PascalCase names, but a message's body is
    ``MessageBody`` and there is no ``ChatServiceSid`` (the worker finds the service from the
    conversation). The dedupe key is the webhook's own (not the CloudEvent id), so the same
    change from both sources is one event."""
    params = _flat(data)
    if "MessageBody" in params and "Body" not in params:
        params["Body"] = params.pop("MessageBody")
    params["EventType"] = name
    params.setdefault("ChatServiceSid", "")
    params["CloudEventId"], params["CloudEventType"] = ev_id, ev_type
    if not params.get("ConversationSid"):
        raise bad(f"event {index} ({ev_type}): missing required parameter: ConversationSid")
    if "AccountSid" not in params:
        m = _ACCOUNT.search(str(ev.get("source", "")))
        if m:
            params["AccountSid"] = m.group(1)
    return Mapped(CLASSIC, params, classic_dedupe_key(params))


def map_event(ev: object, index: int) -> Mapped | None:
    """One CloudEvent as a webhook, or None for a type threadline does not capture."""
    if not isinstance(ev, dict):
        raise bad(f"event {index} is not an object")
    ev_id, ev_type = ev.get("id"), ev.get("type")
    if not isinstance(ev_id, str) or not ev_id or not isinstance(ev_type, str):
        raise bad(f"event {index} has no id or type")
    data = ev.get("data")
    if isinstance(data, str):  # an old quickstart sends data as a JSON string
        try:
            data = json.loads(data)
        except ValueError:
            raise bad(f"event {index} data is not JSON") from None
    if not isinstance(data, dict):
        data = None

    if ev_type == INBOUND:
        kind, params = MESSAGE, _flat(data or {})
    elif ev_type.startswith(MESSAGE_PREFIX):
        kind, params = MESSAGE_STATUS, _flat(data or {})
        params["MessageStatus"] = (params.get("MessageStatus")
                                   or ev_type[len(MESSAGE_PREFIX):]).lower()
    elif ev_type.startswith(CALL_PREFIXES):
        request = (data or {}).get("request")
        parameters = request.get("parameters") if isinstance(request, dict) else None
        if not isinstance(parameters, dict):
            raise bad(f"event {index} ({ev_type}) has no data.request.parameters")
        kind, params = CALL_STATUS, {str(k): _form_value(v) for k, v in parameters.items()
                                     if v is not None}
    elif ev_type.startswith(CLASSIC_PREFIX):
        name = CLASSIC_EVENTS.get(ev_type[len(CLASSIC_PREFIX):])
        if name is None:
            return None
        return _classic(ev, ev_id, ev_type, name, data or {}, index)
    else:
        return None

    if "AccountSid" not in params:
        m = _ACCOUNT.search(str(ev.get("source", "")))
        if m:
            params["AccountSid"] = m.group(1)
    params["CloudEventId"] = ev_id
    params["CloudEventType"] = ev_type
    if isinstance(ev.get("time"), str):
        params["CloudEventTime"] = ev["time"]
    try:
        require(kind, params)
    except Exception as exc:
        raise bad(f"event {index} ({ev_type}): {exc}") from None
    return Mapped(kind, params, f"es:{ev_id}")
