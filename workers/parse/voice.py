"""Voice webhooks → capture events. Pure: no Redis, no clock, no network.

Two webhooks carry a call (DESIGN §3, reference §4–5):

- **call status callbacks** (``/webhooks/twilio/voice/status``) name the two parties of one call
  *leg* and its progress. They keep the conversation's voice activity current but are never
  communications.
- **real-time transcription callbacks** (``/webhooks/twilio/voice/transcription``) carry what was
  said, one track per callback, and *no addresses*: who spoke is known only from the call the
  transcription runs on. A final ``transcription-content`` result becomes a ``TRANSCRIPTION``
  communication; partial results, ``started``, ``stopped`` and ``error`` only touch activity.

Because a transcription has no addresses, parsing is two steps: :func:`parse_voice` reads the
webhook alone, and :func:`attribute` (still pure) fills the author and recipient from the call
record the worker keeps for the call (``workers.conversations.calls``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

from workers.eventlog.entries import CALL_STATUS, TRANSCRIPTION, LogEntry
from workers.foundations.addresses import normalize
from workers.foundations.constants import VOICE
from workers.parse.event import CaptureEvent, ParseError, iso_ms, parse_timestamp

# callType values (DESIGN §4; a rule's ``SIP`` spelling is canonicalized by workers.capture.configuration).
PSTN, CLIENT, PUBLIC_SIP = "PSTN", "CLIENT", "PUBLIC_SIP"

INBOUND_TRACK, OUTBOUND_TRACK = "inbound_track", "outbound_track"
# TranscriptionEvent values (reference §5).
STARTED, CONTENT, STOPPED, ERROR = (
    "transcription-started", "transcription-content", "transcription-stopped", "transcription-error",
)
# Twilio's Direction values that mean the call came *to* the account.
_INBOUND_DIRECTIONS = {"inbound", "trunking-terminating"}
TERMINAL_STATUSES = {"completed", "busy", "failed", "no-answer", "canceled"}
# TwiML parameters that route a call actively (Orchestrator's names; no "Id" suffix on the second).
ROUTE_CONVERSATION = "conversationId"
ROUTE_CONFIGURATION = "conversationConfiguration"


class VoiceParseError(ParseError):
    """A voice webhook threadline cannot use; ``reason`` is the dead-letter / counter slug.
    A :class:`workers.parse.ParseError`, so the drain treats it like any unparseable entry."""


@dataclass(frozen=True)
class VoiceInfo:
    """What a voice event says beyond the fields every capture event has.

    ``progress`` is True for call progress (status callbacks, transcription started / stopped /
    error and partial results): they keep activity current and are never posted. Only a final
    transcription result has ``progress`` False and becomes a communication.
    """

    call_sid: str
    parent_call_sid: str | None = None
    progress: bool = True
    call_status: str | None = None            # status callbacks
    call_direction: str | None = None         # Twilio's Direction of the leg
    sequence: int | None = None               # SequenceNumber (status) / SequenceId (transcription)
    transcription_sid: str | None = None
    transcription_event: str | None = None
    track: str | None = None                  # inbound_track | outbound_track
    final: bool = False
    confidence: float | None = None
    engine: str | None = None                 # TranscriptionEngine (only on transcription-started)
    language: str | None = None
    route_conversation_id: str | None = None     # active routing (URL query)
    route_configuration: str | None = None
    error_code: str | None = None

    @property
    def routed_actively(self) -> bool:
        return bool(self.route_conversation_id or self.route_configuration)

    @property
    def terminal(self) -> bool:
        return self.call_status in TERMINAL_STATUSES or self.transcription_event == STOPPED


@dataclass(frozen=True)
class VoiceEvent(CaptureEvent):
    """A voice webhook as a :class:`CaptureEvent` plus :class:`VoiceInfo`.

    ``from_addr``/``to_addr`` are author and recipient: for a transcription they are empty until
    :func:`attribute` has read the call record (transcription callbacks carry no addresses)."""

    # Every VoiceEvent is made with its VoiceInfo; the default only satisfies dataclass inheritance
    # (CaptureEvent's last fields have defaults).
    voice: VoiceInfo = None  # type: ignore[assignment]


def call_type_of(*addresses: str | None) -> str:
    """callType of a call from its parties: ``client:`` on either side → CLIENT, else ``sip:`` →
    PUBLIC_SIP, else PSTN. A browser calling a SIP endpoint is CLIENT: the identity is what a rule
    has to name explicitly (DESIGN §4: no wildcard identities)."""
    lowered = [(a or "").strip().lower() for a in addresses]
    if any(a.startswith("client:") for a in lowered):
        return CLIENT
    if any(a.startswith(("sip:", "sips:")) for a in lowered):
        return PUBLIC_SIP
    return PSTN


def _when(timestamp: str | None, received_at_ms: int) -> tuple[str, str]:
    """(ISO 8601 UTC, source) from Twilio's ``Timestamp`` — RFC 2822 on status callbacks, ISO 8601
    on transcriptions — or the receive time when it is absent or unreadable (the incoming-call
    webhook has none)."""
    twilio = parse_timestamp(timestamp)
    return (twilio, "twilio") if twilio else (iso_ms(received_at_ms), "received")


def occurred_at(timestamp: str | None, received_at_ms: int) -> str:
    return _when(timestamp, received_at_ms)[0]


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _route(query: dict[str, str]) -> tuple[str | None, str | None]:
    conv = (query.get(ROUTE_CONVERSATION) or "").strip() or None
    cfg = (query.get(ROUTE_CONFIGURATION) or "").strip() or None
    return conv, cfg


def parse_transcription_data(raw: str | None) -> tuple[str, float | None]:
    """``TranscriptionData`` (a JSON string) → (transcript, confidence).

    Raises :class:`VoiceParseError` ``malformed_transcription_data`` for anything that is not a
    JSON object with a string ``transcript`` and, when present, a numeric confidence in [0, 1]
    (the range v2's ContentTranscription declares)."""
    if raw is None or raw == "":
        raise VoiceParseError("malformed_transcription_data", "TranscriptionData is missing")
    try:
        data = json.loads(raw)
    except ValueError:
        raise VoiceParseError("malformed_transcription_data", "TranscriptionData is not JSON") from None
    if not isinstance(data, dict):
        raise VoiceParseError("malformed_transcription_data", "TranscriptionData is not an object")
    transcript = data.get("transcript")
    if not isinstance(transcript, str):
        raise VoiceParseError("malformed_transcription_data", "transcript is not a string")
    confidence = data.get("confidence")
    if confidence is not None:
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) \
                or not math.isfinite(confidence) or not 0.0 <= confidence <= 1.0:
            raise VoiceParseError("malformed_transcription_data", "confidence is not a number in [0, 1]")
        confidence = float(confidence)
    return transcript, confidence


