"""Contract: every request threadline sent to the twin this session is valid against Twilio's specs.

Marked ``after_all``, so the conftest's collection hook runs it last, after every other test has
driven threadline against the session twin (tests/twin_fixtures.py), which recorded each request
it received. (Run in a selection where no other test used the twin, it makes one of each of the
engine's common calls itself, so it never has nothing to judge.) Each recorded request
whose User-Agent starts with ``threadline/`` is checked STRICTLY against
``../shared/specs/twilio_conversations_v2.json`` / ``twilio_memory_v1.json`` /
``twilio_api_v2010.json`` / ``twilio_events_v1.json`` / ``twilio_conversations_v1.json`` (read
from there, never copied): the path must match a template the spec declares for that method; the JSON body must validate against the
operation's request schema (openapi-schema-validator, OAS 3.0 write rules, formats checked) and
contain no ``null`` anywhere; a form body (the core API, Event Streams, classic) must name only declared
parameters, each valid for its type once coerced (``format: uri`` = an absolute URI); query
parameters must be declared and valid; ``Idempotency-Key`` only where declared, and a UUID.

Also here: proof the checker can fail (known-bad bodies), and a check that the twin's own
hand-written validation (service/twin/schemas.py for JSON, the ``forms.Form`` tables of
service/twin for form bodies) gives the spec's verdict on sample bodies, so the two cannot drift
apart silently.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from jsonschema import FormatChecker
from openapi_schema_validator import OAS30WriteValidator, oas30_format_checker
from pydantic import BaseModel

from service.twin import eventstreams, forms, messages, numbers, schemas, transcriptions
from service.twin.errors import TwinError
from tests.conftest import SPECS
from tests.twin_fixtures import TwinHandle

SPEC_FILES = ("twilio_conversations_v2.json", "twilio_memory_v1.json", "twilio_api_v2010.json",
              "twilio_events_v1.json", "twilio_conversations_v1.json")
METHODS = ("get", "put", "post", "delete", "patch")
FORM = "application/x-www-form-urlencoded"
# ``format: uri`` (declared on every webhook URL of the core API) as an absolute URI; the
# validator's default checker leaves it unchecked without an optional package.
FORMATS = FormatChecker()
FORMATS.checkers.update(oas30_format_checker.checkers)


@FORMATS.checks("uri")
def _absolute_uri(value: object) -> bool:
    parts = urlsplit(value) if isinstance(value, str) else None
    return parts is None or bool(parts.scheme and (parts.netloc or parts.path))


@dataclass
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    spec: dict[str, Any]
    op: dict[str, Any]

    def parameters(self) -> list[dict[str, Any]]:
        params = self.spec["paths"][self.template].get("parameters", []) + \
            self.op.get("parameters", [])
        return [_deref(self.spec, p) for p in params]

    def is_form(self) -> bool:
        body = self.op.get("requestBody")
        return bool(body) and FORM in _deref(self.spec, body)["content"]

    def body_schema(self) -> dict[str, Any] | None:
        body = self.op.get("requestBody")
        if body is None:
            return None
        content = _deref(self.spec, body)["content"]
        schema = content[FORM if FORM in content else "application/json"]["schema"]
        # '#/components/…' references resolve against the root the validator is given.
        return {**schema, "components": self.spec["components"]}

    def body_required(self) -> bool:
        body = self.op.get("requestBody")
        return bool(body and _deref(self.spec, body).get("required"))


def _deref(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


@lru_cache(maxsize=1)
def operations() -> list[Operation]:
    """Every (method, path template) of both specs; literal templates before parameterised ones."""
    ops = []
    for name in SPEC_FILES:
        spec = json.loads((SPECS / name).read_text())
        for template, item in spec["paths"].items():
            regex = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            for method in METHODS:
                if method in item:
                    ops.append(Operation(method.upper(), template, re.compile(regex), spec,
                                         item[method]))
    return sorted(ops, key=lambda o: o.template.count("{"))


def find(method: str, path: str) -> Operation | None:
    return next((o for o in operations() if o.method == method and o.pattern.match(path)), None)


def _nulls(value: Any, where: str = "body") -> list[str]:
    if value is None:
        return [where]
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in _nulls(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [n for i, v in enumerate(value) for n in _nulls(v, f"{where}[{i}]")]
    return []


def _coerce(raw: list[str], schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "array":
        return [_coerce([v], schema.get("items", {})) for v in raw]
    value = raw[-1]
    if kind == "integer":
        return int(value) if re.fullmatch(r"-?\d+", value) else value
    if kind == "number":
        try:
            return float(value)
        except ValueError:
            return value
    if kind == "boolean":
        return {"true": True, "false": False}.get(value, value)
    return value


def check_request(method: str, path: str, query: str = "", headers: dict[str, str] | None = None,
                  body: Any = None, has_body: bool = False) -> list[str]:
    """Why a request is not what the specs allow; an empty list when it is."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    op = find(method, path)
    if op is None:
        return [f"{method} {path}: no such operation in the specs"]
    where = f"{method} {op.template}"
    problems = []
    params = op.parameters()
    declared_query = {p["name"]: p for p in params if p["in"] == "query"}
    given: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        given.setdefault(name, []).append(value)
    for name, values in given.items():
        if name not in declared_query:
            problems.append(f"{where}: query parameter {name!r} is not declared")
            continue
        schema = _deref(op.spec, declared_query[name]["schema"])
        for error in OAS30WriteValidator(schema, format_checker=oas30_format_checker) \
                .iter_errors(_coerce(values, schema)):
            problems.append(f"{where}: query {name}: {error.message}")
    declared_headers = {p["name"].lower(): p for p in params if p["in"] == "header"}
    if "idempotency-key" in headers:
        if "idempotency-key" not in declared_headers:
            problems.append(f"{where}: Idempotency-Key is not declared here")
        else:
            schema = declared_headers["idempotency-key"]["schema"]
            if not re.search(schema["pattern"], headers["idempotency-key"]):
                problems.append(f"{where}: Idempotency-Key is not a UUID")
    schema = op.body_schema()
    if schema is None:
        if has_body:
            problems.append(f"{where}: the spec declares no request body")
        return problems
    if not has_body:
        if op.body_required() or method in ("POST", "PUT"):
            problems.append(f"{where}: request body missing")
        return problems
    if op.is_form():
        return problems + check_form_body(op, schema, body if isinstance(body, str) else "")
    problems += [f"{where}: null at {n}" for n in _nulls(body)]
    validator = OAS30WriteValidator(schema, format_checker=oas30_format_checker)
    for error in sorted(validator.iter_errors(body), key=lambda e: list(e.path)):
        field = ".".join(str(p) for p in error.absolute_path) or "body"
        problems.append(f"{where}: {field}: {error.message}")
    return problems


