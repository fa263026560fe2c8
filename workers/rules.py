"""Capture-rule matching: an index built once per configuration generation, then O(1) per event.

Why an index: Orchestrator evaluates every event against every rule of every configuration
(and caps them at 10 × 100 per channel to keep that affordable). threadline has no such cap,
so a scan would make each event's cost grow with the rule count. Per channel, the index holds

- ``pairs``: (from, to) → rules naming both addresses,
- ``by_from``: from → rules whose ``to`` is ``*``; ``by_to``: to → rules whose ``from`` is ``*``,
- ``any``: rules with both sides ``*``,

so an event costs four dict lookups plus the rules that actually name its addresses.
Metadata filters (voice ``callType``; any other key must equal the event's) are checked only
on those candidates.

Which side is the customer (the participant that gets CUSTOMER; the other is the account's
own address, AGENT by default). Capture rules' ``from``/``to`` are literal directions, so a
rule alone does not say which side is Twilio's. The decision, in order:

1. the configuration's *account addresses*: the keys of ``participantTypes`` plus every
   address a rule names opposite a ``*`` (Orchestrator's bidirectional pattern, one rule with
   the Twilio number as sender and one as recipient). When exactly one side of the event is an
   account address, the other side is the customer;
2. a ``client:`` or ``sip:`` side is the account's (an agent's app or PBX; DESIGN §4), so the
   other side is the customer;
3. otherwise the event's direction: inbound → ``from`` is the customer, outbound → ``to``
   (absent → inbound, the common case).

Each :class:`Match` says which rule of which configuration version matched and why the
customer is the side it is, so ``rules explain`` can show the same reasoning.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from workers.configs import CHANNELS, WILDCARD, CaptureRule, Configuration, canonical_call_type

Side = str  # "from" | "to"


class Versioned(Protocol):
    """What the index needs of a stored configuration (configstore.VersionedConfig fits)."""

    config: Configuration
    version: int


@dataclass(frozen=True)
class Match:
    config_id: str
    version: int
    rule_index: int  # first matching rule, in the channel's captureRules order
    rule_indexes: tuple[int, ...]  # every rule of this configuration that matched
    customer_side: Side
    customer: str  # bare address
    account: str  # bare address
    account_type: str  # AGENT | HUMAN_AGENT | AI_AGENT
    reason: str  # why the customer is that side


@dataclass(frozen=True)
class _Entry:
    order: int  # the configuration's position, so results keep a stable order
    config_id: str
    rule_index: int
    call_type: str | None  # canonical; VOICE only
    extra: tuple[tuple[str, str], ...]  # other metadata filters


@dataclass(frozen=True)
class _ConfigInfo:
    version: int
    account: frozenset[str]
    types: dict[str, str]


def event_call_type(from_bare: str, to_bare: str, metadata: dict | None) -> str:
    """A voice event's callType: the one it carries, else inferred from its parties."""
    given = (metadata or {}).get("callType")
    if given:
        return canonical_call_type(str(given))
    sides = (from_bare or "", to_bare or "")
    if any(s.startswith("client:") for s in sides):
        return "CLIENT"
    if any(s.startswith(("sip:", "sips:")) for s in sides):
        return "PUBLIC_SIP"
    return canonical_call_type(None)


def account_addresses(config: Configuration) -> frozenset[str]:
    """participantTypes keys plus every address a rule names opposite a ``*``."""
    out = set(config.account_addresses())
    for _, setting in config.channelSettings.items():
        for rule in setting.captureRules:
            if rule.from_ == WILDCARD and rule.to != WILDCARD:
                out.add(rule.to_bare)
            elif rule.to == WILDCARD and rule.from_ != WILDCARD:
                out.add(rule.from_bare)
    return frozenset(out)


def _entry(order: int, config_id: str, index: int, channel: str, rule: CaptureRule) -> _Entry:
    extra = tuple(sorted((k, v) for k, v in rule.metadata.items() if k != "callType"))
    return _Entry(order, config_id, index, rule.call_type if channel == "VOICE" else None, extra)


class _ChannelIndex:
    __slots__ = ("pairs", "by_from", "by_to", "any")

    def __init__(self) -> None:
        self.pairs: dict[tuple[str, str], list[_Entry]] = {}
        self.by_from: dict[str, list[_Entry]] = {}
        self.by_to: dict[str, list[_Entry]] = {}
        self.any: list[_Entry] = []

    def add(self, rule: CaptureRule, entry: _Entry) -> None:
        f, t = rule.from_bare, rule.to_bare
        if f != WILDCARD and t != WILDCARD:
            self.pairs.setdefault((f, t), []).append(entry)
        elif f != WILDCARD:
            self.by_from.setdefault(f, []).append(entry)
        elif t != WILDCARD:
            self.by_to.setdefault(t, []).append(entry)
        else:
            self.any.append(entry)

    def candidates(self, f: str, t: str) -> list[_Entry]:
        out = list(self.pairs.get((f, t), ()))
        out += self.by_from.get(f, ())
        out += self.by_to.get(t, ())
        out += self.any
        return out