def _direction(twilio_direction: str | None) -> str:
    return "inbound" if (twilio_direction or "inbound") in _INBOUND_DIRECTIONS else "outbound"


def parse_call_status(entry: LogEntry) -> VoiceEvent:
    """A call status callback (or the incoming-call webhook) → a progress event of its leg."""
    p = entry.params
    call_sid = (p.get("CallSid") or "").strip()
    if not call_sid:
        raise VoiceParseError("missing_call_sid")
    from_addr = (p.get("From") or p.get("Caller") or "").strip()
    to_addr = (p.get("To") or p.get("Called") or "").strip()
    from_bare, to_bare = normalize(from_addr), normalize(to_addr)
    if not from_bare or not to_bare:
        raise VoiceParseError("bad_address", f"{'From' if not from_bare else 'To'} is not an address")
    call_type = call_type_of(from_addr, to_addr)
    when, source = _when(p.get("Timestamp"), entry.received_at_ms)
    voice = VoiceInfo(
        call_sid=call_sid,
        parent_call_sid=(p.get("ParentCallSid") or "").strip() or None,
        progress=True,
        call_status=(p.get("CallStatus") or "").strip().lower() or None,
        call_direction=(p.get("Direction") or "").strip() or None,
        sequence=_int_or_none(p.get("SequenceNumber")),
    )
    return VoiceEvent(
        kind=CALL_STATUS, channel=VOICE, from_addr=from_addr, to_addr=to_addr,
        from_bare=from_bare, to_bare=to_bare,
        direction=_direction(voice.call_direction), resource_id=call_sid, text=None,
        delivery_status=None, occurred_at=when, occurred_at_source=source,
        metadata={"callType": call_type}, account=entry.account or p.get("AccountSid", ""),
        received_at_ms=entry.received_at_ms, cid=entry.cid, voice=voice,
    )


def parse_transcription(entry: LogEntry) -> VoiceEvent:
    """A real-time transcription callback → an event without addresses (see :func:`attribute`).

    Only a final ``transcription-content`` result with a non-empty transcript is a
    communication candidate (``voice.progress`` False); its resource id is
    ``TranscriptionSid:SequenceId``, so Twilio's retry of the callback upserts, never duplicates.
    """
    p = entry.params
    call_sid = (p.get("CallSid") or "").strip()
    if not call_sid:
        raise VoiceParseError("missing_call_sid")
    event = (p.get("TranscriptionEvent") or "").strip()
    if event not in (STARTED, CONTENT, STOPPED, ERROR):
        raise VoiceParseError("unknown_transcription_event", event[:40])
    tsid = (p.get("TranscriptionSid") or "").strip() or None
    seq = _int_or_none(p.get("SequenceId"))
    conv, cfg = _route(entry.query)
    final = (p.get("Final") or "").strip().lower() == "true"
    text: str | None = None
    confidence: float | None = None
    track: str | None = (p.get("Track") or "").strip() or None
    progress = True
    resource_id = f"{tsid}:{seq}" if tsid and seq is not None else (tsid or call_sid)
    if event == CONTENT:
        if not tsid or seq is None:
            raise VoiceParseError("missing_transcription_sequence")
        transcript, confidence = parse_transcription_data(p.get("TranscriptionData"))
        track = _track(track)
        if final and transcript.strip():
            text = transcript.strip()
            progress = False
        else:
            confidence = None if not final else confidence
    when, source = _when(p.get("Timestamp"), entry.received_at_ms)
    voice = VoiceInfo(
        call_sid=call_sid, progress=progress, sequence=seq, transcription_sid=tsid,
        transcription_event=event, track=track, final=final and event == CONTENT,
        confidence=confidence, engine=(p.get("TranscriptionEngine") or "").strip() or None,
        language=(p.get("LanguageCode") or "").strip() or None,
        route_conversation_id=conv, route_configuration=cfg,
        error_code=(p.get("ErrorCode") or "").strip() or None,
    )
    return VoiceEvent(
        kind=TRANSCRIPTION, channel=VOICE, from_addr="", to_addr="", from_bare="", to_bare="",
        direction="inbound", resource_id=resource_id, text=text, delivery_status=None,
        occurred_at=when, occurred_at_source=source, metadata={},
        account=entry.account or p.get("AccountSid", ""), received_at_ms=entry.received_at_ms,
        cid=entry.cid, voice=voice,
    )


