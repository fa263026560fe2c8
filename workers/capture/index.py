"""Capture-rule matching: an index built once per configuration generation, then O(1) per event.

Why an index: Orchestrator evaluates every event against every rule of every configuration
(and caps them at 10 × 100 per channel to keep that affordable). threadline has no such cap,
so a scan would make each event's cost grow with the rule count. Per channel, one dict maps a
bare address to what the rules say about it — rules naming it as ``from`` with ``to`` = ``*``,
as ``to`` with ``from`` = ``*``, the exact (from, to) pairs it starts, and the configurations
it is an account address of — plus one list of rules with both sides ``*``. An event costs two
lookups (its ``from`` and its ``to``) plus the rules that actually name its addresses.
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
from typing import NamedTuple, Protocol

from workers.capture.configuration import CHANNELS, WILDCARD, CaptureRule, Configuration, canonical_call_type

Side = str  # "from" | "to"


class Versioned(Protocol):
    """What the index needs of a stored configuration (``capture.store.VersionedConfig`` fits)."""

    @property
    def config(self) -> Configuration: ...

    @property
    def version(self) -> int: ...


class Match(NamedTuple):
    """One configuration capturing an event (a NamedTuple: cheap to make, once per match)."""

    config_id: str
    version: int
    rule_index: int  # first matching rule, in the channel's captureRules order
    rule_indexes: tuple[int, ...]  # every rule of this configuration that matched
    customer_side: Side
    customer: str  # bare address
    account: str  # bare address
    account_type: str  # AGENT | HUMAN_AGENT | AI_AGENT
    reason: str  # why the customer is that side


@dataclass(frozen=True, slots=True)
class _Entry:
    order: int  # the configuration's position, so results keep a stable order
    config_id: str
    rule_index: int
    call_type: str | None  # canonical; VOICE only
    extra: tuple[tuple[str, str], ...]  # other metadata filters
    version: int  # carried here so a match needs no per-configuration lookup
    types: dict[str, str] | None  # the configuration's participantTypes (None when empty)


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


def _entry(order: int, vc: Versioned, index: int, channel: str, rule: CaptureRule,
           types: dict[str, str] | None, ints: dict[int, int]) -> _Entry:
    extra = tuple(sorted((k, v) for k, v in rule.metadata.items() if k != "callType"))
    call_type = rule.call_type if channel == "VOICE" else None
    # One int object per value for the whole index (CPython shares only -5..256): a match
    # touches the rule index and version it copies, and 100,000 rules would otherwise mean
    # 100,000 scattered int objects, each a cache miss.
    return _Entry(ints.setdefault(order, order), vc.config.id, ints.setdefault(index, index),
                  call_type, extra, ints.setdefault(vc.version, vc.version), types)


class _Address:
    """What one channel's index knows about one bare address while it is being built."""

    __slots__ = ("from_any", "to_any", "pairs", "account_of")

    def __init__(self) -> None:
        self.from_any: list[_Entry] = []  # rules: from = this address, to = *
        self.to_any: list[_Entry] = []  # rules: from = *, to = this address
        self.pairs: dict[str, list[_Entry]] = {}  # rules from this address: to → entries
        self.account_of: frozenset[str] = frozenset()  # configurations it is an account address of


# A frozen record, one flat tuple per address:
#     (account_of, pairs or None, n, <from_any entries: n items>, <to_any entries>)
# with every entry flattened inline as _ENTRY_FIELDS items. Why so plain: with 100,000 rules the
# index does not fit in the CPU cache and each object a lookup touches is a memory fetch; one
# tuple per address (entries inline, identical account_of sets shared) keeps a match to the dict
# lookups and one fetch per address, whatever the number of rules.
_ENTRY_FIELDS = 7  # order, config id, rule index, callType, extra, version, types
_Record = tuple
_NOWHERE: _Record = (frozenset(), None, 0)


def _flat(entries: list[_Entry]) -> tuple:
    out: list = []
    for e in entries:
        out += (e.order, e.config_id, e.rule_index, e.call_type, e.extra, e.version, e.types)
    return tuple(out)


class _ChannelIndex:
    __slots__ = ("building", "addresses", "any")

    def __init__(self) -> None:
        self.building: dict[str, _Address] = {}
        self.addresses: dict[str, _Record] = {}
        self.any: list[_Entry] | tuple = []  # rules with both sides *

    def _at(self, bare: str) -> _Address:
        found = self.building.get(bare)
        if found is None:
            found = self.building[bare] = _Address()
        return found

    def add(self, rule: CaptureRule, entry: _Entry) -> None:
        f, t = rule.from_bare, rule.to_bare
        if f != WILDCARD and t != WILDCARD:
            self._at(f).pairs.setdefault(t, []).append(entry)
        elif f != WILDCARD:
            self._at(f).from_any.append(entry)
        elif t != WILDCARD:
            self._at(t).to_any.append(entry)
        else:
            assert isinstance(self.any, list)
            self.any.append(entry)

    def mark_account(self, bare: str, config_id: str) -> None:
        at = self._at(bare)
        at.account_of = at.account_of | {config_id}

    def freeze(self) -> None:
        """Build the frozen records (see ``_Record``) and drop the build state."""
        shared: dict[frozenset, frozenset] = {}
        for bare, at in self.building.items():
            pairs = {t: _flat(es) for t, es in at.pairs.items()} if at.pairs else None
            account_of = shared.setdefault(at.account_of, at.account_of)
            from_any = _flat(at.from_any)
            self.addresses[bare] = (account_of, pairs, len(from_any), *from_any, *_flat(at.to_any))
        self.any = _flat(self.any) if isinstance(self.any, list) else self.any
        self.building = {}


