"""What a bridged classic conversation is to threadline (the classic bridge, issue 17).

A classic conversation's v2 conversation has the threadline grouping key ``classic|<ConversationSid>``
(:func:`grouping_key`), so the per-key lock, the index and the admin API work as for any
conversation; the configuration bridging a service is the one whose
``conversationsV1Bridge.serviceId`` names it (:func:`bridging`, one at most: validated). Pure.
Shared by :mod:`.classic` (events), :mod:`.participants` and :mod:`.messages`.
"""
from __future__ import annotations

from workers.capture.index import Match
from workers.capture.store import VersionedConfig
from workers.conversations import store as cv
from workers.delivery.deliver import BRIDGED_PREFIX
from workers.parse import CaptureEvent
from workers.parse import classic as c

CHAT = c.CHAT
TTL_S = 30 * 86400  # what the bridge remembers of a message or a finished conversation


def grouping_key(conversation_sid: str) -> str:
    return f"{BRIDGED_PREFIX}{conversation_sid}"


def conversation_sid(conv: cv.Conversation) -> str | None:
    """The classic ConversationSid of a bridged conversation's record (None: not bridged)."""
    sid = conv.grouping_key.removeprefix(BRIDGED_PREFIX)
    return sid if sid != conv.grouping_key and sid else None


def bridging(configs: dict[str, VersionedConfig], service: str) -> VersionedConfig | None:
    """The live configuration that bridges classic service ``service`` (one at most: validated)."""
    for vc in configs.values():
        bridge = vc.config.conversationsV1Bridge
        if bridge is not None and bridge.serviceId == service:
            return vc
    return None


def match_for(vc: VersionedConfig, event: CaptureEvent) -> Match:
    """The drain's Match for a bridged event (no capture rule matched: the bridge did)."""
    return Match(vc.id, vc.version, -1, (), "from", event.from_bare, event.to_bare,
                 "AGENT", "classic bridge")


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else (str(value) if value else "")
