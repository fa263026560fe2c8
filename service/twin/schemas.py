"""Request bodies the twin accepts, as pydantic models written by hand from Twilio's OpenAPI.

Why not read the OpenAPI documents at run time: the twin runs where ``../shared/specs`` is absent
(an installed package, the Docker image, ``threadline dev`` on a laptop). The contract test
(tests/twilio/test_contract.py) reads the real documents and checks these models agree with them on
sample bodies, so the two cannot drift apart silently.

Rules carried over from the spec: required fields, enums, string lengths and patterns, array
and map sizes, RFC 3339 date-times. Unknown extra fields are allowed where the spec allows them
(the v2 bodies set no ``additionalProperties: false``; Memory's Identifier does). Validation is
strict (``"5"`` is not an integer, ``true`` is not a number).

One deliberate leniency: the twilio library sends every unset optional field as JSON ``null``,
so a ``null`` optional field is read as absent, as Twilio's servers must. In the maps whose
spec says a ``null`` value means "remove" (PATCH metadata, PATCH channelSettings) the null is kept.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from service.twin.errors import invalid

Channel = Literal["VOICE", "SMS", "RCS", "WHATSAPP", "CHAT", "VIDEO"]
ParticipantType = Literal["HUMAN_AGENT", "CUSTOMER", "AI_AGENT", "AGENT", "UNKNOWN"]
ConversationStatus = Literal["ACTIVE", "INACTIVE", "CLOSED"]
GroupingType = Literal[
    "GROUP_BY_PROFILE",
    "GROUP_BY_PARTICIPANT_ADDRESSES",
    "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
]
DeliveryStatus = Literal["INITIATED", "IN_PROGRESS", "DELIVERED", "READ", "COMPLETED", "FAILED"]

_RFC3339 = (r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")


def _uri(value: str) -> str:
    parts = urlsplit(value)
    if not parts.scheme or not (parts.netloc or parts.path):
        raise ValueError("must be an absolute URI")
    return value


DisplayName = Annotated[str, StringConstraints(max_length=32, pattern=r"^[a-zA-Z0-9-_ ]+$")]
Description = Annotated[str, StringConstraints(max_length=512)]
DateTime = Annotated[str, StringConstraints(pattern=_RFC3339)]
Uri = Annotated[str, AfterValidator(_uri)]
Metadata = Annotated[dict[str, Annotated[str, StringConstraints(max_length=512)]],
                     Field(max_length=8)]
MetadataPatch = Annotated[dict[str, Annotated[str, StringConstraints(max_length=512)] | None],
                          Field(max_length=8)]


class Body(BaseModel):
    """A JSON object whose unknown fields are kept (the v2 spec allows them)."""

    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)


# --- Configurations (POST/PUT/PATCH /v2/ControlPlane/Configurations) ---------------------------

class StatusTimeouts(Body):
    inactive: Annotated[int, Field(ge=1)] | None = None
    closed: Annotated[int, Field(ge=1)] | None = None


class CaptureRule(Body):
    from_: str = Field(alias="from")
    to: str
    metadata: dict[str, str] | None = None


class ChannelSetting(Body):
    statusTimeouts: StatusTimeouts | None = None
    captureRules: list[CaptureRule] | None = None


class StatusCallback(Body):
    url: Uri
    method: Literal["POST", "GET"] | None = None


class V1Bridge(Body):
    serviceId: Annotated[str, StringConstraints(pattern=r"^IS[0-9a-f]{32}$")]


class ConfigurationCreate(Body):
    displayName: DisplayName
    description: Description
    conversationGroupingType: GroupingType
    memoryStoreId: str
    channelSettings: dict[str, ChannelSetting] | None = None
    statusCallbacks: Annotated[list[StatusCallback], Field(max_length=2)] | None = None
    intelligenceConfigurationIds: Annotated[list[str], Field(max_length=5)] | None = None
    memoryExtractionEnabled: bool | None = None
    conversationsV1Bridge: V1Bridge | None = None


class ConfigurationUpdate(ConfigurationCreate):
    """PUT: a full replacement; ``channelSettings`` required, ``displayName`` optional."""

    displayName: DisplayName | None = None  # type: ignore[assignment]  # optional on PUT
    channelSettings: dict[str, ChannelSetting]


class ConfigurationPatch(Body):
    displayName: DisplayName | None = None
    description: Description | None = None
    conversationGroupingType: GroupingType | None = None
    memoryStoreId: str | None = None
    channelSettings: dict[str, ChannelSetting | None] | None = None
    statusCallbacks: Annotated[list[StatusCallback], Field(max_length=2)] | None = None
    intelligenceConfigurationIds: Annotated[list[str], Field(max_length=5)] | None = None
    memoryExtractionEnabled: bool | None = None
    conversationsV1Bridge: V1Bridge | None = None


# --- Conversations and participants -----------------------------------------------------------

class Address(Body):
    channel: Channel
    address: str
    channelId: str | None = None


class ParticipantCreate(Body):
    name: str | None = None
    type: ParticipantType | None = None
    profileId: str | None = None
    addresses: list[Address]


class ParticipantUpdate(Body):
    name: str | None = None
    type: ParticipantType | None = None
    profileId: str | None = None
    addresses: list[Address] | None = None


class Workflow(Body):
    flowId: Annotated[str, StringConstraints(pattern=r"^FW[0-9a-fA-F]{32}$")]


class ConversationSettings(Body):
    intelligenceConfigurationIds: Annotated[list[str], Field(max_length=5)] | None = None
    traitExtractionStrategyIds: Annotated[list[str], Field(max_length=1)] | None = None
    observationExtractionStrategyIds: Annotated[list[str], Field(max_length=1)] | None = None
    workflows: Annotated[list[Workflow], Field(max_length=5)] | None = None


class ConversationCreate(Body):
    configurationId: str
    name: str | None = None
    configuration: ConversationSettings | None = None
    participants: Annotated[list[ParticipantUpdate], Field(max_length=50)] | None = None
    metadata: Metadata | None = None


class ConversationUpdate(Body):
    name: str | None = None
    status: ConversationStatus
    metadata: Metadata | None = None


class ConversationSettingsPatch(Body):
    statusCallbacks: Annotated[list[StatusCallback], Field(max_length=20)] | None = None


class ConversationPatch(Body):
    name: str | None = None
    status: ConversationStatus | None = None
    configuration: ConversationSettingsPatch | None = None
    metadata: MetadataPatch | None = None


# --- Communications ---------------------------------------------------------------------------

class CommunicationAddress(Body):
    address: str
    channel: Channel
    participantId: str | None = None


class Recipient(CommunicationAddress):
    # Not in the create body's schema (which allows extra fields); the response's enum applies.
    deliveryStatus: DeliveryStatus | None = None


class Transcription(Body):
    channel: int | None = None
    confidence: float | None = None
    engine: str | None = None


class ContentText(Body):
    type: Literal["TEXT"]
    text: str


class ContentTranscription(Body):
    type: Literal["TRANSCRIPTION"]
    text: str
    transcription: Transcription | None = None


class CommunicationCreate(Body):
    author: CommunicationAddress
    content: Annotated[ContentText | ContentTranscription, Field(discriminator="type")]
    channelId: str | None = None
    resourceId: Annotated[str, StringConstraints(min_length=1)] | None = None
    recipients: Annotated[list[Recipient], Field(min_length=1)]
    occurredAt: DateTime | None = None


# --- Memory v1 --------------------------------------------------------------------------------

class Identifier(BaseModel):
    """``{idType, value}``: Memory declares ``additionalProperties: false``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    idType: Annotated[str, StringConstraints(min_length=2, max_length=30)]
    value: Annotated[str, StringConstraints(max_length=255)]


class ProfileCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    traits: Annotated[dict[str, Annotated[dict[str, Any], Field(max_length=99)]],
                      Field(max_length=50)] | None = None


# --- validation entry point -------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def field_path(loc: tuple[int | str, ...]) -> str:
    """``('participants', 0, 'type')`` → ``participants[0].type`` (tags of unions dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("TEXT", "TRANSCRIPTION", "function-after[_uri(), str]"):
            continue
        else:
            out += ("." if out else "") + ("from" if part == "from_" else str(part))
    return out or "body"


def parse(model: type[M], data: object) -> M:
    """Validate a decoded JSON body; a refusal is a 400 whose message names the field(s)."""
    if not isinstance(data, dict):
        raise invalid("The request body must be a JSON object")
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        problems = [f"{field_path(e['loc'])}: {e['msg']}" for e in exc.errors()[:3]]
        raise invalid("Invalid request body: " + "; ".join(problems)) from None


def dump(model: BaseModel) -> dict[str, Any]:
    """The body as stored: aliases restored, absent (null) optional fields left out."""
    return model.model_dump(by_alias=True, exclude_none=True)


Model = TypeVar("Model", bound=BaseModel)


def parse_object(model: type[Model], data: object) -> Model:
    """A control or simulate body as ``model``; 400 in Twilio's shape naming up to three fields."""
    if not isinstance(data, dict):
        raise invalid("The request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [f"{field_path(e['loc'])}: {e['msg']}" for e in exc.errors()[:3]]
        raise invalid("; ".join(problems)) from None
