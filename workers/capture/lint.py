"""``threadline rules check``: validation plus the lints an operator wants before going live.

Errors (non-zero exit): the file does not validate; with ``--twilio-limits``, Orchestrator's
limits are exceeded (10 configurations, 100 capture rules per channel per configuration —
threadline itself has no such limits, but a file meant to move to the hosted feature must fit).

Warnings (printed, exit 0):
- the same traffic captured by two configurations (Orchestrator captures it into each, and so
  does threadline; usually a mistake — DESIGN §4);
- a rule with both sides ``*`` (captures all of the account's traffic on that channel);
- a CLIENT rule that names no ``client:`` identity (wildcard identities: Orchestrator cannot
  match dynamic identities, threadline would capture every in-app call);
- VOICE capture rules on a configuration that declares ``activeTwiml`` (double STT billing);
- VOICE capture rules when nothing would tell threadline about a call (``call_sources`` given
  and empty: forwarding off, no call-event source, the poll of in-progress calls off) — the
  calls could never be seen, so never transcribed;
- ``closed`` not after ``inactive`` (the conversation would never be INACTIVE);
- a rule repeated within a channel (harmless, but a sign of a copy-paste slip);
- no ``twilioConfigurationId`` and no ``memoryStoreId`` (``configs sync`` cannot create the v2
  Configuration: v2 requires a Memory store);
- a classic bridge beside SMS or WhatsApp capture rules (the same configuration or another):
  a classic conversation's SMS/WhatsApp participants write through the account's numbers, so
  the bridge and the rules would capture the same messages.

Overlaps are found per pair of configurations from per-channel summaries (exact pairs, exact
``from``, exact ``to``, both-wildcard), so the check stays fast with very large rule sets.
Metadata filters other than ``callType`` are not considered: an overlap is reported when the
addresses and the callType overlap (conservative).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workers.capture.configuration import WILDCARD, Configuration, ConfigurationError, load_file, parse_configurations

TWILIO_MAX_CONFIGURATIONS = 10
TWILIO_MAX_RULES_PER_CHANNEL = 100


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "warning"
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}" if self.where else f"{self.level}: {self.message}"


def _rule_path(config_id: str, channel: str, index: int) -> str:
    return f"{config_id}: channelSettings.{channel}.captureRules[{index}]"


@dataclass
class _Summary:
    """One configuration's rules of one channel and callType, by shape (first rule index kept)."""

    any: int | None = None
    froms: dict[str, int] = field(default_factory=dict)
    tos: dict[str, int] = field(default_factory=dict)
    pairs: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, f: str, t: str, i: int) -> None:
        if f == WILDCARD and t == WILDCARD:
            self.any = i if self.any is None else self.any
        elif t == WILDCARD:
            self.froms.setdefault(f, i)
        elif f == WILDCARD:
            self.tos.setdefault(t, i)
        else:
            self.pairs.setdefault((f, t), i)

    def first(self) -> tuple[str, int] | None:
        """Some event this summary captures, described, with its rule index."""
        if self.any is not None:
            return "any address to any address", self.any
        for f, i in self.froms.items():
            return f"from {f}", i
        for t, i in self.tos.items():
            return f"to {t}", i
        for (f, t), i in self.pairs.items():
            return f"from {f} to {t}", i
        return None


def _overlap(a: _Summary, b: _Summary) -> tuple[str, int, int] | None:
    """An event both summaries capture: (description, rule in a, rule in b), or None."""
    if a.any is not None and (hit := b.first()):
        return hit[0], a.any, hit[1]
    if b.any is not None and (hit := a.first()):
        return hit[0], hit[1], b.any
    for f, i in a.froms.items():
        if f in b.froms:
            return f"from {f}", i, b.froms[f]
    for t, i in a.tos.items():
        if t in b.tos:
            return f"to {t}", i, b.tos[t]
    for (f, t), i in a.pairs.items():
        if (f, t) in b.pairs:
            return f"from {f} to {t}", i, b.pairs[(f, t)]
        if f in b.froms:
            return f"from {f} to {t}", i, b.froms[f]
        if t in b.tos:
            return f"from {f} to {t}", i, b.tos[t]
    for (f, t), j in b.pairs.items():
        if f in a.froms:
            return f"from {f} to {t}", a.froms[f], j
        if t in a.tos:
            return f"from {f} to {t}", a.tos[t], j
    if a.froms and b.tos:
        (f, i), (t, j) = next(iter(a.froms.items())), next(iter(b.tos.items()))
        return f"from {f} to {t}", i, j
    if b.froms and a.tos:
        (f, j), (t, i) = next(iter(b.froms.items())), next(iter(a.tos.items()))
        return f"from {f} to {t}", i, j
    return None


