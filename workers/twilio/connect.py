"""`threadline connect` / `disconnect`: the checks before anything is sent, the client, the report.

Both commands change the operator's Twilio account through Twilio's own APIs with the stock
``twilio.rest.Client`` (its requests rebased by :class:`workers.twilio.rest.RebasingHttpClient`,
so ``THREADLINE_TWILIO_BASE_URL`` reaches the twin or a proxy). The two modes live beside this
module: Event Streams in :mod:`.sinks`, forwarding in :mod:`.numbers`; this one holds what they
share:

- :func:`client` refuses (:class:`ConnectRefused`) without ``THREADLINE_PUBLIC_URL`` (Twilio must
  be told where threadline is) or without credentials, before any request;
- :class:`Report` runs or — with ``--dry-run`` — only describes each change, and turns Twilio's
  refusal of any request into a :class:`ConnectRefused` that says what was asked and what Twilio
  answered (status, code, message: never a credential).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.response import Response
from twilio.rest import Client

from workers.foundations.errors import Permanent
from workers.foundations.settings import Settings
from workers.twilio.client import USER_AGENT
from workers.twilio.rest import RebasingHttpClient

T = TypeVar("T")

# threadline's webhook paths a connected account sends to (DESIGN §3).
EVENTS_PATH = "/webhooks/twilio/events"
MESSAGING_PATH = "/webhooks/twilio/messaging"
VOICE_PATH = "/webhooks/twilio/voice"
VOICE_STATUS_PATH = "/webhooks/twilio/voice/status"
WEBHOOKS_PREFIX = "/webhooks/twilio/"


class ConnectRefused(Permanent):
    """connect/disconnect cannot go on; the message is for the operator. ``exit_code`` 2 for the
    environment (nothing was sent), 1 when Twilio refused a request."""

    reason = "connect_refused"

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def public_url(settings: Settings) -> str:
    if not settings.public_url:
        raise ConnectRefused(
            "THREADLINE_PUBLIC_URL is not set: connect must tell Twilio where threadline is "
            "(e.g. https://capture.example.com)", 2)
    return settings.public_url


def client(settings: Settings) -> Client:
    """The account's REST client; refuses without THREADLINE_PUBLIC_URL or credentials."""
    public_url(settings)
    credentials = settings.api_credentials
    if not settings.twilio_account_sid or credentials is None:
        raise ConnectRefused(
            "no Twilio credentials: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN "
            "(or TWILIO_API_KEY and TWILIO_API_SECRET with TWILIO_ACCOUNT_SID)", 2)
    username, password = credentials
    return Client(username, password, account_sid=settings.twilio_account_sid,
                  http_client=RebasingHttpClient(settings, user_agent=USER_AGENT))


def twilio_said(exc: TwilioException) -> str:
    """What Twilio answered, for the operator: status, code and message (never the request)."""
    if isinstance(exc, TwilioRestException):
        code = f" (code {exc.code})" if exc.code and exc.code != exc.status else ""
        message = (exc.msg or "").strip()
        if message.startswith("Unable to") and ": " in message:  # the SDK's "Unable to … record: "
            message = message.split(": ", 1)[1]
        return f"HTTP {exc.status}{code}: {message}"
    answer = next((a for a in exc.args if isinstance(a, Response)), None)
    if answer is not None:  # a list page Twilio refused: TwilioException("Unable to fetch page", response)
        return _from_answer(answer)
    status, title = getattr(exc, "status", None), getattr(exc, "title", None)
    if status and title:  # TwilioServiceException (RFC 9457 errors)
        detail = getattr(exc, "detail", None)
        return f"HTTP {status}: {title}" + (f" ({detail})" if detail else "")
    return str(exc) or type(exc).__name__


def _from_answer(answer: Response) -> str:
    try:
        body = json.loads(answer.text)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return f"HTTP {answer.status_code}"
    code = body.get("code")
    code_text = f" (code {code})" if code and code != answer.status_code else ""
    return f"HTTP {answer.status_code}{code_text}: {body.get('message', '')}".rstrip(": ")


def points_at(url: str, base: str) -> bool:
    """Whether ``url`` is one of threadline's webhook URLs under ``base``."""
    return bool(url) and url.startswith(base.rstrip("/") + WEBHOOKS_PREFIX)


class Report:
    """Runs (or, in a dry run, describes) each step, and keeps the lines the command prints."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run
        self.lines: list[str] = []
        self.changes = 0

    def note(self, text: str) -> None:
        self.lines.append(text)

    def read(self, what: str, call: Callable[[], T]) -> T:
        """A request that changes nothing: made in a dry run too (the plan depends on it)."""
        return _asking(what, call)

    def change(self, what: str, call: Callable[[], T]) -> T | None:
        """A change: described in a dry run (None), else made and reported."""
        if self.dry_run:
            self.lines.append(f"would {what}")
            return None
        result = _asking(what, call)
        self.changes += 1
        self.lines.append(f"did {what}")
        return result


def _asking(what: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except TwilioException as exc:
        raise ConnectRefused(f"Twilio refused to {what}: {twilio_said(exc)}") from None
    except OSError as exc:  # requests' ConnectionError, timeouts: Twilio was not reached
        raise ConnectRefused(f"could not reach Twilio to {what}: {type(exc).__name__}") from None
