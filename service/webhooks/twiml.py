"""Passive voice in forwarding mode: the application's TwiML with a transcription started ahead of it.

Pure (no I/O). :func:`with_transcription` reads the application's answer to the incoming-call
webhook and, for a call a VOICE rule captures, returns it with
``<Start><Transcription statusCallbackUrl="…/webhooks/twilio/voice/transcription" track="both_tracks"/></Start>``
as the first verb — by inserting text right after the ``<Response>`` start tag, so the
application's verbs, their order, attributes, whitespace and comments are byte for byte what it
sent. The result is parsed again before it is used: a well-formed TwiML document or nothing.

Left alone (``None``: send the application's answer unchanged):
- a document that is not TwiML (not XML, or the root is not ``<Response>``): Twilio will report
  the application's error, not threadline's;
- TwiML that already starts a ``<Transcription>`` (one engine per call: no double billing), or
  connects a ``<ConversationRelay>`` / ``<Transcription>`` with ``conversationConfiguration`` or
  ``conversationId`` (the call is routed actively: Orchestrator's own STT runs on it).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr

ROUTE_ATTRIBUTES = ("conversationConfiguration", "conversationId")
_ROOT = re.compile(r"<Response(\s[^>]*?)?(/?)>")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def why_not(root: ET.Element) -> str | None:
    """Why a TwiML document must not get a transcription of threadline's, or None."""
    for el in root.iter():
        name = _local(el.tag)
        if name == "Transcription":
            return "already_transcribed"
        if name == "ConversationRelay" and any(el.get(a) for a in ROUTE_ATTRIBUTES):
            return "actively_routed"
    return None


def start_verb(callback_url: str, attributes: dict[str, str] | None = None) -> str:
    """The verb; ``attributes`` (name, engine, language…) follow the callback URL and the track."""
    extra = "".join(f" {name}={quoteattr(value)}" for name, value in (attributes or {}).items()
                    if name not in ("statusCallbackUrl", "track"))
    return (f"<Start><Transcription statusCallbackUrl={quoteattr(callback_url)} "
            f'track="both_tracks"{extra}/></Start>')


def with_transcription(twiml: str, callback_url: str,
                       attributes: dict[str, str] | None = None) -> tuple[str | None, str]:
    """(the TwiML to answer with, why) — the TwiML is None when the application's answer must go
    back unchanged; ``why`` is ``added`` or the reason it was not."""
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError:
        return None, "not_twiml"
    if _local(root.tag) != "Response":
        return None, "not_twiml"
    reason = why_not(root)
    if reason:
        return None, reason
    m = _ROOT.search(twiml)
    if m is None:
        return None, "not_twiml"
    verb = start_verb(callback_url, attributes)
    if m.group(2):  # <Response/>
        out = twiml[:m.start()] + f"<Response{m.group(1) or ''}>{verb}</Response>" + twiml[m.end():]
    else:
        out = twiml[:m.end()] + verb + twiml[m.end():]
    try:
        ET.fromstring(out)
    except ET.ParseError:
        return None, "not_twiml"
    return out, "added"
