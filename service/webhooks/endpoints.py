"""The webhook endpoints Twilio calls (DESIGN §3): check, dedupe, log, answer in milliseconds.

A delivery is answered 200 ``<Response/>`` only once it is durably in Redis (or, with a spool
directory, on local disk); every other answer writes nothing to the log and counts
``webhooks|<kind>|<outcome>`` (outcomes: :data:`workers.eventlog.writer.OUTCOMES`). The happy path
costs one Redis round trip — the append script, which counts ``accepted``/``duplicate``
itself (``service.webhooks.ingress`` holds the per-process state and the answers).

Checks, in order: method (405), Content-Type (415), size by Content-Length and by counting the
body as it streams (413), decoding (400), signature (403), repeated or missing parameters
(400). The kind label is the webhook kind (``message``, ``message_status``, ``call_status``,
``transcription``, ``classic``), ``event_streams`` for a sink delivery refused as a whole, ``unknown`` for a
path that is not a webhook.

For a number ``threadline connect --forward`` pointed here, the messaging, incoming-call and
call-status webhooks are logged as above and then relayed to the operator's application, whose
answer goes back to Twilio instead of ``<Response/>`` (:mod:`service.webhooks.forwarding`) — for
a call a VOICE rule captures, with Real-Time Transcription started ahead of the application's
verbs (:mod:`service.webhooks.voice_start`).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from service.webhooks import eventstreams
from service.webhooks.ingress import OK, TWIML_OK, Ingress, running
from service.webhooks.params import (
    FORM_TYPE,
    JSON_TYPE,
    Refused,
    bad,
    check_length,
    parse_pairs,
    require,
    require_type,
    single_valued,
    too_large,
)
from service.webhooks.signatures import SETTINGS_HEADER, SIGNATURE_HEADER, UntrustedUrl
from service.webhooks.slowbodies import SlowBodies
from service.webhooks.spool import Item
from workers import eventlog
from workers.eventlog.entries import (
    CALL_STATUS,
    CLASSIC,
    MESSAGE,
    MESSAGE_STATUS,
    TRANSCRIPTION,
    LogEntry,
    dedupe_key,
    shard_of,
)
from workers.foundations import log
from workers.foundations.settings import MAX_WEBHOOK_BODY
from workers.twilio import upstreams

EVENT_STREAMS = "event_streams"
UNKNOWN = "unknown"
__all__ = ["routes", "running", "read_body", "FORM_HOOKS", "FORWARDED", "EVENTS_PATH"]

# path → (kind, allowed methods)
FORM_HOOKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "/webhooks/twilio/messaging": (MESSAGE, ("GET", "POST")),
    "/webhooks/twilio/messaging/status": (MESSAGE_STATUS, ("POST",)),
    # The incoming-call webhook (a number's VoiceUrl): logged as the call's first status event.
    "/webhooks/twilio/voice": (CALL_STATUS, ("GET", "POST")),
    "/webhooks/twilio/voice/status": (CALL_STATUS, ("POST",)),
    "/webhooks/twilio/voice/transcription": (TRANSCRIPTION, ("POST",)),
    "/webhooks/twilio/conversations": (CLASSIC, ("POST",)),
}
# The webhooks a number's own fields send (workers.twilio.upstreams' roles): for a number
# `threadline connect --forward` recorded, these are relayed to the application after logging.
FORWARDED: dict[str, str] = {
    "/webhooks/twilio/messaging": upstreams.MESSAGING,
    "/webhooks/twilio/voice": upstreams.VOICE,
    "/webhooks/twilio/voice/status": upstreams.VOICE_STATUS,
}
EVENTS_PATH = "/webhooks/twilio/events"
# Twilio does not publish Event Streams' batch size; a batch is up to MAX_EVENTS CloudEvents of
# ~1 KiB each, so the sink takes 1 MiB where a form webhook takes 64 KiB (a refused batch would
# be retried, and refused, until Event Streams gives up on it).
EVENTS_MAX_BODY = 1024 * 1024
# Routed to the endpoints (not refused by the router) so that a wrong method is counted.
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# The request headers a webhook reads; the rest are never decoded.
_HEADERS = frozenset(name.encode() for name in (
    "content-type", "content-length", SIGNATURE_HEADER, SETTINGS_HEADER, "host",
    "x-forwarded-proto", "x-forwarded-host"))


def _headers(scope: Scope) -> dict[str, str]:
    """The headers a webhook reads, first value of each (as Starlette's ``Headers.get``)."""
    out: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in _HEADERS:
            out.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return out


async def read_body(receive: Receive, content_length: str | None,
                    limit: int = MAX_WEBHOOK_BODY, slow: SlowBodies | None = None) -> bytes:
    """The body, refused (413) as soon as it passes ``limit`` whatever Content-Length claimed,
    and (408) when it has not all arrived within THREADLINE_BODY_TIMEOUT_SECONDS (``slow``):
    a client that trickles a body must not hold a connection and a task for ever."""
    check_length(content_length, limit)
    if slow is None:
        return await _read(receive, limit)
    task = slow.begin()
    try:
        return await _read(receive, limit)
    except asyncio.CancelledError:
        if not slow.expired(task):
            raise
        raise Refused(408, eventlog.TIMEOUT,
                      f"request body not received within {slow.timeout:g} s") from None
    finally:
        slow.end(task)


async def _read(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            raise bad("body truncated: the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        if not message.get("more_body", False):
            if not chunks:
                return chunk  # the usual case: the whole body in one message
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)


Deliver = Callable[[Ingress, Scope, dict[str, str], Receive], Awaitable[Response]]
_URL_OUTCOMES = {400: eventlog.BAD_REQUEST, 403: eventlog.FORGED, 503: eventlog.UNCONFIGURED}


def _signed_url(ingress: Ingress, scope: Scope, headers: dict[str, str]) -> str:
    """The URL Twilio signed, or the refusal when it cannot be trusted (service.webhooks.signatures)."""
    try:
        return ingress.signatures.url(scope, headers)
    except UntrustedUrl as exc:
        raise Refused(exc.status, _URL_OUTCOMES[exc.status], exc.message) from None


class Webhook:
    """One webhook endpoint as a plain ASGI app.

    Why not a Starlette ``Request`` → ``Response`` function: this is the one path every
    delivery takes, and the request and response objects (header views, the wrappers around
    the endpoint) cost a measurable share of a webhook's CPU for nothing a webhook uses. The
    endpoint reads the few headers it needs from the scope, the body from ``receive``, and
    answers 200 with one prebuilt response.
    """

    def __init__(self, label: str, methods: tuple[str, ...], deliver: Deliver) -> None:
        self.label = label
        self.methods = methods
        self.deliver = deliver
        self.__name__ = f"webhook_{label}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ingress: Ingress = scope["app"].state.ingress
        token = log.correlation_id.set(log.new_correlation_id())
        try:
            if scope["method"] not in self.methods:
                raise Refused(405, eventlog.METHOD_NOT_ALLOWED, "method not allowed")
            response = await self.deliver(ingress, scope, _headers(scope), receive)
        except Refused as refusal:
            extra = {"Allow": ", ".join(self.methods)} if refusal.status == 405 else None
            response = ingress.refuse(self.label, refusal, extra)
        finally:
            log.correlation_id.reset(token)
        if response is OK:  # what Response.__call__ sends, without its per-call set-up
            await send({"type": "http.response.start", "status": 200, "headers": OK.raw_headers})
            await send({"type": "http.response.body", "body": TWIML_OK})
        else:
            await response(scope, receive, send)


def _form_delivery(kind: str, role: str | None) -> Deliver:
    async def deliver(ingress: Ingress, scope: Scope, headers: dict[str, str],
                      receive: Receive) -> Response:
        method = scope["method"]
        raw_query = scope.get("query_string") or b""
        raw_body: bytes | None = None
        if method == "GET":
            pairs = parse_pairs(raw_query, "query")
            query_pairs: list[tuple[str, str]] = []
            signed_pairs: list[tuple[str, str]] = []  # a GET signs the URL alone
        else:
            require_type(headers.get("content-type"), FORM_TYPE)
            raw_body = await read_body(receive, headers.get("content-length"), slow=ingress.slow_bodies)
            pairs = parse_pairs(raw_body, "body")
            query_pairs = parse_pairs(raw_query, "query") if raw_query else []
            signed_pairs = pairs
        account = next((v for n, v in pairs if n == "AccountSid"), None)
        url = _signed_url(ingress, scope, headers)
        if not ingress.signatures.check_form(url, signed_pairs, headers.get(SIGNATURE_HEADER),
                                             account, headers.get(SETTINGS_HEADER)):
            raise Refused(403, eventlog.FORGED, "missing or invalid X-Twilio-Signature")
        target = ingress.relay.upstream(role, pairs) if role else None
        if target is None or role is None:
            return await _log(ingress, kind, method, account, pairs, query_pairs)
        # A forwarded number (service.webhooks.forwarding): logged as any delivery, then relayed
        # whatever the log said — a delivery Twilio signed always reaches the application.
        try:
            await _log(ingress, kind, method, account, pairs, query_pairs)
        except Refused as refusal:
            ingress.refuse(kind, refusal)
        answer = await ingress.relay.relay(role, target, scope, pairs, raw_body)
        if role == upstreams.VOICE:  # passive voice: a captured call's transcription starts here
            answer = await ingress.voice_start.answer(pairs, url, answer)
        return answer

    return deliver


async def _log(ingress: Ingress, kind: str, method: str, account: str | None,
               pairs: list[tuple[str, str]], query_pairs: list[tuple[str, str]]) -> Response:
    """Check the parameters and append the delivery to the log: 200, or 503 when Redis is away."""
    params = single_valued(pairs, "query" if method == "GET" else "body")
    query = single_valued(query_pairs, "query")
    require(kind, params)
    entry = LogEntry(kind, int(time.time() * 1000), account or "", params, query,
                     log.correlation_id.get() or "")
    item = (entry, dedupe_key(kind, params), shard_of(kind, params, ingress.settings.shards))
    return await ingress.store([item], kind)


async def _events_delivery(ingress: Ingress, scope: Scope, headers: dict[str, str],
                           receive: Receive) -> Response:
    """``POST /webhooks/twilio/events``: an Event Streams sink delivery (JSON CloudEvents)."""
    require_type(headers.get("content-type"), JSON_TYPE)
    body = await read_body(receive, headers.get("content-length"), EVENTS_MAX_BODY,
                           ingress.slow_bodies)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("body is not valid UTF-8") from None
    try:
        doc: object = eventstreams.parse_body(text)
    except Refused as refusal:
        doc = refusal  # reported after the signature check: strangers learn nothing
    url = _signed_url(ingress, scope, headers)
    hint = eventstreams.account_hint(doc)
    if not ingress.signatures.check_json(url, text, headers.get(SIGNATURE_HEADER),
                                         hint, headers.get(SETTINGS_HEADER)):
        raise Refused(403, eventlog.FORGED, "missing or invalid X-Twilio-Signature")
    if isinstance(doc, Refused):
        raise doc
    assert isinstance(doc, list)
    # The token that signed the batch vouches for its own account only: one event of an account
    # another token signs for (a subaccount's token and the parent's events, or the reverse)
    # makes the whole batch a forgery.
    signer = ingress.signatures.signer(hint)
    claimed = (eventstreams.account_hint([ev]) for ev in doc)
    if not headers.get(SETTINGS_HEADER) and any(
            a is not None and ingress.signatures.signer(a) != signer for a in claimed):
        raise Refused(403, eventlog.FORGED, "an event of an account the signing token does not sign for")
    # One event Twilio signed but threadline cannot read must not cost the others: it is
    # dead-lettered with its reason (Event Streams would otherwise retry the whole batch
    # until it gives up, losing the good events with the bad one).
    mapped: list[eventstreams.Mapped | None] = []
    broken: list[tuple[object, str]] = []
    for i, ev in enumerate(doc):
        try:
            mapped.append(eventstreams.map_event(ev, i))
        except Refused as refusal:
            broken.append((ev, refusal.reason))
    if broken and not await ingress.dead_letter_events(broken):
        return ingress.unavailable(EVENT_STREAMS)
    now_ms = int(time.time() * 1000)
    cid = log.correlation_id.get() or ""
    items: list[Item] = []
    for m in mapped:
        if m is None:
            continue
        entry = LogEntry(m.kind, now_ms, m.params.get("AccountSid", ""), m.params, {}, cid)
        items.append((entry, m.dedupe_key, shard_of(m.kind, m.params, ingress.settings.shards)))
    ignored = sum(m is None for m in mapped)
    if ignored:
        ingress.count(EVENT_STREAMS, eventlog.IGNORED, ignored)
    if not items:
        return OK
    return await ingress.store(items, EVENT_STREAMS)


async def not_found(request: Request) -> Response:
    """An unknown path under /webhooks/: a misconfigured webhook URL, counted so it shows."""
    ingress: Ingress = request.app.state.ingress
    return ingress.refuse(UNKNOWN, Refused(404, eventlog.NOT_FOUND, "no such webhook"))


# The endpoints by exact path: one instance each per process (they hold no per-app state;
# the app reaches them first, see service.app.ThreadlineApp, and its router lists them too).
ENDPOINTS: dict[str, Webhook] = {
    **{path: Webhook(kind, methods, _form_delivery(kind, FORWARDED.get(path)))
       for path, (kind, methods) in FORM_HOOKS.items()},
    EVENTS_PATH: Webhook(EVENT_STREAMS, ("POST",), _events_delivery),
}


def routes() -> list[Route]:
    """The webhook routes; every method is routed here so that a 405 is counted too."""
    out = [Route(path, endpoint, methods=ALL_METHODS) for path, endpoint in ENDPOINTS.items()]
    out.append(Route("/webhooks/{rest:path}", not_found, methods=ALL_METHODS))
    return out
