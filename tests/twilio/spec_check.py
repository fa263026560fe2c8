"""The checker behind the contract test: a request against Twilio's OpenAPI documents.

Reads ``../shared/specs`` (never a copy), finds the operation a (method, path) names, and says
why a request is not what the spec allows: undeclared or invalid query parameters, an
``Idempotency-Key`` where none is declared or not a UUID, a JSON body that does not validate
(OAS 3.0 write rules, formats checked, no ``null`` anywhere) or a form body naming undeclared
parameters or values invalid for their type. tests/twilio/test_contract.py holds the tests.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from jsonschema import FormatChecker
from openapi_schema_validator import OAS30WriteValidator, oas30_format_checker

from tests.conftest import SPECS

SPEC_FILES = ("twilio_conversations_v2.json", "twilio_memory_v1.json", "twilio_api_v2010.json",
              "twilio_events_v1.json", "twilio_conversations_v1.json")
METHODS = ("get", "put", "post", "delete", "patch")
FORM = "application/x-www-form-urlencoded"
# ``format: uri`` (declared on every webhook URL of the core API) as an absolute URI (or, in a form
# body, empty: the form way to clear a URL field, check_form_body); the
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
        prop = _deref(op.spec, props[name])
        if prop.get("format") == "uri" and values == [""]:
            continue  # an empty URL clears the field (Twilio's form convention): e.g. a restore
        body[name] = _coerce(values, prop)
    validator = OAS30WriteValidator(schema, format_checker=FORMATS)
    for error in sorted(validator.iter_errors(body), key=lambda e: list(e.path)):
        field = ".".join(str(p) for p in error.absolute_path) or "body"
        problems.append(f"{where}: {field}: {error.message}")
    return problems
