"""Form-encoded request bodies (the core API and Event Streams), checked as Twilio checks them.

The 2010-04-01 API and Events v1 take ``application/x-www-form-urlencoded`` bodies. A
:class:`Form` lists, per parameter, what ../shared/specs declares for it (``uri``,
``http-method``, ``boolean``, ``integer``, an enum, a pattern, ``required``); a value that
breaks it is a 400 naming the parameter, in Twilio's error shape. Parameters the spec does not
declare are ignored, as Twilio's servers ignore them. tests/twilio/test_contract.py checks these
tables against the spec documents on sample bodies, so the two cannot drift apart silently.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request

from service.twin.errors import TwinError, invalid

URI, METHOD, BOOL, INT, STR = "uri", "http-method", "boolean", "integer", "string"
Kind = str | tuple[str, ...] | re.Pattern[str]


@dataclass(frozen=True)
class Form:
    fields: dict[str, Kind]
    required: tuple[str, ...] = ()
    repeated: frozenset[str] = field(default_factory=frozenset)  # arrays: every value kept


def re_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def bad_uri(value: str) -> bool:
    parts = urlsplit(value)
    return not parts.scheme or not (parts.netloc or parts.path)


def _bad(name: str, value: str, kind: Kind) -> bool:
    if kind == URI:
        return bad_uri(value)
    if kind == METHOD:
        return value not in ("GET", "POST")
    if kind == BOOL:
        return value not in ("true", "false")
    if kind == INT:
        return re.fullmatch(r"-?\d+", value) is None
    if isinstance(kind, tuple):
        return value not in kind
    if isinstance(kind, re.Pattern):
        return kind.search(value) is None
    return False


def _expected(kind: Kind) -> str:
    if isinstance(kind, tuple):
        return "one of " + ", ".join(kind)
    if isinstance(kind, re.Pattern):
        return f"a value matching {kind.pattern}"
    return {URI: "an absolute URL", METHOD: "GET or POST", BOOL: "true or false",
            INT: "an integer"}.get(kind, "a string")


def check(form: Form, pairs: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    """The declared parameters of ``pairs`` (arrays as lists), or a 400 naming the first bad one."""
    out: dict[str, str | list[str]] = {}
    for name, value in pairs:
        kind = form.fields.get(name)
        if kind is None:
            continue
        if _bad(name, value, kind):
            raise invalid(f"Invalid parameter {name}: expected {_expected(kind)}")
        if name in form.repeated:
            listed = out.setdefault(name, [])
            assert isinstance(listed, list)
            listed.append(value)
        else:
            out[name] = value
    for name in form.required:
        if name not in out:
            raise TwinError(400, 20001, f"Missing required parameter {name} in the post body")
    return out


async def read(request: Request, form: Form) -> dict[str, str | list[str]]:
    """The form body of ``request`` checked against ``form``."""
    raw = await request.body()
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise invalid("The request body is not UTF-8 form data") from None
    return check(form, pairs)
