"""Passive voice, the REST way: start a captured call's Real-Time Transcription, stop it when done.

Orchestrator transcribes every call a VOICE capture rule matches without a TwiML change; so does
threadline. When the drain learns that a call is ``in-progress`` — a status callback, an Event
Streams call event, or the poll of the account's live calls (:mod:`workers.delivery.callpoll`),
all the same log entry kind — :meth:`Transcriber.on_status` decides (:func:`decide`, pure) and
``POST …/Calls/{CallSid}/Transcriptions.json`` starts one with ``Track=both_tracks``, the
``StatusCallbackUrl`` ``$THREADLINE_PUBLIC_URL/webhooks/twilio/voice/transcription`` and the
configuration's ``channelSettings.VOICE.transcription`` settings.

Once only: the call record (``workers.conversations.calls``) is claimed (``HSETNX rts``) before
the request, and the ``Name`` is ``threadline-{CallSid}``, so a repeat of the status, the poll
and a stream event of one call never start a second one. Never for:

- a call routed actively (``conversationId``/``conversationConfiguration``: the double-billing
  guard), nor one on which another transcription already runs (one seen in a callback that is
  not ours, e.g. the operator's own ``<Start><Transcription>``);
- a dialled child leg (its parent's transcription hears both sides, ``both_tracks``);
- a call no VOICE rule captures (with its ``callType``).

Twilio's answers: 2xx → ``transcriptions|started|rest``; 21220 (the call is not in progress any
more, or not yet) → counted, the claim given back, and the poll asked to report the call again
while it lives (a call not in progress yet is retried when it is); 404 (no such call) → counted;
any other refusal → counted
``transcriptions|refused|<code>`` and dead-lettered with reason ``transcription_refused``
(replay retries it); never retried forever. A transient failure after the client's retries →
``transcriptions|failed|transient``, claim given back, the poll retries while the call lives.

Stop: a terminal status of a call whose transcription we started and whose
``transcription-stopped`` has not come sends ``Status=stopped`` (Twilio normally stops it with the
call: its 21220/404 then counts ``stopped|twilio``); a transcription of ours on a call that turns
out to be routed actively or transcribed by someone else is stopped at once (``stopped|threadline``).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from workers import stats
from workers.capture.index import Match
from workers.conversations.calls import CallRecord, CallRegistry
from workers.foundations import keys
from workers.foundations.errors import Permanent
from workers.foundations.log import get_logger
from workers.foundations.settings import Settings
from workers.parse.voice import TERMINAL_STATUSES, VoiceParseError
from workers.twilio import voice_api
from workers.twilio.client import V2Client, V2Error

logger = get_logger("threadline.transcribe")

TRANSCRIPTION_PATH = "/webhooks/twilio/voice/transcription"
NOT_IN_PROGRESS = 21220  # Twilio: "Invalid call state" for a realtime operation on a call not in progress
STARTING, STARTED, STOPPED = "starting", "started", "stopped"
# ``rts`` of a call whose transcription the forwarding relay started through TwiML
# (service.webhooks.voice_start): never started again here, never stopped here (Twilio stops it
# with the call).
TWIML = "twiml"


def count(counts: Counter, operation: str, detail: str) -> None:
    counts[stats.field("transcriptions", operation, detail)] += 1


def name_of(call_sid: str) -> str:
    """The Name of threadline's transcription of a call: derived from the call, so it names the
    one transcription threadline may start there (and stops it by name)."""
    return f"threadline-{call_sid}"


@dataclass(frozen=True)
class Decision:
    start: bool
    why: str


def decide(record: CallRecord, status: str | None, matches: list[Match]) -> Decision:
    """Whether an ``in-progress`` call gets a transcription from threadline. Pure."""
    if status != "in-progress":
        return Decision(False, "not_in_progress")
    if record.parent:
        return Decision(False, "child_leg")
    if record.active:
        return Decision(False, "actively_routed")
    if record.foreign:
        return Decision(False, "already_transcribed")
    if record.rest_state == TWIML:
        return Decision(False, "twiml")
    if record.rest_state:
        return Decision(False, "already_started")
    if not matches:
        return Decision(False, "no_rule")
    return Decision(True, "captured")


def transcription_settings(matches: list[Match], configs: dict) -> object | None:
    """The ``channelSettings.VOICE.transcription`` that applies to a call (several configurations
    capture it: the first by id decides)."""
    vc = configs.get(min(m.config_id for m in matches)) if matches else None
    voice = vc.config.channelSettings.VOICE if vc is not None else None
    return voice.transcription if voice is not None else None


def twiml_attributes(call_sid: str, transcription: object | None) -> dict[str, str]:
    """The ``<Transcription>`` attributes beyond the callback and the track: the same name and
    settings the REST way sends (:func:`form`), in TwiML's spelling."""
    attrs = {"name": name_of(call_sid), "partialResults": "false"}
    if transcription is not None:
        for attr in ("transcriptionEngine", "speechModel", "languageCode"):
            value = getattr(transcription, attr, None)
            if value:
                attrs[attr] = str(value)
        attrs["partialResults"] = "true" if getattr(transcription, "partialResults", False) else "false"
    return attrs


