"""The webhooks the twin sends, signed and retried as Twilio sends them.

- Form webhooks (messaging, voice, status callbacks, Real-Time Transcription): POST
  ``application/x-www-form-urlencoded``, ``X-Twilio-Signature`` = twilio's
  ``RequestValidator.compute_signature(url, params)`` (the URL plus the parameters sorted by
  name), or for a webhook configured as GET the parameters appended to the URL's query and the
  signature over that URL alone.
- JSON webhooks (Event Streams sinks): ``bodySHA256`` (hex SHA-256 of the raw body) added to the
  URL's query, the signature over that URL with no parameters.
- Signed with the account's primary auth token (``TWILIO_AUTH_TOKEN`` of the twin's settings;
  without one, an empty key: the twin then accepts any credentials anyway).
- ``I-Twilio-Idempotency-Token``: one value per delivery, the same on its retry.
- 15 s timeout; one retry after a connection failure, Twilio's default (``rc=1``, ``rp=ct``):
  an HTTP error answer or a read timeout is not retried, as Twilio does not by default. Two
  products differ, and the twin plays them as documented: Real-Time Transcription callbacks are
  retried up to 3 times on a 5xx, 408, 425 or 429 answer (or no connection; Twilio then logs
  17580), and Event Streams sinks must answer within 5 s (their 4-hour backoff is not played:
  one retry, as above).
- Every attempt is appended to the store's ``deliveries`` (``/_twin/state``) with the answer it
  got: ``status`` and the first 2,000 characters of the answer, or ``error`` (what a failed
  attempt ran into), as Twilio's debugger would show it.
"""
from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from twilio.request_validator import RequestValidator

from service.twin.store import Json, Store
from workers.foundations import log

logger = log.get_logger("threadline.twin.webhooks")

TIMEOUT_SECONDS = 15.0
RETRIES = 1
SINK_TIMEOUT_SECONDS = 5.0
TRANSCRIPTION_RETRIES = 3
_RETRIED_ANSWERS = frozenset({408, 425, 429})  # and every 5xx, for transcription callbacks
_KEEP_ANSWER = 2000


def with_query(url: str, pairs: list[tuple[str, str]]) -> str:
    """``url`` with ``pairs`` appended to its query (its fragment, Twilio's overrides, dropped)."""
    parts = urlsplit(url)
    extra = urlencode(pairs)
    query = "&".join(q for q in (parts.query, extra) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


class Sender:
    """Sends, signs, retries and records; one per twin (its httpx client made on first use)."""

    def __init__(self, store: Store, auth_token: str | None,
                 timeout: float = TIMEOUT_SECONDS) -> None:
        self.store = store
        self.validator = RequestValidator(auth_token or "")
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        return self._client

    def _timeout(self, kind: str) -> float:
        return min(self.timeout, SINK_TIMEOUT_SECONDS) if kind == "event_streams" else self.timeout

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def form(self, kind: str, url: str, params: dict[str, str],
                   method: str = "POST") -> Json:
        """Send a form webhook; the last attempt's record (``status`` or ``error``)."""
        if method == "GET":
            target = with_query(url, list(params.items()))
            signature = self.validator.compute_signature(target, {})
            return await self._send(kind, "GET", target, signature, None, None, params)
        target = with_query(url, [])
        signature = self.validator.compute_signature(target, params)
        return await self._send(kind, "POST", target, signature, urlencode(params).encode(),
                                "application/x-www-form-urlencoded", params)

    async def json(self, kind: str, url: str, body: str) -> Json:
        """Send a JSON webhook signed over ``bodySHA256`` (Event Streams)."""
        digest = hashlib.sha256(body.encode()).hexdigest()
        target = with_query(url, [("bodySHA256", digest)])
        signature = self.validator.compute_signature(target, {})
        return await self._send(kind, "POST", target, signature, body.encode(),
                                "application/json", body)

    async def _send(self, kind: str, method: str, url: str, signature: str,
                    content: bytes | None, content_type: str | None, payload: Any) -> Json:
        token = uuid.uuid4().hex
        headers = {"X-Twilio-Signature": signature, "I-Twilio-Idempotency-Token": token,
                   "User-Agent": "TwilioProxy/1.1"}
        if content_type:
            headers["Content-Type"] = content_type
        record: Json = {}
        timeout = self._timeout(kind)
        retries = TRANSCRIPTION_RETRIES if kind == "transcription" else RETRIES
        for attempt in range(1, retries + 2):
            record = {"kind": kind, "method": method, "url": url, "attempt": attempt,
                      "idempotency_token": token, "ts": round(time.time(), 3)}
            record["body" if isinstance(payload, str) else "params"] = payload
            started = time.monotonic()
            retry = False
            try:
                answer = await self._http().request(method, url, content=content,
                                                    headers=headers, timeout=timeout)
                record["status"] = answer.status_code
                record["answer"] = answer.text[:_KEEP_ANSWER]
                record["content_type"] = answer.headers.get("content-type")
                retry = kind == "transcription" and (answer.status_code >= 500
                                                     or answer.status_code in _RETRIED_ANSWERS)
            except httpx.ConnectError as exc:
                record["error"] = f"connection failed: {exc.__class__.__name__}"
                retry = True
            except httpx.TimeoutException as exc:
                record["error"] = f"timed out after {timeout:g}s: {exc.__class__.__name__}"
                retry = isinstance(exc, httpx.ConnectTimeout)
            except httpx.HTTPError as exc:
                record["error"] = f"request failed: {exc.__class__.__name__}"
            record["duration_ms"] = round((time.monotonic() - started) * 1000)
            self.store.deliveries.append(record)
            if not retry:
                break
        if "error" in record:
            logger.warning("twin webhook failed", extra={"kind": kind, "error": record["error"]})
        return record
