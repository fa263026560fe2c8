"""Start ``threadline web`` for a test and send it Twilio deliveries over real HTTP.

Fixtures
- ``start_web(**env)``: a factory; each call starts one ``threadline web`` subprocess on a free
  port (REDIS_URL = this run's database, THREADLINE_PUBLIC_URL = the fixtures' public URL, the
  fixtures' account and token, the admin token) and returns a :class:`Web`. ``env`` adds or
  overrides variables (``THREADLINE_TWILIO_BASE_URL=twin.url``, ``THREADLINE_SHARDS="4"``…);
  a value of ``None`` blanks one. Every server it started is stopped at teardown.
- ``web``: one server with the defaults; ``module_web``: one shared by a test module.

Helpers (plain functions, import them: ``from tests.web_fixtures import post_signed``)
- ``load_fixture(name)``: the deliveries of ``../shared/fixtures/webhooks/<name>`` (``.json`` optional).
- ``post_fixture(web, delivery)``: replays a recorded delivery with its original signature.
- ``log_entries(redis_client)``, ``counters(redis_client)``, ``wait_counter(…)``: what was logged
  and counted.
- ``sign(url, params)`` / ``post_signed(web, path, params, query=…)``: new, validly signed
  deliveries, for tests that fabricate traffic. ``inbound_message``, ``message_status``,
  ``call_status`` and ``transcription`` build realistic parameter sets; ``new_sid`` makes SIDs.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from twilio.request_validator import RequestValidator

from tests.conftest import ACCOUNT_SID, ADMIN_TOKEN, AUTH_TOKEN, FIXTURES, PUBLIC_URL
from tests.procs import Proc, free_port

FORM = "application/x-www-form-urlencoded"


@dataclass
class Web:
    """One running ``threadline web``: its base URL, its process and the env it got."""

    url: str
    proc: Proc
    env: dict[str, str]
    client: httpx.Client = field(repr=False)

    def get(self, path: str, **kw) -> httpx.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        return self.client.post(path, **kw)

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.env.get('THREADLINE_ADMIN_TOKEN', ADMIN_TOKEN)}"}

    def stop(self) -> int | None:
        self.client.close()
        if self.proc.popen.poll() is None:
            return self.proc.stop()
        return self.proc.popen.returncode


def web_env(redis_url: str, **env: str | None) -> dict[str, str]:
    """The environment ``start_web`` gives the server (also useful for other processes)."""
    base: dict[str, str | None] = {
        "REDIS_URL": redis_url,
        "THREADLINE_PUBLIC_URL": PUBLIC_URL,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "THREADLINE_ADMIN_TOKEN": ADMIN_TOKEN,
        "THREADLINE_LOG_LEVEL": "INFO",
        "THREADLINE_ACK_DURABILITY": "none",  # the shared test Redis keeps nothing (tests/conftest.py)
    }
    base.update(env)
    # None blanks a variable (an empty value reads as unset), so the runner's own environment
    # cannot leak it into the server.
    return {k: ("" if v is None else v) for k, v in base.items()}


@pytest.fixture
def start_web(redis_url: str) -> Iterator[Callable[..., Web]]:
    started: list[Web] = []

    def start(**env: str | None) -> Web:
        port = free_port()
        full = web_env(redis_url, **env)
        proc = Proc(["web", "--port", str(port)], full, ready_url=f"http://127.0.0.1:{port}/healthz")
        url = f"http://127.0.0.1:{port}"
        w = Web(url=url, proc=proc, env=full, client=httpx.Client(base_url=url, timeout=10))
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


@pytest.fixture
def web(start_web: Callable[..., Web]) -> Web:
    return start_web()


@pytest.fixture(scope="module")
def module_web(redis_url: str) -> Iterator[Web]:
    """One default server for a whole test module (starting one takes a second or two).

    It keeps no state between tests but the refusal counters it has not flushed yet (about a
    second's worth): a test that asserts exact counters waits for them (``wait_counter``).
    """
    port = free_port()
    full = web_env(redis_url)
    proc = Proc(["web", "--port", str(port)], full, ready_url=f"http://127.0.0.1:{port}/healthz")
    url = f"http://127.0.0.1:{port}"
    w = Web(url=url, proc=proc, env=full, client=httpx.Client(base_url=url, timeout=10))
    yield w
    w.stop()


# --- recorded deliveries ----------------------------------------------------------------------

def load_fixture(name: str) -> list[dict]:
    """The deliveries of one fixture file, in the order Twilio sent them."""
    path = FIXTURES / (name if name.endswith(".json") else f"{name}.json")
    return json.loads(path.read_text())


def all_fixture_deliveries() -> list[tuple[str, int, dict]]:
    """(file name, index, delivery) for every delivery of every fixture file."""
    out = []
    for path in sorted(FIXTURES.glob("*.json")):
        for i, d in enumerate(json.loads(path.read_text())):
            out.append((path.name, i, d))
    return out


def _path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def delivery_request(delivery: Mapping) -> tuple[str, str, dict[str, str], bytes | None]:
    """(method, path+query, headers, body) of a recorded delivery, as Twilio sent it."""
    headers = dict(delivery.get("headers") or {})
    body: bytes | None = None
    if delivery["method"] == "POST":
        headers["Content-Type"] = delivery.get("content_type") or FORM
        if delivery.get("body") is not None:
            body = delivery["body"].encode("utf-8")
        else:
            body = urlencode(list((delivery.get("params") or {}).items())).encode()
    return delivery["method"], _path_and_query(delivery["url"]), headers, body


def post_fixture(web: Web, delivery: Mapping, *, headers: Mapping[str, str] | None = None,
                 ) -> httpx.Response:
    """Send one recorded delivery (POST or GET) to ``web`` with its original signature.

    The server runs with THREADLINE_PUBLIC_URL=https://capture.example.com, so the URL it
    validates is the one Twilio signed although the request goes to 127.0.0.1.
    """
    method, target, hdrs, body = delivery_request(delivery)
    hdrs.update(headers or {})
    return web.client.request(method, target, headers=hdrs, content=body)


# --- new, validly signed deliveries -----------------------------------------------------------

def sign(url: str, params: Mapping[str, str] | Sequence[tuple[str, str]] | str | None = None,
         token: str = AUTH_TOKEN) -> str:
    """X-Twilio-Signature of a delivery to the public ``url`` (form params, or {} for GET).

    A ``str`` is a JSON body: sign ``url`` (which must carry its ``bodySHA256``) alone.
    """
    validator = RequestValidator(token)
    if params is None or isinstance(params, str):
        return validator.compute_signature(url, {})
    if not isinstance(params, Mapping):
        pairs = list(params)
        if len({n for n, _ in pairs}) == len(pairs):
            params = dict(pairs)
        else:  # repeated names: every value is signed
            from starlette.datastructures import ImmutableMultiDict

            params = ImmutableMultiDict(pairs)
    return validator.compute_signature(url, params)


def public_url(path: str, query: Mapping[str, str] | str | None = None) -> str:
    q = query if isinstance(query, str) else urlencode(list((query or {}).items()))
    return f"{PUBLIC_URL}{path}" + (f"?{q}" if q else "")


def post_signed(web: Web, path: str, params: Mapping[str, str] | Sequence[tuple[str, str]],
                *, query: Mapping[str, str] | str | None = None, token: str = AUTH_TOKEN,
                headers: Mapping[str, str] | None = None) -> httpx.Response:
    """POST a new form delivery to ``path`` (e.g. ``/webhooks/twilio/messaging``), signed as
    Twilio would sign it for the public URL (``query`` is part of the signed URL)."""
    url = public_url(path, query)
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    hdrs = {"Content-Type": FORM, "X-Twilio-Signature": sign(url, pairs, token),
            "I-Twilio-Idempotency-Token": uuid.uuid4().hex}
    hdrs.update(headers or {})
    return web.client.post(_path_and_query(url), content=urlencode(pairs).encode(), headers=hdrs)


def get_signed(web: Web, path: str, params: Mapping[str, str], *, token: str = AUTH_TOKEN
               ) -> httpx.Response:
    """A messaging webhook configured as GET: the parameters ride in the signed query."""
    url = public_url(path, params)
    return web.client.get(_path_and_query(url), headers={"X-Twilio-Signature": sign(url, None, token)})


def post_events(web: Web, events: list[dict], *, token: str = AUTH_TOKEN) -> httpx.Response:
    """An Event Streams sink delivery: a JSON array of CloudEvents, signed over bodySHA256."""
    import hashlib

    body = json.dumps(events, separators=(",", ":"))
    url = public_url("/webhooks/twilio/events", {"bodySHA256": hashlib.sha256(body.encode()).hexdigest()})
    return web.client.post(_path_and_query(url), content=body.encode(),
                           headers={"Content-Type": "application/json",
                                    "X-Twilio-Signature": sign(url, body, token)})


# --- reading what ingress wrote ----------------------------------------------------------------

def log_entries(redis_client, shards: int = 16) -> list:
    """Every entry of the event log (all shards), as ``workers.eventlog.entries.LogEntry``."""
    from workers.eventlog.entries import LogEntry
    from workers.foundations import keys

    out = []
    for n in range(shards):
        for _id, fields in redis_client.xrange(keys.events(n)):
            out.append(LogEntry.from_fields(fields))
    return out


def counters(redis_client) -> dict[str, int]:
    """``tl:stats:total`` as {field: count}."""
    from workers.foundations import keys

    return {k.decode(): int(v) for k, v in redis_client.hgetall(keys.STATS_TOTAL).items()}


def wait_counter(redis_client, field: str, want: int, timeout: float = 5.0) -> int:
    """Poll a counter until it reaches ``want`` (refusals are flushed about once a second)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        got = counters(redis_client).get(field, 0)
        if got >= want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


# --- realistic parameter sets -------------------------------------------------------------------

def new_sid(prefix: str) -> str:
    """A made-up 34-character SID: two-letter prefix + 32 hex."""
    return prefix + uuid.uuid4().hex


def inbound_message(from_: str, to: str, body: str = "Hello", *, sid: str | None = None,
                    account: str = ACCOUNT_SID, **extra: str) -> dict[str, str]:
    """An incoming-message webhook (SMS; pass whatsapp:/rcs: addresses for those channels)."""
    sid = sid or new_sid("SM")
    params = {
        "ToCountry": "US", "SmsMessageSid": sid, "NumMedia": "0", "SmsSid": sid,
        "SmsStatus": "received", "Body": body, "To": to, "NumSegments": "1",
        "MessageSid": sid, "AccountSid": account, "From": from_, "ApiVersion": "2010-04-01",
    }
    params.update(extra)
    return params


def message_status(sid: str, status: str, from_: str, to: str, *, account: str = ACCOUNT_SID,
                   **extra: str) -> dict[str, str]:
    """A message status callback (no Body, as Twilio sends it)."""
    params = {
        "SmsSid": sid, "SmsStatus": status, "MessageStatus": status, "To": to,
        "MessageSid": sid, "AccountSid": account, "From": from_, "ApiVersion": "2010-04-01",
    }
    params.update(extra)
    return params


def call_status(call_sid: str, status: str, from_: str, to: str, *, sequence: int = 0,
                direction: str = "inbound", account: str = ACCOUNT_SID, **extra: str
                ) -> dict[str, str]:
    """A call status callback."""
    params = {
        "CallSid": call_sid, "AccountSid": account, "From": from_, "To": to,
        "CallStatus": status, "Direction": direction, "ApiVersion": "2010-04-01",
        "CallbackSource": "call-progress-events", "SequenceNumber": str(sequence),
        "Timestamp": "Mon, 02 Mar 2026 15:04:05 +0000",
    }
    params.update(extra)
    return params


def transcription(call_sid: str, transcription_sid: str, event: str, sequence: int, *,
                  transcript: str | None = None, track: str = "inbound_track",
                  final: bool = True, account: str = ACCOUNT_SID, **extra: str) -> dict[str, str]:
    """A Real-Time Transcription callback (``transcript`` makes a content event's data).

    Stamped now, as Twilio stamps it: the lifecycle counts a conversation's timeouts from its
    communications' ``occurredAt``, and every worker applies them, so a fixed date months back
    closed a test's voice conversation the moment it was made."""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    params = {
        "AccountSid": account, "CallSid": call_sid, "TranscriptionSid": transcription_sid,
        "TranscriptionEvent": event, "SequenceId": str(sequence),
        "Timestamp": stamp, "Track": track, "LanguageCode": "en-US",
    }
    if transcript is not None:
        params["TranscriptionData"] = json.dumps({"transcript": transcript, "confidence": 0.93})
        params["Final"] = "true" if final else "false"
    params.update(extra)
    return params


__all__ = [
    "Web", "web_env", "start_web", "web", "module_web", "load_fixture", "all_fixture_deliveries",
    "delivery_request", "post_fixture", "sign", "public_url", "post_signed", "get_signed",
    "post_events", "new_sid", "inbound_message", "message_status", "call_status",
    "transcription", "log_entries", "counters", "wait_counter",
]
