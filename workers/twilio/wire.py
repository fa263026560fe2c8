"""What crosses the wire between threadline and Twilio's APIs, apart from the transport.

:class:`V2Error` (what a failed call tells its caller and the dead-letter stream),
:class:`Accepted` (a 202 from a control-plane write), :func:`strip_nulls` (threadline's
requests never carry a JSON ``null``) and the readers of Twilio's answers. Kept apart from
:mod:`workers.twilio.client` so the client module holds only the calls and their retries.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from workers.foundations.errors import Permanent
from workers.twilio import backoff
from workers.twilio.errors import is_conversation_closed


class V2Error(Permanent):
    """A Twilio API call that did not succeed, after the retries it deserved.

    ``status`` is None when no HTTP answer came (timeout, connection refused). ``reason`` is
    the dead-letter slug: ``v2_rejected`` (a final 4xx), ``retries_exhausted`` (transient to the
    end) or ``v2_bad_response`` (a 2xx without the fields it must have). ``message`` is
    Twilio's own error text or the exception class: never a request body.
    """

    def __init__(self, status: int | None, code: int | None, message: str, *, transient: bool,
                 uncertain: bool = False, attempts: int = 1, route: str = "",
                 body: dict | None = None, conflicting_id: str | None = None,
                 reason: str | None = None) -> None:
        self.status, self.code, self.message = status, code, message
        self.transient, self.uncertain, self.attempts = transient, uncertain, attempts
        self.route, self.body, self.conflicting_id = route, body, conflicting_id
        self.reason = reason or ("retries_exhausted" if transient else "v2_rejected")
        super().__init__(str(self))

    def __str__(self) -> str:
        status = self.status if self.status is not None else "no answer"
        code = f" code {self.code}" if self.code is not None else ""
        return f"{self.route}: {status}{code}: {self.message} (attempts {self.attempts})"

    @property
    def conversation_closed(self) -> bool:
        """Twilio refused a write because the conversation is CLOSED (DESIGN §4)."""
        return self.status is not None and is_conversation_closed(self.status, self.body)


@dataclass(frozen=True)
class Accepted:
    """A 202 from a control-plane write: the operation to follow."""

    operation_id: str
    status_url: str
    related: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None


def strip_nulls(value: Any) -> Any:
    """``value`` without any ``None`` (dict values or list items), recursively."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [strip_nulls(v) for v in value if v is not None]
    return value


class Answer(Protocol):
    """What threadline reads of an HTTP answer: an ``httpx.Response`` or the engine's
    :class:`workers.twilio.transport.Reply` (the engine's senders)."""

    @property
    def status_code(self) -> int: ...

    @property
    def reason_phrase(self) -> str: ...

    @property
    def headers(self) -> Any: ...

    def json(self) -> Any: ...


def json_or_none(resp: Answer) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def operation_id(ref: str) -> str:
    if ref.startswith(("http://", "https://")):
        return urlsplit(ref).path.rstrip("/").rsplit("/", 1)[-1]
    return ref


def accepted(resp: Answer, route: str) -> Accepted:
    """Read a 202: ``statusUrl`` (body), ``Operation-Id`` and ``Retry-After`` (headers)."""
    data = json_or_none(resp)
    data = data if isinstance(data, dict) else {}
    status_url = data.get("statusUrl") or resp.headers.get("Location") or ""
    op_id = resp.headers.get("Operation-Id") or (operation_id(status_url) if status_url else "")
    if not op_id:
        raise V2Error(resp.status_code, None, "202 without statusUrl or Operation-Id",
                      transient=False, route=route, reason="v2_bad_response")
    related = data.get("related") if isinstance(data.get("related"), dict) else {}
    return Accepted(op_id, status_url, related or {},
                    backoff.parse_retry_after(resp.headers.get("Retry-After")))