class RuleIndex:
    """The capture rules of a set of configuration versions, indexed per channel."""

    def __init__(self) -> None:
        self.channels: dict[str, _ChannelIndex] = {ch: _ChannelIndex() for ch in CHANNELS}
        self.configs: dict[str, _ConfigInfo] = {}
        self.rule_count = 0

    @classmethod
    def build(cls, configs: Iterable[Versioned]) -> "RuleIndex":
        index = cls()
        for order, vc in enumerate(configs):
            config = vc.config
            index.configs[config.id] = _ConfigInfo(
                vc.version, account_addresses(config), config.account_addresses()
            )
            for channel, setting in config.channelSettings.items():
                for i, rule in enumerate(setting.captureRules):
                    index.channels[channel].add(rule, _entry(order, config.id, i, channel, rule))
                    index.rule_count += 1
        return index

    def match(self, channel: str, from_bare: str, to_bare: str, metadata: dict | None = None,
              *, direction: str | None = None) -> list[Match]:
        """Every configuration whose rules capture this event (one Match per configuration).

        An unknown channel matches nothing (the caller counts it as ignored with its reason)."""
        chan = self.channels.get(channel)
        if chan is None:
            return []
        metadata = metadata or {}
        call_type = event_call_type(from_bare, to_bare, metadata) if channel == "VOICE" else None
        hits: dict[str, list[_Entry]] = {}
        for entry in chan.candidates(from_bare, to_bare):
            if entry.call_type is not None and entry.call_type != call_type:
                continue
            if any(str(metadata.get(k)) != v for k, v in entry.extra):
                continue
            hits.setdefault(entry.config_id, []).append(entry)
        out = []
        for config_id, entries in sorted(hits.items(), key=lambda kv: kv[1][0].order):
            info = self.configs[config_id]
            indexes = tuple(sorted({e.rule_index for e in entries}))
            side, reason = customer_side(info.account, from_bare, to_bare, direction)
            customer, account = (from_bare, to_bare) if side == "from" else (to_bare, from_bare)
            out.append(Match(
                config_id, info.version, indexes[0], indexes, side, customer, account,
                participant_type(info.types, account), reason,
            ))
        return out


def customer_side(account: frozenset[str], from_bare: str, to_bare: str,
                  direction: str | None = None) -> tuple[Side, str]:
    """Which side of the event is the customer, and why (module docstring)."""
    f_acc, t_acc = from_bare in account, to_bare in account
    if f_acc != t_acc:
        return ("to", "from is an account address") if f_acc else ("from", "to is an account address")
    f_app = from_bare.startswith(("client:", "sip:", "sips:"))
    t_app = to_bare.startswith(("client:", "sip:", "sips:"))
    if f_app != t_app:
        return ("to", "from is a client/SIP identity") if f_app else ("from", "to is a client/SIP identity")
    if direction == "outbound":
        return "to", "outbound: the recipient is the customer"
    return "from", "inbound: the sender is the customer"


def participant_type(types: dict[str, str], account: str) -> str:
    """The account side's participant type: mapped, else HUMAN_AGENT for a client:, else AGENT."""
    if account in types:
        return types[account]
    if account.startswith("client:"):
        return "HUMAN_AGENT"
    return "AGENT"


def linear_match(configs: Iterable[Versioned], channel: str, from_bare: str, to_bare: str,
                 metadata: dict | None = None) -> list[tuple[str, int]]:
    """The reference scan (every rule of every configuration): what the index must agree with,
    and the baseline of ``bench/rules.py``. Returns (config id, first rule index) pairs."""
    metadata = metadata or {}
    call_type = event_call_type(from_bare, to_bare, metadata) if channel == "VOICE" else None
    out = []
    for vc in configs:
        setting = getattr(vc.config.channelSettings, channel, None)
        if setting is None:
            continue
        for i, rule in enumerate(setting.captureRules):
            if rule.from_ != WILDCARD and rule.from_bare != from_bare:
                continue
            if rule.to != WILDCARD and rule.to_bare != to_bare:
                continue
            if call_type is not None and rule.call_type != call_type:
                continue
            if any(str(metadata.get(k)) != v for k, v in rule.metadata.items() if k != "callType"):
                continue
            out.append((vc.config.id, i))
            break
    return out
