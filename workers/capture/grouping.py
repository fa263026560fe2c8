"""Grouping keys: which events of one configuration belong in the same conversation. Pure.

Within a configuration, events with the same grouping key join the same open (ACTIVE or
INACTIVE) conversation (DESIGN §4):

- ``GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE``: the sorted bare address pair + channel,
  so SMS and WhatsApp between the same numbers are two conversations;
- ``GROUP_BY_PARTICIPANT_ADDRESSES``: the sorted bare pair alone (prefixes stripped), so a
  customer moving from SMS to WhatsApp stays in one conversation;
- ``GROUP_BY_PROFILE``: the CUSTOMER's profile id. Resolving a profile is I/O (the Memory
  store's lookup), so the caller resolves it first and passes ``profile_id`` here; the
  resolver is the voice/profiles owner's (``workers.delivery.profiles``).

Keys are readable (operators see them in Redis and in the conversation's v2 metadata) and
sorted, so both directions of a pair give the same key.
"""
from __future__ import annotations

import hashlib

from workers.foundations.constants import GroupingType
from workers.foundations.errors import Permanent

BY_ADDRESSES_AND_CHANNEL = GroupingType.ADDRESSES_AND_CHANNEL
BY_ADDRESSES = GroupingType.ADDRESSES
BY_PROFILE = GroupingType.PROFILE
GROUPING_TYPES = (BY_ADDRESSES_AND_CHANNEL, BY_ADDRESSES, BY_PROFILE)

# v2 metadata values are at most 512 characters; longer keys are sent as a digest.
METADATA_VALUE_MAX = 512


class ProfileRequired(Permanent, LookupError):
    """GROUP_BY_PROFILE needs the customer's resolved profile id before a key can be made."""


def grouping_key(grouping_type: str, channel: str, addr_a: str, addr_b: str,
                 *, profile_id: str | None = None) -> str:
    """The grouping key of an event with bare addresses ``addr_a``/``addr_b`` on ``channel``."""
    low, high = sorted((addr_a, addr_b))
    if grouping_type == BY_ADDRESSES_AND_CHANNEL:
        return f"{channel}|{low}|{high}"
    if grouping_type == BY_ADDRESSES:
        return f"addr|{low}|{high}"
    if grouping_type == BY_PROFILE:
        if not profile_id:
            raise ProfileRequired("GROUP_BY_PROFILE needs the customer's profile id")
        return f"profile|{profile_id}"
    raise ValueError(f"unknown conversationGroupingType {grouping_type!r}")


def metadata_value(key: str) -> str:
    """The key as a v2 metadata value: itself, or ``sha256:<hex>`` when longer than v2 allows."""
    if len(key) <= METADATA_VALUE_MAX:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()
