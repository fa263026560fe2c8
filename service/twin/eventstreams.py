"""Event Streams: webhook Sinks, Subscriptions with their event types, and what they receive.

API (``/v1/…``, form-encoded, Events v1's ``{<key>: [...], meta: {key, page, …}}`` lists):
Sinks create (``Description``, ``SinkType`` = ``webhook``, ``SinkConfiguration`` = a JSON
object ``{"destination", "method", "batch_events"}``) / list / fetch / delete (204);
Subscriptions create (``Description``, ``SinkSid``, ``Types`` = JSON strings ``{"type",
"schema_version"?}``, repeated) / list (``SinkSid`` filter) / fetch / delete, and a
subscription's SubscribedEvents list. A sink is ``active`` as soon as it is made (the twin skips
Test/Validate); a subscription to an unknown sink is a 400. Other sink types are stored but never
sent to.

:func:`publish` sends one CloudEvent (``specversion`` 1.0, ``id`` ``EZ…``, ``source`` the
resource's URI, ``dataschema``, ``time``, ``data``) to every webhook sink with a subscription
to its type, as a JSON array (a batch of one: the twin sends each event when it happens),
signed with ``bodySHA256`` by :mod:`service.twin.webhooks_out`.

What the twin models of Twilio's rule that call events are "available only when subscribed to
in the original API request or TwiML response": a ``com.twilio.voice.status-callback.call.*``
event exists only for a call status callback Twilio actually made, i.e. one the call asked for
(a number's ``StatusCallback`` → ``completed`` only; a TwiML ``<Number statusCallbackEvent>``
or an API call's ``StatusCallbackEvent`` → the events named). Its ``data`` is
``Voice.WebhookEvent``: that callback's ``request`` (method, url, parameters) and the
``response`` it got. A call with no status callback produces no call events.
"""
from __future__ import annotations

import base64
import copy
import json
import time
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.twin import forms, ids
from service.twin.errors import invalid, not_found
from service.twin.http import store
from service.twin.listing import rfc2822
from service.twin.store import Json, Store, now_iso
from service.twin.webhooks_out import Sender

BASE = "https://events.twilio.com/v1"
INBOUND_TYPE = "com.twilio.messaging.inbound-message.received"
SINK_CREATE = forms.Form({"Description": forms.STR, "SinkConfiguration": forms.STR,
                          "SinkType": ("kinesis", "webhook", "segment", "email")},
                         required=("Description", "SinkConfiguration", "SinkType"))
SUBSCRIPTION_CREATE = forms.Form(
    {"Description": forms.STR, "SinkSid": forms.re_pattern(r"^DG[0-9a-fA-F]{32}$"),
     "Types": forms.STR}, required=("Description", "SinkSid", "Types"),
    repeated=frozenset({"Types"}))
SCHEMAS = {
    "com.twilio.messaging.inbound-message.received": "Messaging.InboundMessageV1/6",
    "com.twilio.messaging.message.": "Messaging.MessageStatus/7",
    "com.twilio.voice.status-callback.call.": "Voice.WebhookEvent/2",
}
# Conversations (classic) events: ``Conversations.<Resource><Action>/2`` (Twilio's event type pages).
CLASSIC_PREFIX = "com.twilio.conversations."


def _list(key: str, items: list[Json], request: Request) -> Json:
    url = str(request.url)
    return {key: copy.deepcopy(items),
            "meta": {"key": key, "page": 0, "page_size": max(len(items), 50),
                     "first_page_url": url, "previous_page_url": None, "url": url,
                     "next_page_url": None}}


