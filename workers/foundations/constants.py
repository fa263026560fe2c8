"""Names the engine shares, each defined once (channels, statuses, grouping types, job names).

Operators, dashboards and Twilio see these strings, so they are part of the interface: change
one here and every module, test and view follows. Statuses and grouping types are ``StrEnum``
members, so they compare, format, JSON-encode and go to Redis exactly as their string values.
"""
from __future__ import annotations

from enum import StrEnum

# Channels, in Orchestrator's channelSettings order.
CHANNELS: tuple[str, ...] = ("SMS", "VOICE", "WHATSAPP", "RCS")
MESSAGING_CHANNELS: tuple[str, ...] = ("SMS", "WHATSAPP", "RCS")
VOICE = "VOICE"
# The classic bridge's channel (Conversations classic): never in channelSettings, bridged only.
CHAT = "CHAT"


class Status(StrEnum):
    """A conversation's status: v2's three, plus CREATING (threadline's, while a create is in flight)."""

    CREATING = "CREATING"
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    CLOSED = "CLOSED"


CREATING, ACTIVE, INACTIVE, CLOSED = Status.CREATING, Status.ACTIVE, Status.INACTIVE, Status.CLOSED
OPEN: tuple[str, ...] = (ACTIVE, INACTIVE)


class GroupingType(StrEnum):
    """``conversationGroupingType``: which events of one configuration share a conversation."""

    PROFILE = "GROUP_BY_PROFILE"
    ADDRESSES = "GROUP_BY_PARTICIPANT_ADDRESSES"
    ADDRESSES_AND_CHANNEL = "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE"


# RQ job functions, by the dotted name RQ stores in Redis (a moved job keeps an alias: DESIGN §2).
DRAIN_JOB = "workers.jobs.drain_shard"
APPLY_JOB = "workers.jobs.apply_timeouts"
POLL_CALLS_JOB = "workers.jobs.poll_calls"
