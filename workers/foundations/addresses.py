"""Address normalization and the shard of an address pair. Pure functions, no I/O.

Twilio writes one customer several ways: ``+14155550123``, ``whatsapp:+14155550123``,
``rcs:+14155550123``. Matching and grouping compare the *bare* address (the channel prefix is
stripped and phone numbers are E.164), so a rule written either way matches both spellings.
"""
from __future__ import annotations

import functools
import hashlib
import re

# Prefixes that name a messaging channel; the bare address follows them.
CHANNEL_PREFIXES = {"whatsapp": "WHATSAPP", "rcs": "RCS"}
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SHORT_CODE = re.compile(r"^\d{3,8}$")
_PHONE_PUNCTUATION = re.compile(r"[\s().\-]")


def split_prefix(raw: str) -> tuple[str | None, str]:
    """``"whatsapp:+1415…"`` → ``("WHATSAPP", "+1415…")``; an address without one → ``(None, raw)``."""
    head, sep, rest = raw.strip().partition(":")
    if sep and head.lower() in CHANNEL_PREFIXES:
        return CHANNEL_PREFIXES[head.lower()], rest.strip()
    return None, raw.strip()


def normalize(raw: str | None) -> str | None:
    """The bare, canonical form of an address, or None when nothing usable is left.

    - phone numbers → E.164 (``+`` and 7–15 digits; punctuation and a leading ``00`` dropped);
      bare digits of 3–8 are short codes and stay as they are; longer bare digits are refused
      (without a ``+`` the country is a guess, and a wrong guess would match the wrong rule);
    - ``client:alice`` keeps its identity as written (identities are case-sensitive);
    - ``sip:user@host;params`` → ``sip:user@host`` with the host lower-cased;
    - an RCS sender id (``rcs:brand_agent``) → ``rcs:brand_agent``.
    """
    if raw is None:
        return None
    prefix, rest = split_prefix(raw)
    if not rest:
        return None
    lower = rest.lower()
    if lower.startswith("client:"):
        identity = rest[len("client:"):].strip()
        return f"client:{identity}" if identity else None
    if lower.startswith(("sip:", "sips:")):
        scheme, _, uri = rest.partition(":")
        uri = uri.split(";", 1)[0].split("?", 1)[0].strip()
        user, at, host = uri.rpartition("@")
        if not host:
            return None
        return f"{scheme.lower()}:{user}{at}{host.lower()}"
    phone = _PHONE_PUNCTUATION.sub("", rest)
    if phone.startswith("00"):
        phone = "+" + phone[2:]
    if _E164.match(phone):
        return phone
    if _SHORT_CODE.match(phone):
        return phone
    if prefix == "RCS" and re.match(r"^[A-Za-z0-9_.\-]+$", rest):
        return f"rcs:{rest}"
    return None


def stable_hash(text: str) -> int:
    """A hash that is the same in every process and every Python (unlike ``hash()``)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@functools.lru_cache(maxsize=65536)
def shard_of_pair(a: str | None, b: str | None, shards: int) -> int:
    """The shard of an address pair: both directions of one pair land on the same shard.

    Cached: it runs for every webhook, and a customer's messages repeat their pair (the
    normalizing and hashing cost more than the lookup; 65,536 pairs are a few MB)."""
    left = normalize(a) or (a or "").strip()
    right = normalize(b) or (b or "").strip()
    return stable_hash("\n".join(sorted((left, right)))) % shards


def shard_of_key(key: str, shards: int) -> int:
    return stable_hash(key) % shards
