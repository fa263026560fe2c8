"""How a request's body and query are encoded, exactly as httpx encodes them (one rule for
every sender, so the bytes Twilio sees do not depend on the HTTP stack)."""
from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode


def pairs(params: Any) -> list[tuple[str, str]] | None:
    """Query parameters as httpx encodes them: a list value repeats its key."""
    if not params:
        return None
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        for v in value if isinstance(value, (list, tuple)) else (value,):
            out.append((key, str(v)))
    return out


def query(params: Any) -> str:
    """``?a=1&b=2`` for ``params`` (``""`` when there are none)."""
    found = pairs(params)
    return "?" + urlencode(found) if found else ""


def body(json_body: Any, form: Any) -> tuple[bytes | None, str | None]:
    """(bytes, Content-Type) of a JSON body (compact, UTF-8, as httpx's ``json=``) or a form
    (as httpx's ``data=``: a list value repeats its key); (None, None) without either."""
    if json_body is not None:
        return (json.dumps(json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode(),
                "application/json")
    if form is not None:
        return urlencode(form, doseq=True).encode(), "application/x-www-form-urlencoded"
    return None, None


def basic_auth(auth: tuple[str, str]) -> str:
    """The ``Authorization`` value for HTTP Basic credentials."""
    return "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
