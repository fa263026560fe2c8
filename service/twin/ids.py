"""Identifiers in the shapes Twilio uses, so clients that check prefixes or patterns accept them.

v2 ids are Twilio Type IDs: ``conv_conversation_`` + 26 lowercase Crockford base32 characters
(a ULID), the first of which is 0-7 (the Memory spec's pattern ``^mem_profile_[0-7][0-9a-z]{25}$``
says so explicitly). Operations are ``proc_job_…``; Messages API SIDs are ``SM`` + 32 hex.
"""
from __future__ import annotations

import secrets
import time

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def ulid() -> str:
    """26 characters: 48 bits of milliseconds then 80 random bits, sortable by creation time."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """``prefix`` + a ULID, e.g. ``new_id("conv_conversation_")``."""
    return prefix + ulid()


def message_sid() -> str:
    return "SM" + secrets.token_hex(16)


def sid(prefix: str) -> str:
    """A 34-character Twilio SID: ``PN``, ``CA``, ``GT``, ``DG``, ``DF``, ``EZ``, ``VW`` + 32 hex."""
    return prefix + secrets.token_hex(16)