def check_form_body(op: Operation, schema: dict[str, Any], text: str) -> list[str]:
    """A form body against the operation's form schema: each declared parameter's values
    coerced by its type (repeated names make arrays), undeclared names refused."""
    where = f"{op.method} {op.template}"
    given: dict[str, list[str]] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        given.setdefault(name, []).append(value)
    props = schema.get("properties", {})
    body: dict[str, Any] = {}
    problems = []
    for name, values in given.items():
        if name not in props:
            problems.append(f"{where}: form parameter {name!r} is not declared")
            continue
        body[name] = _coerce(values, _deref(op.spec, props[name]))
    validator = OAS30WriteValidator(schema, format_checker=FORMATS)
    for error in sorted(validator.iter_errors(body), key=lambda e: list(e.path)):
        field = ".".join(str(p) for p in error.absolute_path) or "body"
        problems.append(f"{where}: {field}: {error.message}")
    return problems


# --- the checker can fail ---------------------------------------------------------------------

def test_checker_accepts_good_and_refuses_bad_requests() -> None:
    good = {"configurationId": "conv_configuration_00000000000000000000000001",
            "participants": [{"type": "CUSTOMER",
                              "addresses": [{"channel": "SMS", "address": "+14155550100"}]}]}
    assert check_request("POST", "/v2/Conversations", body=good, has_body=True) == []
    assert check_request("POST", "/v2/Conversations", body={**good, "name": None}, has_body=True)
    assert check_request("POST", "/v2/Conversations", body={"name": "x"}, has_body=True)
    bad_type = {**good, "participants": [{"type": "ROBOT", "addresses": []}]}
    assert any("ROBOT" in p for p in check_request("POST", "/v2/Conversations", body=bad_type,
                                                   has_body=True))
    comm = "/v2/Conversations/conv_conversation_1/Communications"
    assert check_request("POST", comm, body={
        "author": {"address": "+1", "channel": "SMS"}, "content": {"type": "TEXT", "text": "x"},
        "recipients": [], "occurredAt": "2026-01-01T00:00:00Z"}, has_body=True)
    assert check_request("POST", comm, body={
        "author": {"address": "+1", "channel": "SMS"}, "content": {"type": "TEXT", "text": "x"},
        "recipients": [{"address": "+2", "channel": "SMS"}], "occurredAt": "noon"},
        has_body=True)
    assert check_request("GET", "/v2/Conversations", query="pageSize=5000")
    assert check_request("GET", "/v2/Conversations", query="status=OPEN")
    assert check_request("GET", "/v2/Conversations", query="colour=red")
    assert check_request("GET", "/v2/Conversations", query="status=ACTIVE&status=CLOSED") == []
    assert check_request("POST", "/v2/Conversations", headers={"Idempotency-Key": "x"},
                         body=good, has_body=True)
    assert check_request("DELETE", "/v2/Conversations/conv_conversation_1",
                         headers={"Idempotency-Key": "01890a5d-aa0f-7c80-b8e6-0242ac140004"}) == []
    assert check_request("POST", "/v2/Nowhere", body={}, has_body=True)
    lookup = "/v1/Stores/mem_store_00000000000000000000000000/Profiles/Lookup"
    assert check_request("POST", lookup, body={"idType": "phone", "value": "+1"},
                         has_body=True) == []
    assert check_request("POST", lookup, body={"idType": "phone", "value": "+1", "x": 1},
                         has_body=True)
    number = "/2010-04-01/Accounts/AC1/IncomingPhoneNumbers/PN1.json"
    assert check_request("POST", number, body="SmsUrl=https%3A%2F%2Fa.example%2Fs&SmsMethod=GET",
                         has_body=True) == []
    assert check_request("POST", number, body="SmsUrl=nowhere", has_body=True)
    assert check_request("POST", number, body="SmsMethod=PUT", has_body=True)
    assert check_request("POST", number, body="Colour=red", has_body=True)
    assert check_request("GET", "/2010-04-01/Accounts/AC1/Calls.json",
                         query="Status=in-progress") == []
    assert check_request("GET", "/2010-04-01/Accounts/AC1/Calls.json", query="Status=talking")
    hooks = "/v1/Services/IS1/Configuration/Webhooks"
    assert check_request("POST", hooks, body="PostWebhookUrl=https%3A%2F%2Fa.example%2Fc&Method=POST"
                         "&Filters=onMessageAdded&Filters=onMessageUpdated", has_body=True) == []
    assert check_request("POST", hooks, body="PostWebhookUrl=nowhere", has_body=True)
    classic_msg = "/v1/Services/IS1/Conversations/CH1/Messages"
    assert check_request("POST", classic_msg, body="Author=kim&Body=hi", has_body=True) == []
    assert check_request("POST", classic_msg, body="Author=kim&Colour=red", has_body=True)


