"""An incoming call on the twin's account, played as Twilio plays it.

1. The number's ``VoiceUrl`` (``VoiceMethod``) is asked for TwiML with ``CallStatus=ringing``.
   An answer that is not a 2xx TwiML document (or no answer) fails the call, as Twilio does
   (error 11200/12100); a number without a ``VoiceUrl`` is answered with no TwiML (a twin
   leniency, so a test can make a call without an application).
2. What the TwiML asks for is recorded on the call (``twiml`` in ``/_twin/state``):
   ``<Start><Transcription>`` (every attribute; honoured: the transcription starts when the call
   is answered), ``<Connect><ConversationRelay>`` attributes, ``<Dial><Number>`` legs with their
   ``statusCallback``/``statusCallbackEvent``. ``conversationConfiguration``/``conversationId``
   on a ``<Transcription>`` are kept as its settings.
3. After ``answerAfterSeconds`` the call is ``in-progress`` (Calls list shows it so); each
   ``<Dial><Number>`` leg gets its ``initiated``/``ringing``/``answered`` events if it asked.
4. The utterances are spoken in order (each after its own ``pauseSeconds``, a twin extension so
   a test can start a transcription mid-call) to every live transcription listening to their
   track; the call stays in progress ``holdSeconds`` more.
5. The call completes: live transcriptions stop (``transcription-stopped``), ``<Dial>`` legs
   get ``completed``, and the number's ``StatusCallback`` gets ``completed`` only (the one event
   Twilio sends a number's status callback). Each status callback sent is also the
   ``com.twilio.voice.status-callback.call.<event>`` Event Streams event (see
   :mod:`service.twin.eventstreams` for what that models).
"""
from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from typing import Any

from service.twin import calls, eventstreams, transcriptions
from service.twin.store import Json

EVENT_STATUS = {"initiated": "initiated", "ringing": "ringing", "answered": "in-progress",
                "completed": "completed"}


def read_twiml(text: str) -> Json:
    """What a TwiML document asks for; raises ValueError when it is not TwiML."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"TwiML parse failure: {exc}") from None
    if root.tag != "Response":
        raise ValueError("TwiML root is not <Response>")
    out: Json = {"transcriptions": [], "conversation_relays": [], "dial_numbers": []}
    for start in root.iter("Start"):
        for tr in start.iter("Transcription"):
            out["transcriptions"].append(dict(tr.attrib))
    for connect in root.iter("Connect"):
        for relay in connect.iter("ConversationRelay"):
            out["conversation_relays"].append(dict(relay.attrib))
    for dial in root.iter("Dial"):
        for number in dial.iter("Number"):
            out["dial_numbers"].append({**number.attrib, "number": (number.text or "").strip()})
    return out


async def _status_callback(twin: Any, call: Json, url: str, method: str, event: str) -> None:
    sequence = call.setdefault("_sequence", 0)
    call["_sequence"] = sequence + 1
    # ``completed`` fires for every terminal state and carries it (failed, busy, …).
    status = call["status"] if event == "completed" else EVENT_STATUS[event]
    record = await twin.sender.form("call_status", url,
                                    calls.status_params(call, status, sequence),
                                    method or "POST")
    await eventstreams.publish(twin.sender, twin.store,
                               f"com.twilio.voice.status-callback.call.{event}",
                               call["uri"], eventstreams.call_event_data(call["sid"], record))


def _events(leg: Json) -> list[str]:
    asked = leg.get("statusCallbackEvent", "completed").replace(",", " ").split()
    return [e for e in asked if e in EVENT_STATUS]


async def _dial(twin: Any, call: Json, legs: list[Json]) -> list[tuple[Json, Json]]:
    children = []
    for leg in legs:
        child = calls.new_call(twin.store, call["from"], leg["number"], "outbound-dial",
                               call["sid"])
        children.append((child, leg))
        for event, status in (("initiated", "queued"), ("ringing", "ringing"),
                              ("answered", "in-progress")):
            calls.set_status(child, status)
            if leg.get("statusCallback") and event in _events(leg):
                await _status_callback(twin, child, leg["statusCallback"],
                                       leg.get("statusCallbackMethod", "POST"), event)
    return children


async def play(twin: Any, call: Json, number: Json, spec: Any) -> None:
    twiml: Json = {"transcriptions": [], "conversation_relays": [], "dial_numbers": []}
    failed = False
    if number.get("voice_url"):
        record = await twin.sender.form("incoming_call", number["voice_url"],
                                        calls.params(call, "ringing"),
                                        number.get("voice_method") or "POST")
        try:
            if "error" in record or not 200 <= record["status"] < 300:
                raise ValueError("HTTP retrieval failure (11200)")
            twiml = read_twiml(record.get("answer") or "")
        except ValueError as exc:
            call["_error"] = str(exc)
            failed = True
    call["twiml"] = twiml
    children: list[tuple[Json, Json]] = []
    if not failed:
        await asyncio.sleep(spec.answerAfterSeconds)
        calls.set_status(call, "in-progress")
        starting = []
        for attrs in twiml["transcriptions"]:
            settings = {rest: attrs[attr] for attr, rest in transcriptions.SETTINGS.items()
                        if attr in attrs}
            starting.append(transcriptions.begin(twin, call, settings, "twiml")[1])
        await asyncio.gather(*starting)  # the started callbacks go before the first words
        children = await _dial(twin, call, twiml["dial_numbers"])
        for u in spec.utterances:
            await asyncio.sleep(u.pauseSeconds)
            await transcriptions.speak(twin, call["sid"], u.track, u.text, u.confidence)
        await asyncio.sleep(spec.holdSeconds)
    calls.set_status(call, "failed" if failed else "completed")
    for t in list(twin.store.transcriptions.values()):
        if t["call_sid"] == call["sid"]:
            await transcriptions.stop(twin, t)
    for child, leg in children:
        calls.set_status(child, "completed")
        if leg.get("statusCallback") and "completed" in _events(leg):
            await _status_callback(twin, child, leg["statusCallback"],
                                   leg.get("statusCallbackMethod", "POST"), "completed")
    if number.get("status_callback"):
        await _status_callback(twin, call, number["status_callback"],
                               number.get("status_callback_method") or "POST", "completed")
