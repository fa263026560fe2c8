"""Real-Time Transcriptions of a live call, started by TwiML or by the REST API, and what
they send to their ``StatusCallbackUrl``.

REST: ``POST …/Calls/{CallSid}/Transcriptions.json`` (form: ``Name``, ``Track``,
``StatusCallbackUrl``, ``StatusCallbackMethod``, ``PartialResults``, ``LanguageCode``,
``TranscriptionEngine``, ``ConversationConfiguration``, ``ConversationId``, … as the spec
declares) starts one; ``POST …/Transcriptions/{Sid}.json`` ``Status=stopped`` stops it (the
SID or its ``Name``, as Twilio allows). Either on a call that is not ``in-progress`` is
refused: 400, code 21220 "Invalid call state" (Twilio's answer to a realtime operation on a call
that is not in progress); an unknown call or transcription is a 404.

Callbacks (form-encoded, signed), shared/reference/twilio-webhooks.md §5:
``transcription-started`` (``SequenceId`` 1, ``Track`` as configured, ``LanguageCode``,
``PartialResults``, ``TranscriptionEngine``, ``ProviderConfiguration``); one
``transcription-content`` per utterance on a track it listens to (``both_tracks`` hears both)
with ``Final=true`` and ``TranscriptionData`` ``{"transcript", "confidence"}``, preceded when
``PartialResults`` is true by a ``Final=false`` partial (the first half of the words, no
confidence, ``Stability``); ``transcription-stopped`` when stopped or when the call ends.
``SequenceId`` rises by one across all of a transcription's callbacks; one transcription's
callbacks are sent one at a time, in order.
"""
from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.twin import forms, ids
from service.twin.errors import TwinError, not_found
from service.twin.http import store
from service.twin.listing import account, rfc2822
from service.twin.store import Json, now_iso

TRACKS = ("inbound_track", "outbound_track", "both_tracks")
CREATE = forms.Form({
    "Name": forms.STR, "Track": TRACKS, "StatusCallbackUrl": forms.URI,
    "StatusCallbackMethod": forms.METHOD, "InboundTrackLabel": forms.STR,
    "OutboundTrackLabel": forms.STR, "PartialResults": forms.BOOL, "LanguageCode": forms.STR,
    "TranscriptionEngine": forms.STR, "ProfanityFilter": forms.BOOL, "SpeechModel": forms.STR,
    "Hints": forms.STR, "EnableAutomaticPunctuation": forms.BOOL,
    "IntelligenceService": forms.STR, "ConversationConfiguration": forms.STR,
    "ConversationId": forms.STR, "ConfigurationId": forms.STR, "EnableProviderData": forms.BOOL,
})
UPDATE = forms.Form({"Status": ("stopped",)}, required=("Status",))
# TwiML <Transcription> attribute / REST parameter → the stored setting.
SETTINGS = {"name": "Name", "track": "Track", "statusCallbackUrl": "StatusCallbackUrl",
            "statusCallbackMethod": "StatusCallbackMethod", "partialResults": "PartialResults",
            "languageCode": "LanguageCode", "transcriptionEngine": "TranscriptionEngine",
            "conversationConfiguration": "ConversationConfiguration",
            "conversationId": "ConversationId", "intelligenceService": "IntelligenceService",
            "inboundTrackLabel": "InboundTrackLabel", "outboundTrackLabel": "OutboundTrackLabel",
            "speechModel": "SpeechModel", "profanityFilter": "ProfanityFilter"}


def not_live(call_sid: str) -> TwinError:
    return TwinError(400, 21220, f"Invalid call state: call {call_sid} is not in-progress")


def begin(twin: Any, call: Json, settings: dict[str, str],
          source: str) -> tuple[Json, asyncio.Task[None]]:
    """Record a transcription of ``call`` (settings by REST parameter name) and send its
    ``transcription-started`` in the background (the task returned); the resource as the API
    returns it. It hears
    utterances once that callback has been sent (speech before it is not transcribed)."""
    sid = ids.sid("GT")
    uri = f"/2010-04-01/Accounts/{call['account_sid']}/Calls/{call['sid']}/Transcriptions/{sid}.json"
    t: Json = {"sid": sid, "account_sid": call["account_sid"], "call_sid": call["sid"],
               "name": settings.get("Name"), "status": "in-progress",
               "date_updated": rfc2822(), "uri": uri, "source": source,
               "settings": dict(settings), "sequence": 0, "listening": False}
    twin.store.transcriptions[sid] = t
    task = twin.spawn(_send(twin, t, "transcription-started", None))
    return resource(t), task