# --- the twin's validation agrees with the spec -----------------------------------------------

C = "/v2/Conversations/conv_conversation_1"
MODELS: dict[tuple[str, str], type[BaseModel]] = {
    ("POST", "/v2/ControlPlane/Configurations"): schemas.ConfigurationCreate,
    ("PUT", "/v2/ControlPlane/Configurations/c"): schemas.ConfigurationUpdate,
    ("PATCH", "/v2/ControlPlane/Configurations/c"): schemas.ConfigurationPatch,
    ("POST", "/v2/Conversations"): schemas.ConversationCreate,
    ("PUT", C): schemas.ConversationUpdate,
    ("PATCH", C): schemas.ConversationPatch,
    ("POST", C + "/Participants"): schemas.ParticipantCreate,
    ("PUT", C + "/Participants/p"): schemas.ParticipantUpdate,
    ("POST", C + "/Communications"): schemas.CommunicationCreate,
    ("POST", "/v1/Stores/mem_store_00000000000000000000000000/Profiles/Lookup"):
        schemas.Identifier,
    ("POST", "/v1/Stores/mem_store_00000000000000000000000000/Profiles/p/Identifiers"):
        schemas.Identifier,
}
CONFIG = {"displayName": "Support 1", "description": "d",
          "conversationGroupingType": "GROUP_BY_PROFILE", "memoryStoreId": "mem_store_x"}
