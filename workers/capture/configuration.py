"""Configurations: Orchestrator's Configuration JSON, validated, plus threadline's own fields.

The body is the one Orchestrator takes at ``/v2/ControlPlane/Configurations`` (DESIGN §3), so an
operator can move a configuration between the hosted feature and threadline unchanged. threadline
adds:

- ``id``: a slug naming the configuration in threadline (URLs, Redis keys, stats labels);
- ``twilioConfigurationId``: the v2 Configuration conversations are created under (else
  ``threadline configs sync`` creates one and records its id);
- ``participantTypes``: the account's own addresses → AGENT | HUMAN_AGENT | AI_AGENT (AGENT
  when unmapped). Its keys also tell the matcher which side of an event is the account
  (see :mod:`workers.capture.index`); a ``chat:<identity>`` key types a bridged chat identity
  (the classic bridge: identities are CUSTOMER, the service's ``system`` author AGENT, unless
  mapped here);
- ``channelSettings.VOICE.transcription``: the engine, speech model, language and partial
  results passive voice starts a captured call's transcription with (:class:`VoiceTranscription`);
- ``activeTwiml``: the operator declares that calls on this configuration are also routed with
  active TwiML (``conversationConfiguration``/``conversationId``), so ``rules check`` can warn
  about double STT billing next to VOICE capture rules.

``memoryStoreId`` is optional here although v2 requires it on create and PUT: threadline can
group by profile with its local profile directory, and a configuration bound to an existing
v2 Configuration (``twilioConfigurationId``) never sends it. ``configs sync`` refuses (with
the configuration's id and the reason) to create or update a v2 Configuration for one that
has no ``memoryStoreId``.

Validation errors name the field as a path, ``channelSettings.SMS.captureRules[0].from: …``,
the same from the file, the admin API and ``rules check`` (:func:`error_lines`).
"""
from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from workers.capture.rules import (  # noqa: F401
    CALL_TYPES,
    DEFAULT_CALL_TYPE,
    WILDCARD,
    CaptureRule,
    canonical_call_type,
)
from workers.capture.rules import (
    StrictModel as _Model,
)
from workers.foundations.addresses import normalize

# Capture rules live in their own module; their names are part of this one's interface too.
from workers.foundations.constants import CHANNELS, GroupingType
from workers.foundations.errors import InvalidInput

ParticipantType = Literal["AGENT", "HUMAN_AGENT", "AI_AGENT"]

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_DISPLAY_NAME = re.compile(r"^[a-zA-Z0-9\-_ ]+$")  # the spec's ^[a-zA-Z0-9-_ ]+$
_V1_SERVICE = re.compile(r"^IS[0-9a-f]{32}$")
CHAT_PREFIX = "chat:"  # participantTypes keys naming a bridged chat identity


class StatusTimeouts(_Model):
    """Minutes without traffic before INACTIVE and before CLOSED (spec: integers ≥ 1)."""

    inactive: int | None = Field(None, ge=1)
    closed: int | None = Field(None, ge=1)