def _summaries(config: Configuration) -> dict[tuple[str, str | None], _Summary]:
    out: dict[tuple[str, str | None], _Summary] = {}
    for channel, setting in config.channelSettings.items():
        for i, rule in enumerate(setting.captureRules):
            kind = rule.call_type if channel == "VOICE" else None
            out.setdefault((channel, kind), _Summary()).add(rule.from_bare, rule.to_bare, i)
    return out


def _config_findings(config: Configuration, twilio_limits: bool) -> list[Finding]:
    out: list[Finding] = []
    for channel, setting in config.channelSettings.items():
        rules = setting.captureRules
        if twilio_limits and len(rules) > TWILIO_MAX_RULES_PER_CHANNEL:
            out.append(Finding("error", f"{config.id}: channelSettings.{channel}.captureRules",
                               f"{len(rules)} rules; Orchestrator allows {TWILIO_MAX_RULES_PER_CHANNEL} per channel"))
        seen: dict[tuple, int] = {}
        for i, rule in enumerate(rules):
            where = _rule_path(config.id, channel, i)
            shape = (rule.from_bare, rule.to_bare, rule.call_type, tuple(sorted(rule.metadata.items())))
            if shape in seen:
                out.append(Finding("warning", where, f"the same rule as captureRules[{seen[shape]}]"))
            seen.setdefault(shape, i)
            if rule.from_ == WILDCARD and rule.to == WILDCARD:
                of_type = f" of callType {rule.call_type}" if channel == "VOICE" else ""
                out.append(Finding("warning", where, f"both sides are '*': captures every {channel} "
                                   "event of the account" + of_type))
            if channel == "VOICE" and rule.call_type == "CLIENT" and not any(
                    b.startswith("client:") for b in (rule.from_bare, rule.to_bare)):
                out.append(Finding("warning", where, "CLIENT rule with wildcard identities: Orchestrator "
                                   "cannot match dynamic client identities (threadline captures every "
                                   "in-app call); name the client: identities or use active TwiML"))
        timeouts = setting.statusTimeouts
        if timeouts and timeouts.inactive and timeouts.closed and timeouts.closed <= timeouts.inactive:
            out.append(Finding("warning", f"{config.id}: channelSettings.{channel}.statusTimeouts",
                               "closed is not after inactive: conversations would close without "
                               "ever being INACTIVE"))
    voice = config.channelSettings.VOICE
    if config.activeTwiml and voice is not None and voice.captureRules:
        out.append(Finding("warning", f"{config.id}: channelSettings.VOICE.captureRules",
                           "VOICE capture rules on a configuration that declares active TwiML: calls "
                           "routed with conversationConfiguration/conversationId would be transcribed "
                           "twice (double STT billing); threadline skips passive capture of actively "
                           "routed calls, Orchestrator does not"))
    if config.twilioConfigurationId is None and config.memoryStoreId is None:
        out.append(Finding("warning", f"{config.id}", "no twilioConfigurationId and no memoryStoreId: "
                           "`threadline configs sync` cannot create its v2 Configuration (v2 requires "
                           "a Memory store); set one of them"))
    return out