COMM = {"author": {"address": "+1", "channel": "SMS"}, "content": {"type": "TEXT", "text": "x"},
        "recipients": [{"address": "+2", "channel": "SMS"}]}
ADDR = {"channel": "WHATSAPP", "address": "whatsapp:+1"}
SAMPLES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/v2/ControlPlane/Configurations", CONFIG),
    ("POST", "/v2/ControlPlane/Configurations", {**CONFIG, "channelSettings": {"SMS": {
        "statusTimeouts": {"inactive": 1, "closed": 2},
        "captureRules": [{"from": "*", "to": "+1", "metadata": {"callType": "PSTN"}}]}},
        "statusCallbacks": [{"url": "https://example.com/cb", "method": "GET"}],
        "conversationsV1Bridge": {"serviceId": "IS" + "0" * 32}}),
    ("POST", "/v2/ControlPlane/Configurations", {**CONFIG, "displayName": "x" * 33}),
    ("POST", "/v2/ControlPlane/Configurations", {**CONFIG, "displayName": "bad!"}),
    ("POST", "/v2/ControlPlane/Configurations", {**CONFIG, "conversationGroupingType": "X"}),
    ("POST", "/v2/ControlPlane/Configurations", {"displayName": "a", "description": "d"}),
    ("POST", "/v2/ControlPlane/Configurations", {**CONFIG, "channelSettings": {"SMS": {
        "statusTimeouts": {"inactive": 0}}}}),
    ("POST", "/v2/ControlPlane/Configurations", {**CONFIG, "channelSettings": {"SMS": {
        "captureRules": [{"from": "*"}]}}}),
    ("POST", "/v2/ControlPlane/Configurations", {**CONFIG, "statusCallbacks": [
        {"url": "https://a.example"}] * 3}),
    ("POST", "/v2/ControlPlane/Configurations", {**CONFIG, "intelligenceConfigurationIds":
                                                 ["a"] * 6}),
    ("POST", "/v2/ControlPlane/Configurations", {**CONFIG, "conversationsV1Bridge":
                                                 {"serviceId": "nope"}}),
    ("PUT", "/v2/ControlPlane/Configurations/c", {**CONFIG, "channelSettings": {}}),
    ("PUT", "/v2/ControlPlane/Configurations/c", CONFIG),
    ("PATCH", "/v2/ControlPlane/Configurations/c", {"description": "only"}),
    ("PATCH", "/v2/ControlPlane/Configurations/c", {"memoryExtractionEnabled": "yes"}),
    ("POST", "/v2/Conversations", {"configurationId": "c", "name": "n", "metadata": {"a": "b"},
                                   "participants": [{"type": "AGENT", "addresses": [ADDR]}]}),
    ("POST", "/v2/Conversations", {"name": "n"}),
    ("POST", "/v2/Conversations", {"configurationId": 7}),
    ("POST", "/v2/Conversations", {"configurationId": "c",
                                   "metadata": {str(i): "v" for i in range(9)}}),
    ("POST", "/v2/Conversations", {"configurationId": "c", "metadata": {"a": "v" * 513}}),
    ("POST", "/v2/Conversations", {"configurationId": "c",
                                   "participants": [{"addresses": [{"channel": "EMAIL",
                                                                    "address": "a@b"}]}]}),
    ("POST", "/v2/Conversations", {"configurationId": "c", "configuration": {
        "workflows": [{"flowId": "FW" + "a" * 32}]}}),
    ("POST", "/v2/Conversations", {"configurationId": "c", "configuration": {
        "workflows": [{"flowId": "nope"}]}}),
    ("PUT", C, {"status": "CLOSED"}),
    ("PUT", C, {"name": "no status"}),
    ("PATCH", C, {"status": "CLOSED"}),
    ("PATCH", C, {"status": "DONE"}),
    ("PATCH", C, {"configuration": {"statusCallbacks": [{"url": "https://x.example"}]}}),
    ("POST", C + "/Participants", {"type": "CUSTOMER", "addresses": [ADDR], "name": "Kiran"}),
    ("POST", C + "/Participants", {"type": "ROBOT", "addresses": [ADDR]}),
    ("POST", C + "/Participants", {"type": "CUSTOMER"}),
    ("POST", C + "/Participants", {"addresses": [{"channel": "SMS"}]}),
    ("PUT", C + "/Participants/p", {"name": "Dana"}),
    ("PUT", C + "/Participants/p", {"profileId": 12}),
    ("POST", C + "/Communications", COMM),
    ("POST", C + "/Communications", {**COMM, "resourceId": "SM1", "channelId": "SM1",
                                     "occurredAt": "2026-11-21T15:00:00.123+01:00"}),
    ("POST", C + "/Communications", {**COMM, "content": {
        "type": "TRANSCRIPTION", "text": "hello",
        "transcription": {"channel": 1, "confidence": 0.9, "engine": "google"}}}),
    ("POST", C + "/Communications", {**COMM, "recipients": []}),
    ("POST", C + "/Communications", {**COMM, "resourceId": ""}),
    ("POST", C + "/Communications", {**COMM, "occurredAt": "21/11/2026"}),
    ("POST", C + "/Communications", {**COMM, "content": {"type": "TEXT"}}),
    ("POST", C + "/Communications", {**COMM, "content": {"type": "AUDIO", "text": "x"}}),
    ("POST", C + "/Communications", {**COMM, "content": {
        "type": "TRANSCRIPTION", "text": "x", "transcription": {"channel": "one"}}}),
    ("POST", C + "/Communications", {**COMM, "author": {"channel": "SMS"}}),
    ("POST", C + "/Communications", {k: v for k, v in COMM.items() if k != "author"}),
    ("POST", "/v1/Stores/mem_store_00000000000000000000000000/Profiles/Lookup",
     {"idType": "phone", "value": "+13175556789"}),
    ("POST", "/v1/Stores/mem_store_00000000000000000000000000/Profiles/Lookup",
     {"idType": "p", "value": "+1"}),
    ("POST", "/v1/Stores/mem_store_00000000000000000000000000/Profiles/Lookup",
     {"idType": "phone", "value": "+1", "extra": True}),
    ("POST", "/v1/Stores/mem_store_00000000000000000000000000/Profiles/p/Identifiers",
     {"idType": "whatsapp", "value": "x" * 256}),
    ("POST", "/v1/Stores/mem_store_00000000000000000000000000/Profiles/p/Identifiers",
     {"idType": "whatsapp", "value": "whatsapp:+13175556789"}),
]