class VoiceTranscription(_Model):
    """How passive voice transcribes a call this configuration captures (a threadline field of
    ``channelSettings.VOICE``, never sent to v2): the Real-Time Transcription parameters Twilio
    takes on ``<Transcription>`` and ``POST …/Calls/{CallSid}/Transcriptions.json``. Absent →
    Twilio's defaults; partial results off unless asked (they are never communications)."""

    transcriptionEngine: str | None = Field(None, min_length=1, max_length=64)
    speechModel: str | None = Field(None, min_length=1, max_length=128)
    languageCode: str | None = Field(None, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    partialResults: bool = False


class ChannelSetting(_Model):
    statusTimeouts: StatusTimeouts | None = None
    captureRules: list[CaptureRule] = Field(default_factory=list)
    transcription: VoiceTranscription | None = None  # VOICE only (threadline's, not v2's)


# Marks a validator message whose lines carry their own path below the field's (error_lines).
_SUBPATH = "@"


class ChannelSettings(_Model):
    """Settings per channel. threadline captures SMS, VOICE, WHATSAPP and RCS (CHAT is the
    classic bridge's, which threadline does not reproduce: it is refused as an unknown field)."""

    SMS: ChannelSetting | None = None
    VOICE: ChannelSetting | None = None
    WHATSAPP: ChannelSetting | None = None
    RCS: ChannelSetting | None = None

    def items(self) -> list[tuple[str, ChannelSetting]]:
        return [(ch, s) for ch in CHANNELS if (s := getattr(self, ch)) is not None]

    @model_validator(mode="after")
    def _rules_fit_channel(self) -> ChannelSettings:
        problems = []
        for channel, setting in self.items():
            if setting.transcription is not None and channel != "VOICE":
                problems.append(f"{_SUBPATH}{channel}.transcription: only VOICE calls are transcribed")
            for i, rule in enumerate(setting.captureRules):
                try:
                    rule.check_channel(channel)
                except ValueError as exc:
                    problems.append(f"{_SUBPATH}{channel}.captureRules[{i}].{exc}")
        if problems:
            raise ValueError("\n".join(problems))
        return self


class StatusCallback(_Model):
    url: str
    method: Literal["POST", "GET"] = "POST"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("must be an http:// or https:// URL")
        return v


class ConversationsV1Bridge(_Model):
    serviceId: str

    @field_validator("serviceId")
    @classmethod
    def _sid(cls, v: str) -> str:
        if not _V1_SERVICE.match(v):
            raise ValueError("must match ^IS[0-9a-f]{32}$")
        return v


class Configuration(_Model):
    """One configuration: Orchestrator's JSON plus ``id``, ``twilioConfigurationId``,
    ``participantTypes`` and ``activeTwiml`` (module docstring)."""

    id: str
    displayName: str = Field(min_length=1, max_length=32)
    description: str = Field(max_length=512)
    conversationGroupingType: GroupingType
    memoryStoreId: str | None = Field(None, min_length=1)
    channelSettings: ChannelSettings = Field(default_factory=ChannelSettings)
    statusCallbacks: list[StatusCallback] = Field(default_factory=list, max_length=2)
    intelligenceConfigurationIds: list[str] = Field(default_factory=list, max_length=5)
    memoryExtractionEnabled: bool = False
    conversationsV1Bridge: ConversationsV1Bridge | None = None
    twilioConfigurationId: str | None = Field(None, min_length=1)
    participantTypes: dict[str, ParticipantType] = Field(default_factory=dict)
    activeTwiml: bool = False

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("must be a slug: lower-case letters, digits, '-' and '_', 1-63 characters")
        return v

    @field_validator("displayName")
    @classmethod
    def _display_name(cls, v: str) -> str:
        if not _DISPLAY_NAME.match(v):
            raise ValueError("may contain only letters, digits, '-', '_' and spaces")
        return v

    @field_validator("participantTypes")
    @classmethod
    def _participants(cls, v: dict[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for address in v:
            if address.startswith(CHAT_PREFIX):  # a classic chat identity (the bridge)
                if not address[len(CHAT_PREFIX):].strip():
                    raise ValueError(f"{address!r} names no chat identity")
                continue
            bare = normalize(address)
            if bare is None:
                raise ValueError(f"{address!r} is not an address (wildcards are not allowed here)")
            if bare in seen:
                raise ValueError(f"{address!r} and {seen[bare]!r} are the same address")
            seen[bare] = address
        return v

    # -- derived views ------------------------------------------------------------------------
    def account_addresses(self) -> dict[str, str]:
        """Bare address → participant type, for the account's own addresses it declares."""
        return {normalize(a): t for a, t in self.participantTypes.items()  # type: ignore[misc]
                if not a.startswith(CHAT_PREFIX)}

    def chat_type(self, identity: str) -> str:
        """A bridged chat identity's participant type: ``participantTypes["chat:<identity>"]``,
        else AGENT for the classic service's own ``system`` author, else CUSTOMER."""
        mapped = self.participantTypes.get(CHAT_PREFIX + identity)
        return mapped or ("AGENT" if identity == "system" else "CUSTOMER")

    def statuses(self, channel: str) -> StatusTimeouts | None:
        setting = getattr(self.channelSettings, channel, None)
        return setting.statusTimeouts if setting else None

    def to_json(self) -> dict[str, Any]:
        """The configuration as the admin API shows it (no nulls, Orchestrator's field names)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def canonical(self) -> str:
        """Stable JSON text: equal configurations give equal text (used to skip no-op changes)."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def v2_body(self) -> dict[str, Any]:
        """The body for v2 ``/ControlPlane/Configurations`` create/PUT: Orchestrator's fields only,
        never capture rules and never ``conversationsV1Bridge`` (Twilio's hosted capture and
        hosted bridge must not capture the same traffic threadline does)."""
        body = self.model_dump(
            mode="json", by_alias=True, exclude_none=True,
            exclude={"id", "twilioConfigurationId", "participantTypes", "activeTwiml",
                     "conversationsV1Bridge"},
        )
        settings = {}
        for channel, setting in self.channelSettings.items():
            entry = {}
            if setting.statusTimeouts is not None:
                timeouts = setting.statusTimeouts.model_dump(exclude_none=True)
                if timeouts:
                    entry["statusTimeouts"] = timeouts
            settings[channel] = entry
        body["channelSettings"] = settings
        return body


class ConfigurationError(InvalidInput):
    """Invalid configuration input; ``problems`` are ``"field.path: message"`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def error_lines(exc: ValidationError) -> list[str]:
    """pydantic's errors as ``path: message`` lines (paths in Orchestrator's field names)."""
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        msg = err["msg"].removeprefix("Value error, ")
        path = _path(tuple(err["loc"]))
        if msg.startswith(_SUBPATH):
            # Problems found across a model's fields carry their own paths below it.
            lines.extend(f"{path}.{line[1:]}" if path else line[1:] for line in msg.split("\n"))
        else:
            lines.append(f"{path}: {msg}" if path else msg)
    return lines


def parse_configuration(data: Any) -> Configuration:
    """Validate one configuration object; raises :class:`ConfigurationError`."""
    if not isinstance(data, dict):
        raise ConfigurationError(["a configuration must be a JSON object"])
    try:
        return Configuration.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(error_lines(exc)) from None


def bridge_conflicts(configs: list[Configuration]) -> list[str]:
    """One configuration per classic service (Orchestrator's rule, DESIGN §4): a problem line,
    naming both configurations, for each service that a second configuration also bridges."""
    owner: dict[str, str] = {}
    problems = []
    for config in configs:
        if config.conversationsV1Bridge is None:
            continue
        service = config.conversationsV1Bridge.serviceId
        if service in owner and owner[service] != config.id:
            problems.append(f"conversationsV1Bridge.serviceId: {service} is already bridged by "
                            f"configuration {owner[service]!r}; {config.id!r} cannot bridge it too "
                            f"(one configuration per classic service)")
        owner.setdefault(service, config.id)
    return problems


def parse_configurations(data: Any) -> list[Configuration]:
    """Validate a list of configurations (the THREADLINE_CONFIG file); ids must be unique.

    Every problem in the list is reported, each prefixed with ``[i]`` (and the id when known)."""
    if isinstance(data, dict) and isinstance(data.get("configurations"), list):
        data = data["configurations"]
    if not isinstance(data, list):
        raise ConfigurationError(["the file must hold a list of configurations"])
    out: list[Configuration] = []
    problems: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(data):
        label = f"[{i}]"
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            label = f"[{i}] ({item['id']})"
        try:
            config = parse_configuration(item)
        except ConfigurationError as exc:
            problems.extend(f"{label} {p}" for p in exc.problems)
            continue
        if config.id in seen:
            problems.append(f"{label} id: {config.id!r} appears twice")
        seen.add(config.id)
        out.append(config)
    problems.extend(bridge_conflicts(out))
    if problems:
        raise ConfigurationError(problems)
    return out


def load_file(path: str | Any) -> list[Configuration]:
    """Read and validate a YAML or JSON file of configurations (JSON is valid YAML)."""
    import yaml

    try:
        text = open(path, encoding="utf-8").read()
    except OSError as exc:
        raise ConfigurationError([f"{path}: cannot read ({exc.strerror})"]) from None
    try:
        data = yaml.safe_load(text) if text.strip() else []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigurationError([f"{path}: not valid YAML or JSON{where}"]) from None
    return parse_configurations(data if data is not None else [])
