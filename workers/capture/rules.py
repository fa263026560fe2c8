"""Capture rules ``{from, to, metadata}``: one rule's validation, per channel. Pure.

A rule names two addresses (``*`` = any) and optional metadata filters. Addresses go through
:func:`workers.foundations.addresses.normalize` (E.164 for phone numbers; ``whatsapp:``/``rcs:`` prefixes
accepted with or without), and each channel admits its own kinds of address: phones everywhere,
RCS sender ids on RCS, ``client:`` identities and ``sip:`` URIs on VOICE only. VOICE rules carry
``metadata.callType``: PSTN when absent, CLIENT, PUBLIC_SIP (``SIP``, v2's own examples'
spelling, is accepted); a rule naming a ``client:`` or ``sip:`` address must say so.
"""
from __future__ import annotations

from functools import cached_property

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workers.foundations.addresses import normalize, split_prefix

WILDCARD = "*"

# Voice callType: PSTN is what a rule without one matches; `SIP` (v2's own examples) = PUBLIC_SIP.
CALL_TYPES = {"PSTN": "PSTN", "CLIENT": "CLIENT", "PUBLIC_SIP": "PUBLIC_SIP", "SIP": "PUBLIC_SIP"}
DEFAULT_CALL_TYPE = "PSTN"


def canonical_call_type(value: str | None) -> str:
    """A rule's or an event's callType in canonical spelling (absent → PSTN)."""
    if value is None or value == "":
        return DEFAULT_CALL_TYPE
    return CALL_TYPES.get(value.upper(), value.upper())


class StrictModel(BaseModel):
    """Base of every configuration model."""

    # Unknown fields are refused, so a typo ("captureRule") is an error and not a silent no-op.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def _address_kind(bare: str) -> str:
    if bare.startswith("client:"):
        return "client"
    if bare.startswith(("sip:", "sips:")):
        return "sip"
    if bare.startswith("rcs:"):
        return "rcs-sender"
    return "phone"  # E.164 or short code


# Which address kinds a rule may name on each channel.
_ALLOWED_KINDS = {
    "SMS": {"phone"},
    "WHATSAPP": {"phone"},
    "RCS": {"phone", "rcs-sender"},
    "VOICE": {"phone", "client", "sip"},
}


class CaptureRule(StrictModel):
    """``{from, to, metadata}``; ``*`` matches any address on that side (DESIGN §4)."""

    from_: str = Field(alias="from", min_length=1)
    to: str = Field(min_length=1)
    metadata: dict[str, str] = Field(default_factory=dict)

    @field_validator("from_", "to")
    @classmethod
    def _address(cls, v: str) -> str:
        v = v.strip()
        bare = normalize(v)
        if bare is not None and bare.isdigit() and not split_prefix(v)[1].isdigit():
            # "555-0100" normalizes to the short code 5550100: a local number written without
            # its country would then match nothing (or the wrong sender). Short codes are digits.
            raise ValueError(f"{v!r} looks like a local number: write it in E.164 (+…), "
                             "or a short code as digits only")
        if v != WILDCARD and bare is None:
            raise ValueError(
                f"{v!r} is not an address: use '*', an E.164 number (+14155550123), a short code, "
                "whatsapp:/rcs: + number, rcs:<sender id>, client:<identity> or sip:user@host"
            )
        return v

    @cached_property
    def from_bare(self) -> str:
        return WILDCARD if self.from_ == WILDCARD else normalize(self.from_)  # type: ignore[return-value]

    @cached_property
    def to_bare(self) -> str:
        return WILDCARD if self.to == WILDCARD else normalize(self.to)  # type: ignore[return-value]

    @cached_property
    def call_type(self) -> str:
        return canonical_call_type(self.metadata.get("callType"))

    def check_channel(self, channel: str) -> None:
        """Channel-specific checks, raised as ValueError (the caller puts the path in front)."""
        for side, raw in (("from", self.from_), ("to", self.to)):
            if raw == WILDCARD:
                continue
            prefix, _ = split_prefix(raw)
            if prefix is not None and prefix != channel:
                raise ValueError(f"{side}: a {prefix.lower()}: address cannot appear in the {channel} rules")
            kind = _address_kind(normalize(raw) or "")
            if kind not in _ALLOWED_KINDS[channel]:
                raise ValueError(f"{side}: a {kind} address cannot appear in the {channel} rules")
        if channel != "VOICE":
            if "callType" in self.metadata:
                raise ValueError("metadata.callType: only VOICE rules have a callType")
            return
        raw_type = self.metadata.get("callType")
        if raw_type is not None and raw_type.upper() not in CALL_TYPES:
            raise ValueError(
                f"metadata.callType: {raw_type!r} is not one of PSTN, CLIENT, PUBLIC_SIP (or SIP)"
            )
        kinds = {_address_kind(b) for b in (self.from_bare, self.to_bare) if b != WILDCARD}
        if "client" in kinds and self.call_type != "CLIENT":
            raise ValueError("metadata.callType: a rule naming a client: identity needs callType CLIENT")
        if "sip" in kinds and self.call_type != "PUBLIC_SIP":
            raise ValueError("metadata.callType: a rule naming a sip: URI needs callType PUBLIC_SIP")