@pytest.mark.parametrize("method,path,body", SAMPLES,
                         ids=[f"{i}-{m}-{p.rsplit('/', 1)[-1]}" for i, (m, p, _) in
                              enumerate(SAMPLES)])
def test_twin_validation_agrees_with_the_spec(method: str, path: str,
                                              body: dict[str, Any]) -> None:
    spec_ok = check_request(method, path, body=body, has_body=True) == []
    try:
        schemas.parse(MODELS[(method, path)], body)
        twin_ok = True
    except TwinError:
        twin_ok = False
    assert twin_ok == spec_ok, (method, path, body)


A = "/2010-04-01/Accounts/AC1"
FORM_MODELS: dict[tuple[str, str], forms.Form] = {
    ("POST", A + "/IncomingPhoneNumbers/PN1.json"): numbers.UPDATE,
    ("POST", A + "/Messages.json"): messages.CREATE,
    ("POST", A + "/Calls/CA1/Transcriptions.json"): transcriptions.CREATE,
    ("POST", A + "/Calls/CA1/Transcriptions/GT1.json"): transcriptions.UPDATE,
    ("POST", "/v1/Sinks"): eventstreams.SINK_CREATE,
    ("POST", "/v1/Subscriptions"): eventstreams.SUBSCRIPTION_CREATE,
}
URL = "https://app.example.com/hook"
SINK = json.dumps({"destination": URL, "method": "POST", "batch_events": True})
FORM_SAMPLES: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("POST", A + "/IncomingPhoneNumbers/PN1.json", [("SmsUrl", URL), ("SmsMethod", "POST"),
                                                    ("VoiceUrl", URL), ("StatusCallback", URL),
                                                    ("VoiceCallerIdLookup", "true")]),
    ("POST", A + "/IncomingPhoneNumbers/PN1.json", [("VoiceUrl", "relative/path")]),
    ("POST", A + "/IncomingPhoneNumbers/PN1.json", [("StatusCallbackMethod", "PUT")]),
    ("POST", A + "/IncomingPhoneNumbers/PN1.json", [("VoiceReceiveMode", "video")]),
    ("POST", A + "/IncomingPhoneNumbers/PN1.json", [("VoiceCallerIdLookup", "yes")]),
    ("POST", A + "/Messages.json", [("To", "+14155550123"), ("From", "+14155550100"),
                                    ("Body", "hi"), ("StatusCallback", URL),
                                    ("MediaUrl", URL), ("MediaUrl", URL)]),
    ("POST", A + "/Messages.json", [("From", "+14155550100"), ("Body", "hi")]),
    ("POST", A + "/Messages.json", [("To", "+1"), ("StatusCallback", "not a url")]),
    ("POST", A + "/Messages.json", [("To", "+1"), ("Attempt", "twice")]),
    ("POST", A + "/Calls/CA1/Transcriptions.json", [
        ("StatusCallbackUrl", URL), ("Track", "both_tracks"), ("PartialResults", "true"),
        ("Name", "passive"), ("ConversationConfiguration", "support")]),
    ("POST", A + "/Calls/CA1/Transcriptions.json", []),
    ("POST", A + "/Calls/CA1/Transcriptions.json", [("Track", "left_track")]),
    ("POST", A + "/Calls/CA1/Transcriptions.json", [("PartialResults", "maybe")]),
    ("POST", A + "/Calls/CA1/Transcriptions/GT1.json", [("Status", "stopped")]),
    ("POST", A + "/Calls/CA1/Transcriptions/GT1.json", [("Status", "paused")]),
    ("POST", A + "/Calls/CA1/Transcriptions/GT1.json", []),
    ("POST", "/v1/Sinks", [("Description", "d"), ("SinkConfiguration", SINK),
                           ("SinkType", "webhook")]),
    ("POST", "/v1/Sinks", [("Description", "d"), ("SinkType", "webhook")]),
    ("POST", "/v1/Sinks", [("Description", "d"), ("SinkConfiguration", SINK),
                           ("SinkType", "pigeon")]),
    ("POST", "/v1/Subscriptions", [("Description", "d"), ("SinkSid", "DG" + "a" * 32),
                                   ("Types", '{"type": "a"}'), ("Types", '{"type": "b"}')]),
    ("POST", "/v1/Subscriptions", [("Description", "d"), ("SinkSid", "DG1"),
                                   ("Types", '{"type": "a"}')]),
    ("POST", "/v1/Subscriptions", [("Description", "d"), ("SinkSid", "DG" + "a" * 32)]),
]