def _track(track: str | None) -> str:
    """inbound_track / outbound_track; tolerant of ``inbound``/``outbound`` spellings. Custom track
    labels cannot be told apart, so they are refused with a reason instead of guessed."""
    t = (track or "").strip().lower()
    if t in (INBOUND_TRACK, "inbound"):
        return INBOUND_TRACK
    if t in (OUTBOUND_TRACK, "outbound"):
        return OUTBOUND_TRACK
    raise VoiceParseError("unknown_track", t[:40])


def parse_voice(entry: LogEntry) -> VoiceEvent:
    """Either voice kind; :class:`VoiceParseError` (with a reason slug) for what cannot be used."""
    if entry.kind == CALL_STATUS:
        return parse_call_status(entry)
    if entry.kind == TRANSCRIPTION:
        return parse_transcription(entry)
    raise ValueError(f"not a voice kind: {entry.kind!r}")


@dataclass(frozen=True)
class CallParties:
    """The root call of a leg as the worker recorded it: its two parties and Twilio's direction.

    ``leg_is_child`` says whether the transcription ran on a dialled child leg rather than on
    the root call itself."""

    from_addr: str
    to_addr: str
    direction: str | None
    leg_is_child: bool = False


def speakers(parties: CallParties, track: str) -> tuple[str, str, int]:
    """(author, recipient, transcription channel) of one track.

    ``inbound_track`` is the audio Twilio receives from the remote party of the leg the
    transcription runs on; ``outbound_track`` is what Twilio sends to it. On an inbound root call
    the remote party is the caller (``From``); on an outbound one (REST, ``<Dial>``) it is the
    called side (``To``); on a dialled child leg it is the dialled side of the root call.
    Channel 0 is inbound, 1 outbound (v2's ContentTranscription)."""
    inbound_root = (parties.direction or "inbound") in _INBOUND_DIRECTIONS
    remote, local = parties.from_addr, parties.to_addr
    if not inbound_root:
        remote, local = local, remote
    if parties.leg_is_child:
        remote, local = local, remote
    if track == INBOUND_TRACK:
        return remote, local, 0
    return local, remote, 1


def attribute(event: VoiceEvent, parties: CallParties) -> VoiceEvent:
    """Fill a transcription event's author, recipient, direction and callType from its call.

    The direction is ``inbound`` when the author is the root call's remote party (the
    customer's side on an inbound call)."""
    if event.kind != TRANSCRIPTION:
        return event
    track = event.voice.track if event.voice.track in (INBOUND_TRACK, OUTBOUND_TRACK) else INBOUND_TRACK
    author, recipient, _ = speakers(parties, track)
    inbound_root = (parties.direction or "inbound") in _INBOUND_DIRECTIONS
    root_remote = parties.from_addr if inbound_root else parties.to_addr
    metadata = {**event.metadata, "callType": call_type_of(parties.from_addr, parties.to_addr)}
    return replace(
        # the parties come from the call record, whose addresses normalized when it was made
        event, from_addr=author, to_addr=recipient,
        from_bare=normalize(author),  # type: ignore[arg-type]
        to_bare=normalize(recipient),  # type: ignore[arg-type]
        direction="inbound" if author == root_remote else "outbound",
        metadata=metadata,
    )


def transcription_content(event: VoiceEvent, engine: str | None = None) -> dict:
    """The v2 ``content`` of a final result (ContentTranscription; no nulls: absent fields are
    left out). ``engine`` falls back to the one the call's ``transcription-started`` named."""
    if event.text is None or event.voice.progress:
        raise ValueError("only a final transcription result is a communication")
    meta: dict[str, object] = {"channel": 0 if event.voice.track == INBOUND_TRACK else 1}
    if event.voice.confidence is not None:
        meta["confidence"] = event.voice.confidence
    chosen = event.voice.engine or engine
    if chosen:
        meta["engine"] = chosen
    return {"type": "TRANSCRIPTION", "text": event.text, "transcription": meta}