def resource(t: Json) -> Json:
    return {k: copy.deepcopy(t[k]) for k in ("sid", "account_sid", "call_sid", "name", "status",
                                              "date_updated", "uri")}


def _track(t: Json) -> str:
    return t["settings"].get("Track") or "both_tracks"


def _partials(t: Json) -> bool:
    return str(t["settings"].get("PartialResults", "false")).lower() == "true"


def _base(t: Json, event: str) -> dict[str, str]:
    t["sequence"] += 1
    return {"AccountSid": t["account_sid"], "CallSid": t["call_sid"],
            "TranscriptionSid": t["sid"], "TranscriptionEvent": event,
            "SequenceId": str(t["sequence"]), "Timestamp": now_iso()}


async def _send(twin: Any, t: Json, event: str, content: dict[str, str] | None) -> None:
    lock = twin.locks.setdefault(t["sid"], asyncio.Lock())
    async with lock:
        params = _base(t, event)
        s = t["settings"]
        if event == "transcription-started":
            params.update(Track=_track(t), LanguageCode=s.get("LanguageCode") or "en-US",
                          PartialResults="true" if _partials(t) else "false",
                          TranscriptionEngine=s.get("TranscriptionEngine") or "google",
                          ProviderConfiguration=json.dumps(
                              {"profanityFilter": s.get("ProfanityFilter", "true"),
                               "speechModel": s.get("SpeechModel") or "telephony",
                               "enableAutomaticPunctuation": "true"}, separators=(",", ":")))
        elif content:
            params["LanguageCode"] = s.get("LanguageCode") or "en-US"
            params.update(content)
        url = s.get("StatusCallbackUrl")
        if url:
            await twin.sender.form("transcription", url, params,
                                   s.get("StatusCallbackMethod") or "POST")
        if event == "transcription-started":
            t["listening"] = True


async def speak(twin: Any, call_sid: str, track: str, text: str, confidence: float) -> None:
    """An utterance on ``track``: to every live transcription of the call that listens to it."""
    for t in list(twin.store.transcriptions.values()):
        if t["call_sid"] != call_sid or t["status"] != "in-progress" or not t["listening"]:
            continue
        if _track(t) not in ("both_tracks", track):
            continue
        if _partials(t):
            words = text.split()
            partial = " ".join(words[:max(1, len(words) // 2)])
            await _send(twin, t, "transcription-content", {
                "Track": track, "Final": "false", "Stability": "0.8",
                "TranscriptionData": json.dumps({"transcript": partial})})
        await _send(twin, t, "transcription-content", {
            "Track": track, "Final": "true",
            "TranscriptionData": json.dumps({"transcript": text, "confidence": confidence})})


def _mark_stopped(t: Json) -> bool:
    if t["status"] != "in-progress":
        return False
    t["status"] = "stopped"
    t["date_updated"] = rfc2822()
    return True


async def stop(twin: Any, t: Json) -> None:
    """Stop ``t`` (when the call ends) and send its ``transcription-stopped``."""
    if _mark_stopped(t):
        await _send(twin, t, "transcription-stopped", None)


def _live_call(request: Request) -> Json:
    account(request)
    call = store(request).calls.get(request.path_params["CallSid"])
    if call is None:
        raise not_found(request.url.path)
    if call["status"] != "in-progress":
        raise not_live(call["sid"])
    return call


async def create_transcription(request: Request) -> JSONResponse:
    call = _live_call(request)
    body = await forms.read(request, CREATE)
    settings = {k: str(v) for k, v in body.items()}
    view, _ = begin(request.app.state.twin, call, settings, "api")
    return JSONResponse(view)  # 200: the spec declares no 201 here


async def update_transcription(request: Request) -> JSONResponse:
    call = _live_call(request)
    body = await forms.read(request, UPDATE)
    key = request.path_params["Sid"]
    t = next((t for t in store(request).transcriptions.values() if t["call_sid"] == call["sid"]
              and key in (t["sid"], t["name"])), None)
    if t is None:
        raise not_found(request.url.path)
    assert body["Status"] == "stopped"
    twin = request.app.state.twin
    if _mark_stopped(t):  # no more content from now on; the stopped callback follows
        twin.spawn(_send(twin, t, "transcription-stopped", None))
    return JSONResponse(resource(t))


_T = "/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Transcriptions"
ROUTES = [
    Route(_T + ".json", create_transcription, methods=["POST"]),
    Route(_T + "/{Sid}.json", update_transcription, methods=["POST"]),
]
