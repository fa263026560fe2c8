"""The webhook endpoints Twilio calls (DESIGN §3): check, dedupe, log, answer in milliseconds.

A delivery is answered 200 ``<Response/>`` only once it is durably in Redis (or, with a spool
directory, on local disk); every other answer writes nothing to the log and counts
``webhooks|<kind>|<outcome>`` (outcomes: :data:`workers.eventlog.OUTCOMES`). The happy path
costs one Redis round trip — the append script, which counts ``accepted``/``duplicate``
itself (``service.ingress`` holds the per-process state and the answers).

Checks, in order: method (405), Content-Type (415), size by Content-Length and by counting the
body as it streams (413), decoding (400), signature (403), repeated or missing parameters
(400). The kind label is the webhook kind (``message``, ``message_status``, ``call_status``,
``transcription``), ``event_streams`` for a sink delivery refused as a whole, ``unknown`` for a
path that is not a webhook.
"""
from __future__ import annotations

import os
import time

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from service import eventstreams
from service.ingress import TWIML_OK, Ingress, running
from service.signatures import SIGNATURE_HEADER
from service.spool import Item
from service.webhook_params import (FORM_TYPE, JSON_TYPE, Refused, bad, check_length, parse_pairs,
                                    require, require_type, single_valued, too_large)
from workers import eventlog, log
from workers.events import (CALL_STATUS, MESSAGE, MESSAGE_STATUS, TRANSCRIPTION, LogEntry,
                            dedupe_key, shard_of)
from workers.settings import MAX_WEBHOOK_BODY

EVENT_STREAMS = "event_streams"
UNKNOWN = "unknown"
__all__ = ["routes", "running", "read_body", "FORM_HOOKS", "EVENTS_PATH"]

# path → (kind, allowed methods)
FORM_HOOKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "/webhooks/twilio/messaging": (MESSAGE, ("GET", "POST")),
    "/webhooks/twilio/messaging/status": (MESSAGE_STATUS, ("POST",)),
    "/webhooks/twilio/voice/status": (CALL_STATUS, ("POST",)),
    "/webhooks/twilio/voice/transcription": (TRANSCRIPTION, ("POST",)),
}
EVENTS_PATH = "/webhooks/twilio/events"
# Routed to the endpoints (not refused by the router) so that a wrong method is counted.
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _ingress(request: Request) -> Ingress:
    return request.app.state.ingress


async def read_body(request: Request, limit: int = MAX_WEBHOOK_BODY) -> bytes:
    """The body, refused (413) as soon as it passes ``limit`` whatever Content-Length claimed."""
    check_length(request.headers.get("content-length"), limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise bad("body truncated: the client went away") from None
    return b"".join(chunks)


def _method_not_allowed() -> Refused:
    return Refused(405, eventlog.METHOD_NOT_ALLOWED, "method not allowed")


def _form_endpoint(kind: str, methods: tuple[str, ...]):
    async def endpoint(request: Request) -> Response:
        ingress = _ingress(request)
        token = log.correlation_id.set(os.urandom(8).hex())
        try:
            return await _form_delivery(ingress, request, kind, methods)
        except Refused as refusal:
            headers = {"Allow": ", ".join(methods)} if refusal.status == 405 else None
            return ingress.refuse(kind, refusal, headers)
        finally:
            log.correlation_id.reset(token)

    endpoint.__name__ = f"webhook_{kind}"
    return endpoint


async def _form_delivery(ingress: Ingress, request: Request, kind: str,
                         methods: tuple[str, ...]) -> Response:
    method = request.method
    if method not in methods:
        raise _method_not_allowed()
    raw_query = request.scope.get("query_string") or b""
    if method == "GET":
        pairs = parse_pairs(raw_query, "query")
        query_pairs: list[tuple[str, str]] = []
        signed_pairs: list[tuple[str, str]] = []  # a GET signs the URL alone
    else:
        require_type(request.headers.get("content-type"), FORM_TYPE)
        pairs = parse_pairs(await read_body(request), "body")
        query_pairs = parse_pairs(raw_query, "query")
        signed_pairs = pairs
    account = next((v for n, v in pairs if n == "AccountSid"), None)
    url = ingress.signatures.url(request.scope, request.headers)
    if not ingress.signatures.check_form(url, signed_pairs, request.headers.get(SIGNATURE_HEADER),
                                         account):
        raise Refused(403, eventlog.FORGED, "missing or invalid X-Twilio-Signature")
    params = single_valued(pairs, "query" if method == "GET" else "body")
    query = single_valued(query_pairs, "query")
    require(kind, params)
    entry = LogEntry(kind, int(time.time() * 1000), account or "", params, query,
                     log.correlation_id.get() or "")
    item = (entry, dedupe_key(kind, params), shard_of(kind, params, ingress.settings.shards))
    return await ingress.store([item], kind)


async def events_endpoint(request: Request) -> Response:
    """``POST /webhooks/twilio/events``: an Event Streams sink delivery (JSON CloudEvents)."""
    ingress = _ingress(request)
    token = log.correlation_id.set(os.urandom(8).hex())
    try:
        return await _events_delivery(ingress, request)
    except Refused as refusal:
        headers = {"Allow": "POST"} if refusal.status == 405 else None
        return ingress.refuse(EVENT_STREAMS, refusal, headers)
    finally:
        log.correlation_id.reset(token)


async def _events_delivery(ingress: Ingress, request: Request) -> Response:
    if request.method != "POST":
        raise _method_not_allowed()
    require_type(request.headers.get("content-type"), JSON_TYPE)
    body = await read_body(request)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("body is not valid UTF-8") from None
    try:
        doc: object = eventstreams.parse_body(text)
    except Refused as refusal:
        doc = refusal  # reported after the signature check: strangers learn nothing
    url = ingress.signatures.url(request.scope, request.headers)
    if not ingress.signatures.check_json(url, text, request.headers.get(SIGNATURE_HEADER),
                                         eventstreams.account_hint(doc)):
        raise Refused(403, eventlog.FORGED, "missing or invalid X-Twilio-Signature")
    if isinstance(doc, Refused):
        raise doc
    assert isinstance(doc, list)
    mapped = [eventstreams.map_event(ev, i) for i, ev in enumerate(doc)]
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
        return Response(TWIML_OK, media_type="text/xml")
    return await ingress.store(items, EVENT_STREAMS)


async def not_found(request: Request) -> Response:
    """An unknown path under /webhooks/: a misconfigured webhook URL, counted so it shows."""
    return _ingress(request).refuse(UNKNOWN, Refused(404, eventlog.NOT_FOUND, "no such webhook"))


def routes() -> list[Route]:
    """The webhook routes; every method is routed here so that a 405 is counted too."""
    out = [Route(path, _form_endpoint(kind, methods), methods=ALL_METHODS)
           for path, (kind, methods) in FORM_HOOKS.items()]
    out.append(Route(EVENTS_PATH, events_endpoint, methods=ALL_METHODS))
    out.append(Route("/webhooks/{rest:path}", not_found, methods=ALL_METHODS))
    return out