def _sink_config(raw: str, sink_type: str) -> Json:
    try:
        config = json.loads(raw)
    except ValueError:
        raise invalid("Invalid parameter SinkConfiguration: not JSON") from None
    if not isinstance(config, dict):
        raise invalid("Invalid parameter SinkConfiguration: must be a JSON object")
    if sink_type == "webhook":
        destination = config.get("destination")
        if not isinstance(destination, str) or forms.bad_uri(destination):
            raise invalid("SinkConfiguration.destination: an absolute URL is required")
        if config.get("method", "POST") not in ("POST", "GET"):
            raise invalid("SinkConfiguration.method: POST or GET")
        batch = config.get("batch_events", True)
        if not isinstance(batch, bool) and batch not in ("true", "false"):
            raise invalid("SinkConfiguration.batch_events: true or false")
    return config


async def create_sink(request: Request) -> JSONResponse:
    body = await forms.read(request, SINK_CREATE)
    sink_type = str(body["SinkType"])
    config = _sink_config(str(body["SinkConfiguration"]), sink_type)
    sid, now = ids.sid("DG"), now_iso()
    sink = {"sid": sid, "description": body["Description"], "sink_configuration": config,
            "sink_type": sink_type, "status": "active", "date_created": now,
            "date_updated": now, "url": f"{BASE}/Sinks/{sid}",
            "links": {"sink_test": f"{BASE}/Sinks/{sid}/Test",
                      "sink_validate": f"{BASE}/Sinks/{sid}/Validate"}}
    store(request).sinks[sid] = sink
    return JSONResponse(copy.deepcopy(sink), status_code=201)


def _sink(request: Request) -> Json:
    sink = store(request).sinks.get(request.path_params["Sid"])
    if sink is None:
        raise not_found(request.url.path)
    return sink


async def list_sinks(request: Request) -> JSONResponse:
    return JSONResponse(_list("sinks", list(store(request).sinks.values()), request))


async def fetch_sink(request: Request) -> JSONResponse:
    return JSONResponse(copy.deepcopy(_sink(request)))


async def delete_sink(request: Request) -> Response:
    sink = _sink(request)
    st = store(request)
    del st.sinks[sink["sid"]]
    for sub_sid in [s["sid"] for s in st.subscriptions.values() if s["sink_sid"] == sink["sid"]]:
        del st.subscriptions[sub_sid]
    return Response(status_code=204)


def _types(raw: list[str], sub_sid: str, account: str) -> list[Json]:
    out = []
    for i, item in enumerate(raw):
        try:
            parsed: Any = json.loads(item)
        except ValueError:
            raise invalid(f"Types[{i}]: not a JSON object") from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
            raise invalid(f"Types[{i}]: must be a JSON object with a \"type\"")
        version = parsed.get("schema_version", 1)
        out.append({"account_sid": account, "type": parsed["type"], "schema_version": version,
                    "subscription_sid": sub_sid,
                    "url": f"{BASE}/Subscriptions/{sub_sid}/SubscribedEvents/{parsed['type']}"})
    return out


async def create_subscription(request: Request) -> JSONResponse:
    st = store(request)
    body = await forms.read(request, SUBSCRIPTION_CREATE)
    if body["SinkSid"] not in st.sinks:
        raise invalid(f"SinkSid: no sink {body['SinkSid']}")
    raw = body["Types"]
    assert isinstance(raw, list)
    sid, now = ids.sid("DF"), now_iso()
    sub = {"account_sid": st.account_sid, "sid": sid, "date_created": now, "date_updated": now,
           "description": body["Description"], "sink_sid": body["SinkSid"],
           "url": f"{BASE}/Subscriptions/{sid}",
           "links": {"subscribed_events": f"{BASE}/Subscriptions/{sid}/SubscribedEvents"},
           "types": _types(raw, sid, st.account_sid)}
    st.subscriptions[sid] = sub
    return JSONResponse(_view(sub), status_code=201)


def _view(sub: Json) -> Json:
    return {k: copy.deepcopy(v) for k, v in sub.items() if k != "types"}


def _subscription(request: Request, name: str = "Sid") -> Json:
    sub = store(request).subscriptions.get(request.path_params[name])
    if sub is None:
        raise not_found(request.url.path)
    return sub


