"""The 2010-04-01 API's list envelope: ``{<key>: [...], page, page_size, uri, next_page_uri, …}``.

Unlike v2's ``meta.nextToken``, the core API pages with ``PageSize`` (1…1000, default 50) and
``Page`` (0-based); the stock twilio client follows ``next_page_uri``. Also the RFC 2822 dates
the core API's resources carry.
"""
from __future__ import annotations

import copy
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from service.twin.errors import TwinError, invalid, not_found
from service.twin.store import Json


def rfc2822(when: datetime | None = None) -> str:
    return format_datetime(when or datetime.now(UTC), usegmt=True)


def account(request: Request) -> str:
    """The path's AccountSid, which must be the twin's account (else Twilio's 404)."""
    sid = request.path_params["AccountSid"]
    if sid != request.app.state.store.account_sid:
        raise not_found(request.url.path)
    return sid


def _int(query: Any, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"{name}: must be an integer") from None
    if not low <= value <= high:
        raise TwinError(400, 20001, f"{name}: must be from {low} to {high}")
    return value


def page(key: str, items: list[Json], request: Request) -> Json:
    size = _int(request.query_params, "PageSize", 50, 1, 1000)
    number = _int(request.query_params, "Page", 0, 0, 10**6)
    chunk = items[number * size:(number + 1) * size]
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("Page", "PageSize")]

    def uri(n: int) -> str:
        return request.url.path + "?" + urlencode([*kept, ("PageSize", str(size)), ("Page", str(n))])

    more = (number + 1) * size < len(items)
    return {key: copy.deepcopy(chunk), "page": number, "page_size": size,
            "start": number * size, "end": number * size + max(len(chunk) - 1, 0),
            "uri": uri(number), "first_page_uri": uri(0),
            "next_page_uri": uri(number + 1) if more else None,
            "previous_page_uri": uri(number - 1) if number else None}