class RuleIndex:
    """The capture rules of a set of configuration versions, indexed per channel.

    Per channel, one dict maps a bare address to its rules as sender (``to`` = ``*``), as
    recipient (``from`` = ``*``), its exact pairs, and the configurations it is an account
    address of — so an event costs two lookups (its ``from`` and its ``to``), whatever the
    number of rules, and no further lookup decides the customer's side.
    """

    def __init__(self) -> None:
        self.channels: dict[str, _ChannelIndex] = {ch: _ChannelIndex() for ch in CHANNELS}
        self.versions: dict[str, int] = {}
        self.rule_count = 0

    @classmethod
    def build(cls, configs: Iterable[Versioned]) -> RuleIndex:
        index = cls()
        ints: dict[int, int] = {}
        for order, vc in enumerate(configs):
            config = vc.config
            accounts = account_addresses(config)
            types = config.account_addresses() or None
            index.versions[config.id] = vc.version
            for channel, setting in config.channelSettings.items():
                chan = index.channels[channel]
                for i, rule in enumerate(setting.captureRules):
                    chan.add(rule, _entry(order, vc, i, channel, rule, types, ints))
                    index.rule_count += 1
                for bare in accounts:
                    chan.mark_account(bare, config.id)
        for chan in index.channels.values():
            chan.freeze()
        return index

    def match(self, channel: str, from_bare: str, to_bare: str, metadata: dict | None = None,
              *, direction: str | None = None) -> list[Match]:
        """Every configuration whose rules capture this event (one Match per configuration).

        An unknown channel matches nothing (the caller counts it as ignored with its reason)."""
        chan = self.channels.get(channel)
        if chan is None:
            return []
        src = chan.addresses.get(from_bare, _NOWHERE)
        dst = chan.addresses.get(to_bare, _NOWHERE)
        flat = src[3:3 + src[2]] + dst[3 + dst[2]:]  # from_bare's sender rules, to_bare's recipient rules
        if src[1] is not None:
            flat += src[1].get(to_bare, ())
        if chan.any:
            flat += chan.any  # type: ignore[operator]
        if not flat:
            return []
        metadata = metadata or {}
        call_type = event_call_type(from_bare, to_bare, metadata) if channel == "VOICE" else None
        hits: dict[str, list[tuple]] = {}
        it = iter(flat)
        for entry in zip(it, it, it, it, it, it, it):  # _ENTRY_FIELDS at a time
            if entry[3] is not None and entry[3] != call_type:
                continue
            if entry[4] and any(str(metadata.get(k)) != v for k, v in entry[4]):
                continue
            found = hits.get(entry[1])
            if found is None:
                hits[entry[1]] = [entry]
            else:
                found.append(entry)
        if not hits:
            return []
        groups = list(hits.values())
        if len(groups) > 1:
            groups.sort(key=lambda entries: entries[0][0])
        out = []
        src_accounts, dst_accounts = src[0], dst[0]
        for entries in groups:
            first = entries[0]
            config_id = first[1]
            indexes = (first[2],) if len(entries) == 1 else tuple(sorted({e[2] for e in entries}))
            side, reason = _side(config_id in src_accounts, config_id in dst_accounts,
                                 from_bare, to_bare, direction)
            customer, account = (from_bare, to_bare) if side == "from" else (to_bare, from_bare)
            out.append(Match(
                config_id, first[5], indexes[0], indexes, side, customer, account,
                participant_type(first[6], account), reason,
            ))
        return out


def customer_side(account: frozenset[str] | set[str], from_bare: str, to_bare: str,
                  direction: str | None = None) -> tuple[Side, str]:
    """Which side of the event is the customer, and why (module docstring), given the
    configuration's account addresses (:func:`account_addresses`)."""
    return _side(from_bare in account, to_bare in account, from_bare, to_bare, direction)


def _side(f_acc: bool, t_acc: bool, from_bare: str, to_bare: str,
          direction: str | None) -> tuple[Side, str]:
    """customer_side with the membership already known (the index keeps it per address)."""
    if f_acc != t_acc:
        return ("to", "from is an account address") if f_acc else ("from", "to is an account address")
    f_app = from_bare.startswith(("client:", "sip:", "sips:"))
    t_app = to_bare.startswith(("client:", "sip:", "sips:"))
    if f_app != t_app:
        return ("to", "from is a client/SIP identity") if f_app else ("from", "to is a client/SIP identity")
    if direction == "outbound":
        return "to", "outbound: the recipient is the customer"
    return "from", "inbound: the sender is the customer"


def participant_type(types: dict[str, str] | None, account: str) -> str:
    """The account side's participant type: mapped, else HUMAN_AGENT for a client:, else AGENT."""
    if types and account in types:
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
