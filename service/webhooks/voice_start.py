"""Passive voice in forwarding mode: a captured call's transcription starts in the application's TwiML.

For a number ``threadline connect --forward`` points at threadline, the incoming-call webhook is
relayed to the application (:mod:`service.webhooks.forwarding`); before its answer goes back to
Twilio, :meth:`VoiceStart.answer` decides:

- whether a VOICE rule captures the call (with its ``callType``): the in-memory rules
  (:mod:`service.webhooks.rules_cache`) and the workers' own pure decision
  (:func:`workers.delivery.callpoll.capture_matches`: root calls only) — no I/O;
- for a captured call whose answer is 2xx TwiML, :func:`service.webhooks.twiml.with_transcription`
  puts ``<Start><Transcription statusCallbackUrl="…/webhooks/twilio/voice/transcription"
  track="both_tracks" name="threadline-{CallSid}" …/></Start>`` (the configuration's engine,
  model, language, partial results) ahead of the application's verbs.

The callback URL is ``$THREADLINE_PUBLIC_URL/webhooks/twilio/voice/transcription``; without the
setting, the URL Twilio called (its signature matched, so it is threadline's as Twilio knows it)
with ``/webhooks/twilio/voice`` turned into ``…/voice/transcription``.

What is recorded, before the answer goes back (the call record ``tl:call:{CallSid}``, one
pipelined round trip, only for captured calls), so that the REST way
(:mod:`workers.delivery.transcribe`, fed by the poll of in-progress calls, which stays on in
forwarding mode: calls the application places never pass the relay) never starts a second one:
``rts=twiml`` when the verb was added; ``ext=twiml`` when the application's TwiML already
transcribes; ``act=twiml`` when it connects a ConversationRelay with
``conversationConfiguration``/``conversationId`` (routed actively: the double-billing guard).
When that write fails (Redis away), the application's answer goes back unchanged: no
transcription now is better than two later (the poll starts one once Redis is back).

Counted: ``transcriptions|started|twiml``; ``transcriptions|skipped|already_transcribed`` /
``actively_routed``; ``transcriptions|failed|not_twiml`` (a captured call whose application answer
is not TwiML: Twilio reports the application's error) and ``failed|unrecorded``.
"""
from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from redis.exceptions import RedisError
from starlette.responses import Response

from service.webhooks import twiml
from service.webhooks.rules_cache import RulesCache
from workers import stats
from workers.delivery.callpoll import capture_matches
from workers.delivery.transcribe import TRANSCRIPTION_PATH, TWIML, transcription_settings, twiml_attributes
from workers.eventlog.entries import CALL_STATUS, LogEntry
from workers.foundations import keys, log
from workers.foundations.settings import Settings
from workers.stats.buffer import StatsBuffer

logger = log.get_logger("threadline.forwarding")
__all__ = ["VoiceStart", "callback_url"]

VOICE_PATH = "/webhooks/twilio/voice"
# What the call record says about a call the relay did not add a transcription to.
_RECORDED = {"already_transcribed": "ext", "actively_routed": "act"}


def callback_url(settings: Settings, called: str) -> str:
    """Where the transcription's callbacks go: the public URL, else the URL Twilio called."""
    if settings.public_url:
        return settings.public_url.rstrip("/") + TRANSCRIPTION_PATH
    parts = urlsplit(called)
    path = parts.path
    base = path[:-len(VOICE_PATH)] if path.endswith(VOICE_PATH) else ""
    return urlunsplit((parts.scheme, parts.netloc, base + TRANSCRIPTION_PATH, "", ""))


class VoiceStart:
    """One per web process, beside the relay."""

    def __init__(self, settings: Settings, redis, counts: StatsBuffer, rules: RulesCache) -> None:
        self.settings = settings
        self.redis = redis
        self.rules = rules
        self._counts = counts

    def _count(self, operation: str, detail: str) -> None:
        self._counts.add({stats.field("transcriptions", operation, detail): 1})

    async def answer(self, pairs: Sequence[tuple[str, str]], called: str, answer: Response) -> Response:
        """The application's answer to the incoming-call webhook, with the transcription started
        when the call is captured (see the module docstring); else ``answer`` itself."""
        if not 200 <= answer.status_code < 300:
            return answer
        params = dict(pairs)
        entry = LogEntry(CALL_STATUS, 0, params.get("AccountSid", ""), params, {}, "")
        matches = capture_matches(entry, self.rules.index, self.rules.configs)
        if not matches:
            return answer
        call_sid = params.get("CallSid", "").strip()
        try:
            text = bytes(answer.body).decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        attrs = twiml_attributes(call_sid, transcription_settings(matches, self.rules.configs))
        out, why = twiml.with_transcription(text, callback_url(self.settings, called), attrs)
        if out is None:
            field = _RECORDED.get(why)
            if field is None:
                self._count("failed", why)
                return answer
            await self._record(call_sid, {field: TWIML})
            self._count("skipped", why)
            return answer
        if not await self._record(call_sid, {"rts": TWIML}):
            self._count("failed", "unrecorded")
            return answer
        self._count("started", TWIML)
        logger.info("transcription started", extra={"call": call_sid, "way": TWIML})
        return _with_body(answer, out.encode("utf-8"))

    async def _record(self, call_sid: str, mapping: dict[str, str]) -> bool:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(keys.call(call_sid), mapping=mapping)
        pipe.expire(keys.call(call_sid), self.settings.call_ttl_seconds)
        try:
            await pipe.execute()
        except RedisError as exc:
            logger.warning("call not recorded: the application's TwiML goes back unchanged",
                           extra={"call": call_sid, "error": type(exc).__name__})
            return False
        return True


def _with_body(answer: Response, body: bytes) -> Response:
    """``answer`` (status, Content-Type) with another body and its length."""
    out = Response(body, answer.status_code)
    for name, value in answer.raw_headers:
        if name.lower() not in (b"content-length",):
            out.raw_headers.append((name, value))
    return out