async def list_subscriptions(request: Request) -> JSONResponse:
    sink = request.query_params.get("SinkSid")
    items = [_view(s) for s in store(request).subscriptions.values()
             if sink in (None, s["sink_sid"])]
    return JSONResponse(_list("subscriptions", items, request))


async def fetch_subscription(request: Request) -> JSONResponse:
    return JSONResponse(_view(_subscription(request)))


async def delete_subscription(request: Request) -> Response:
    del store(request).subscriptions[_subscription(request)["sid"]]
    return Response(status_code=204)


async def list_subscribed_events(request: Request) -> JSONResponse:
    return JSONResponse(_list("types", _subscription(request, "SubscriptionSid")["types"],
                              request))


# --- what sinks receive -------------------------------------------------------------------------

def _schema(event_type: str) -> str | None:
    for prefix, schema in SCHEMAS.items():
        if event_type.startswith(prefix):
            return f"https://events-schemas.twilio.com/{schema}"
    if event_type.startswith(CLASSIC_PREFIX):  # conversation-state.updated → ConversationStateUpdated
        words = event_type[len(CLASSIC_PREFIX):].replace("-", ".").split(".")
        return f"https://events-schemas.twilio.com/Conversations.{''.join(w.title() for w in words)}/2"
    return None


def destinations(st: Store, event_type: str) -> list[Json]:
    """The webhook sinks subscribed to ``event_type``."""
    sinks = {s["sink_sid"] for s in st.subscriptions.values()
             if any(t["type"] == event_type for t in s["types"])}
    return [st.sinks[sid] for sid in sinks
            if sid in st.sinks and st.sinks[sid]["sink_type"] == "webhook"]


async def publish(sender: Sender, st: Store, event_type: str, source: str, data: Json) -> None:
    """One CloudEvent to every sink subscribed to its type."""
    sinks = destinations(st, event_type)
    if not sinks:
        return
    event: Json = {"specversion": "1.0", "type": event_type, "source": source,
                   "id": ids.sid("EZ"), "datacontenttype": "application/json",
                   "time": now_iso(), "data": data}
    schema = _schema(event_type)
    if schema:
        event["dataschema"] = schema
    body = json.dumps([event], separators=(",", ":"))
    for sink in sinks:
        await sender.json("event_streams", sink["sink_configuration"]["destination"], body)


def call_event_data(call_sid: str, record: Json) -> Json:
    """``Voice.WebhookEvent`` data for a status callback the twin made (``record`` from the sender)."""
    answer = record.get("answer") or ""
    when = datetime.fromtimestamp(record.get("ts") or time.time(), UTC)
    return {"sid": call_sid, "timestamp": now_iso(), "eventSid": ids.sid("VW"),
            "requestDateCreated": rfc2822(when), "dateCreated": rfc2822(when),
            "request": {"method": record["method"], "url": record["url"],
                        "parameters": copy.deepcopy(record.get("params") or {})},
            "response": {"responseCode": record.get("status"),
                         "requestDuration": record.get("duration_ms"),
                         "contentType": record.get("content_type"),
                         "responseBody": base64.b64encode(answer.encode()).decode()}}


ROUTES = [
    Route("/v1/Sinks", create_sink, methods=["POST"]),
    Route("/v1/Sinks", list_sinks, methods=["GET"]),
    Route("/v1/Sinks/{Sid}", fetch_sink, methods=["GET"]),
    Route("/v1/Sinks/{Sid}", delete_sink, methods=["DELETE"]),
    Route("/v1/Subscriptions", create_subscription, methods=["POST"]),
    Route("/v1/Subscriptions", list_subscriptions, methods=["GET"]),
    Route("/v1/Subscriptions/{Sid}", fetch_subscription, methods=["GET"]),
    Route("/v1/Subscriptions/{Sid}", delete_subscription, methods=["DELETE"]),
    Route("/v1/Subscriptions/{SubscriptionSid}/SubscribedEvents", list_subscribed_events,
          methods=["GET"]),
]