@pytest.mark.parametrize("method,path,pairs", FORM_SAMPLES,
                         ids=[f"{i}-{p.rsplit('/', 1)[-1]}" for i, (_, p, _) in
                              enumerate(FORM_SAMPLES)])
def test_twin_form_validation_agrees_with_the_spec(method: str, path: str,
                                                   pairs: list[tuple[str, str]]) -> None:
    from urllib.parse import urlencode

    spec_ok = check_request(method, path, body=urlencode(pairs), has_body=True) == []
    try:
        forms.check(FORM_MODELS[(method, path)], pairs)
        twin_ok = True
    except TwinError:
        twin_ok = False
    assert twin_ok == spec_ok, (method, path, pairs)


def test_form_samples_cover_both_verdicts_on_every_form() -> None:
    from urllib.parse import urlencode

    verdicts: dict[tuple[str, str], set[bool]] = {}
    for method, path, pairs in FORM_SAMPLES:
        ok = check_request(method, path, body=urlencode(pairs), has_body=True) == []
        verdicts.setdefault((method, path), set()).add(ok)
    assert set(verdicts) == set(FORM_MODELS)
    assert [k for k, v in verdicts.items() if v != {True, False}] == []


def test_samples_cover_both_verdicts_on_every_model() -> None:
    verdicts: dict[tuple[str, str], set[bool]] = {}
    for method, path, body in SAMPLES:
        ok = check_request(method, path, body=body, has_body=True) == []
        verdicts.setdefault((method, path), set()).add(ok)
    assert set(verdicts) == set(MODELS)
    thin = [k for k, v in verdicts.items() if v != {True, False}]
    assert thin == [], f"add a valid and an invalid sample for {thin}"