def form(settings: Settings, call_sid: str, transcription: object | None) -> dict[str, str]:
    """The create body: threadline's callback, both tracks, the configuration's settings."""
    base = (settings.public_url or "").rstrip("/")
    body = {"Name": name_of(call_sid), "Track": "both_tracks",
            "StatusCallbackUrl": base + TRANSCRIPTION_PATH, "StatusCallbackMethod": "POST",
            "PartialResults": "false"}
    if transcription is not None:
        for attr, param in (("transcriptionEngine", "TranscriptionEngine"),
                            ("speechModel", "SpeechModel"), ("languageCode", "LanguageCode")):
            value = getattr(transcription, attr, None)
            if value:
                body[param] = value
        body["PartialResults"] = "true" if getattr(transcription, "partialResults", False) else "false"
    return body


class TranscriptionRefused(VoiceParseError):
    """Twilio refused to start a captured call's transcription; dead-lettered so a replay retries."""


class Transcriber:
    def __init__(self, settings: Settings, client: V2Client, calls: CallRegistry, redis) -> None:
        self.settings = settings
        self.client = client
        self.calls = calls
        self.redis = redis

    async def on_status(self, record: CallRecord, status: str | None, account: str,
                        matches: list[Match], configs: dict, counts: Counter) -> None:
        """A call's status was recorded: start, stop, or leave its transcription."""
        if status in TERMINAL_STATUSES:
            if record.rest_state == STARTED:
                await self.stop(record, account, counts, by_call_end=True)
            return
        d = decide(record, status, matches)
        if not d.start:
            if status == "in-progress" and d.why in ("actively_routed", "already_transcribed", TWIML):
                count(counts, "skipped", d.why)
            return
        if not self.settings.public_url:
            count(counts, "failed", "no_public_url")  # Twilio needs an absolute callback URL
            logger.warning("transcription not started: THREADLINE_PUBLIC_URL is not set",
                           extra={"call": record.sid})
            return
        if not await self.calls.claim_transcription(record.sid):
            return  # another status of the same call got there first
        body = form(self.settings, record.sid, transcription_settings(matches, configs))
        try:
            created = await voice_api.start_transcription(self.client, account or self._account(),
                                                          record.sid, body)
        except V2Error as exc:
            await self.calls.release_transcription(record.sid)
            await self._refused(record.sid, exc, counts)
            return
        await self.calls.set_fields(record.sid, {"rts": STARTED, "rtsid": str(created.get("sid") or "")})
        count(counts, "started", "rest")
        logger.info("transcription started", extra={"call": record.sid, "way": "rest"})

    async def _refused(self, call_sid: str, exc: V2Error, counts: Counter) -> None:
        if exc.transient:
            count(counts, "failed", "transient")
            await self.redis.srem(keys.CALL_POLL_KNOWN, call_sid)  # the next poll tries again
            logger.warning("transcription start failed", extra={"call": call_sid, "status": exc.status})
            return
        count(counts, "refused", str(exc.code or exc.status))
        logger.warning("transcription refused", extra={"call": call_sid, "status": exc.status,
                                                       "code": exc.code})
        if exc.code == NOT_IN_PROGRESS:
            await self.redis.srem(keys.CALL_POLL_KNOWN, call_sid)  # retried when it is in progress
            return
        if exc.status == 404:
            return  # no such call on the account (a replayed or foreign status): nothing to retry
        raise TranscriptionRefused("transcription_refused", f"{exc.status} code {exc.code}: {exc.message}")

    async def stop(self, record: CallRecord, account: str, counts: Counter, *,
                   by_call_end: bool = False) -> None:
        """Stop threadline's transcription of the call (by its Name)."""
        await self.calls.set_fields(record.sid, {"rts": STOPPED})
        try:
            await voice_api.stop_transcription(self.client, account or self._account(), record.sid,
                                               name_of(record.sid))
        except V2Error as exc:
            if exc.status == 404 or exc.code == NOT_IN_PROGRESS:
                count(counts, "stopped", "twilio")  # the call ended and Twilio stopped it
                return
            if isinstance(exc, Permanent) and not exc.transient:
                count(counts, "refused", f"stop:{exc.code or exc.status}")
            else:
                count(counts, "failed", "stop")
            logger.warning("transcription stop failed", extra={"call": record.sid, "status": exc.status})
            return
        count(counts, "stopped", "call_end" if by_call_end else "threadline")

    def _account(self) -> str:
        return self.settings.twilio_account_sid or ""