def lint(configs: list[Configuration], *, twilio_limits: bool = False,
         call_sources: list[str] | None = None) -> list[Finding]:
    """Findings for a valid list of configurations (errors first is the caller's choice).

    ``call_sources`` names what tells threadline that a call started (``forwarding``,
    ``event_streams``, ``poll``); None when unknown (no warning)."""
    out: list[Finding] = []
    if call_sources is not None and not call_sources:
        voice = [c.id for c in configs if c.channelSettings.VOICE and c.channelSettings.VOICE.captureRules]
        if voice:
            out.append(Finding("warning", f"{voice[0]}: channelSettings.VOICE.captureRules",
                               f"VOICE capture rules ({', '.join(voice)}) but nothing tells threadline a "
                               "call started: forwarding is off, no call-event source is connected and "
                               "the poll of in-progress calls is off (THREADLINE_CALL_POLL_SECONDS=0); "
                               "these calls would never be seen, so never transcribed"))
    if twilio_limits and len(configs) > TWILIO_MAX_CONFIGURATIONS:
        out.append(Finding("error", "", f"{len(configs)} configurations; Orchestrator allows "
                           f"{TWILIO_MAX_CONFIGURATIONS} per account"))
    for config in configs:
        out.extend(_config_findings(config, twilio_limits))
    out.extend(_bridge_findings(configs))
    summaries = [(c.id, _summaries(c)) for c in configs]
    for n, (a_id, a_sum) in enumerate(summaries):
        for b_id, b_sum in summaries[n + 1:]:
            for key, a in a_sum.items():
                b = b_sum.get(key)
                if b is None or (hit := _overlap(a, b)) is None:
                    continue
                channel, call_type = key
                label = f"{channel} ({call_type})" if call_type else channel
                event, i, j = hit
                out.append(Finding("warning", f"{a_id} and {b_id}", f"both capture {label} traffic "
                                   f"{event}: it is captured twice (rules {_rule_path(a_id, channel, i)} "
                                   f"and {_rule_path(b_id, channel, j)})"))
    return out


# A classic conversation's SMS and WhatsApp participants write through the account's numbers:
# capture rules on these channels see the same messages the bridge does.
_BRIDGED_CHANNELS = ("SMS", "WHATSAPP")


def _bridge_findings(configs: list[Configuration]) -> list[Finding]:
    """A classic bridge beside SMS/WhatsApp capture rules (Orchestrator: "don't configure a
    capture rule and a classic bridge for the same traffic"). threadline cannot tell which of
    the account's numbers a classic service proxies, so every such pair is reported."""
    out = []
    for bridged in (c for c in configs if c.conversationsV1Bridge is not None):
        service = bridged.conversationsV1Bridge.serviceId  # type: ignore[union-attr]
        for other in configs:
            for channel in _BRIDGED_CHANNELS:
                setting = getattr(other.channelSettings, channel)
                if setting is None or not setting.captureRules:
                    continue
                where = bridged.id if other.id == bridged.id else f"{bridged.id} and {other.id}"
                out.append(Finding("warning", where, (
                    f"classic service {service} is bridged while {_rule_path(other.id, channel, 0)}"
                    f" captures {channel}: a classic conversation's {channel} participants write "
                    f"through the account's numbers, so their messages would be captured twice; "
                    f"pick one integration per channel")))
    return out


def check_file(path: Any, *, twilio_limits: bool = False,
               call_sources: list[str] | None = None) -> list[Finding]:
    """Validate and lint a configurations file: validation problems are errors."""
    try:
        configs = load_file(path)
    except ConfigurationError as exc:
        return [Finding("error", "", p) for p in exc.problems]
    return lint(configs, twilio_limits=twilio_limits, call_sources=call_sources)


def warnings_for(config_id: str, configs: list[Configuration]) -> list[str]:
    """The warnings that concern one configuration among ``configs`` (the admin API shows them
    with a write, so an overlap is seen when it is made, not when traffic doubles)."""
    return [str(f).removeprefix("warning: ") for f in lint(configs) if f.level == "warning" and (
        f.where == config_id or f.where.startswith(f"{config_id}:") or f.where.startswith(f"{config_id} and ")
        or f.where.endswith(f" and {config_id}"))]


def check_data(data: Any, *, twilio_limits: bool = False) -> list[Finding]:
    try:
        configs = parse_configurations(data)
    except ConfigurationError as exc:
        return [Finding("error", "", p) for p in exc.problems]
    return lint(configs, twilio_limits=twilio_limits)