# --- what threadline sent -----------------------------------------------------------------------

def _threadline_requests(twin_server: TwinHandle) -> list[dict[str, Any]]:
    lines = twin_server.record_path.read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    return [e for e in entries if e.get("user_agent", "").startswith("threadline/")]


def _drive_threadline_clients(twin_server: TwinHandle) -> None:
    """One of each call the engine makes most: configuration, conversation, participant,
    communication, status change, listing, the Messages and Calls lookups."""
    import asyncio

    from workers.capture.configuration import parse_configuration
    from workers.twilio import voice_api
    from workers.twilio.client import V2Client

    async def calls() -> None:
        async with V2Client(twin_server.settings()) as client:
            accepted = await client.create_configuration(parse_configuration({
                "id": "contract", "displayName": "contract", "description": "contract test",
                "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES",
                "memoryStoreId": "mem_store_" + "0" * 26,
                "channelSettings": {"SMS": {"statusTimeouts": {"inactive": 30, "closed": 60}}},
            }).v2_body())
            await client.wait_operation(accepted)
            conv = await client.create_conversation(
                {"configurationId": accepted.related["configurationId"], "name": "contract"})
            await client.create_participant(conv["id"], {
                "type": "CUSTOMER", "name": "+14155550123",
                "addresses": [{"channel": "SMS", "address": "+14155550123"}]})
            await client.create_communication(conv["id"], {
                "author": {"address": "+14155550123", "channel": "SMS"},
                "content": {"type": "TEXT", "text": "hello"},
                "recipients": [{"address": "+14155550100", "channel": "SMS"}],
                "channelId": "SM" + "1" * 32})
            await client.patch_conversation(conv["id"], {"status": "INACTIVE"})
            await client.list_conversations(status=["ACTIVE"])
            async for _ in voice_api.in_progress_calls(client, twin_server.account_sid):
                pass

    asyncio.run(calls())


@pytest.mark.after_all
def test_every_threadline_request_matches_the_specs(twin_server: TwinHandle,
                                                    request: pytest.FixtureRequest) -> None:
    others_used_the_twin = any(
        "twin_server" in item.fixturenames
        and not item.module.__name__.startswith("tests.twin.") and item.module.__name__ != __name__
        for item in request.session.items)
    if not others_used_the_twin:
        # A selection with no engine test in it (this file alone, say): threadline's clients
        # make their calls here, so the check below always has requests to judge.
        _drive_threadline_clients(twin_server)
    sent = _threadline_requests(twin_server)
    assert sent, "threadline's clients ran against the twin, yet it recorded none of their requests"
    problems = []
    for entry in sent:
        has_body = "body" in entry or "body_text" in entry
        op = find(entry["method"], entry["path"])
        form = op is not None and op.is_form()
        if "body_text" in entry and not form:
            problems.append(f"{entry['method']} {entry['path']}: body is not JSON")
            continue
        if "body" in entry and form:
            problems.append(f"{entry['method']} {entry['path']}: JSON where a form is declared")
            continue
        problems += check_request(entry["method"], entry["path"], entry.get("query", ""),
                                  entry.get("headers", {}),
                                  entry.get("body_text" if form else "body"), has_body)
    assert not problems, f"{len(problems)} contract violations in {len(sent)} requests:\n" + \
        "\n".join(sorted(set(problems))[:40])
