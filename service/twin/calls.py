"""Calls (``/2010-04-01/Accounts/{AccountSid}/Calls…``): list (filters ``Status``, ``To``,
``From``, ``ParentCallSid``) and fetch, plus the resource and the form parameters Twilio sends
about a call (the voice webhook and status callbacks, shared/reference/twilio-webhooks.md §4).

Calls exist on the twin when ``/_twin/simulate/call`` makes one (:mod:`service.twin.call_flow`);
a call shows ``in-progress`` from its answer until it ends.
"""
from __future__ import annotations

import copy
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.twin import ids
from service.twin.errors import invalid, not_found
from service.twin.http import store
from service.twin.listing import account, page, rfc2822
from service.twin.store import Json, Store

STATUSES = ("queued", "ringing", "in-progress", "completed", "busy", "failed", "no-answer",
            "canceled")


def new_call(st: Store, from_: str, to: str, direction: str = "inbound",
             parent: str | None = None) -> Json:
    sid, now = ids.sid("CA"), rfc2822()
    uri = f"/2010-04-01/Accounts/{st.account_sid}/Calls/{sid}.json"
    call: Json = {
        "sid": sid, "account_sid": st.account_sid, "parent_call_sid": parent,
        "from": from_, "from_formatted": from_, "to": to, "to_formatted": to,
        "status": "ringing", "direction": direction, "api_version": "2010-04-01",
        "date_created": now, "date_updated": now, "start_time": None, "end_time": None,
        "duration": None, "price": None, "price_unit": "USD", "answered_by": None,
        "caller_name": None, "forwarded_from": None, "group_sid": None, "queue_time": "0",
        "trunk_sid": None, "annotation": None, "phone_number_sid": None, "uri": uri,
        "subresource_uris": {"transcriptions": uri.replace(".json", "/Transcriptions.json")},
    }
    st.calls[sid] = call
    return call


def set_status(call: Json, status: str) -> None:
    now = datetime.now(UTC)
    call["status"] = status
    call["date_updated"] = rfc2822(now)
    if status == "in-progress":
        call["start_time"] = rfc2822(now)
        call["_answered"] = now.timestamp()
    elif status in STATUSES[3:]:
        call["end_time"] = rfc2822(now)
        answered = call.get("_answered")
        call["duration"] = str(round(now.timestamp() - answered)) if answered else "0"


def params(call: Json, status: str) -> dict[str, str]:
    """What Twilio posts about ``call`` (voice webhook and status callback alike)."""
    out = {"AccountSid": call["account_sid"], "ApiVersion": "2010-04-01", "CallSid": call["sid"],
           "CallStatus": status, "Called": call["to"], "Caller": call["from"],
           "Direction": call["direction"], "From": call["from"], "To": call["to"]}
    if call.get("parent_call_sid"):
        out["ParentCallSid"] = call["parent_call_sid"]
    return out


def status_params(call: Json, status: str, sequence: int) -> dict[str, str]:
    out = params(call, status)
    out.update(Timestamp=rfc2822(), CallbackSource="call-progress-events",
               SequenceNumber=str(sequence))
    if status in STATUSES[3:]:
        out["CallDuration"] = call.get("duration") or "0"
    return out


def view(call: Json) -> Json:
    return {k: copy.deepcopy(v) for k, v in call.items() if not k.startswith("_")}


async def list_calls(request: Request) -> JSONResponse:
    account(request)
    q = request.query_params
    status = q.get("Status")
    if status is not None and status not in STATUSES:
        raise invalid(f"Invalid parameter Status: expected one of {', '.join(STATUSES)}")
    items = [view(c) for c in store(request).calls.values()
             if status in (None, c["status"]) and q.get("To") in (None, c["to"])
             and q.get("From") in (None, c["from"])
             and q.get("ParentCallSid") in (None, c["parent_call_sid"])]
    items.reverse()  # newest first, as Twilio lists
    return JSONResponse(page("calls", items, request))


async def fetch_call(request: Request) -> JSONResponse:
    account(request)
    call = store(request).calls.get(request.path_params["Sid"])
    if call is None:
        raise not_found(request.url.path)
    return JSONResponse(view(call))


_CALLS = "/2010-04-01/Accounts/{AccountSid}/Calls"
ROUTES = [
    Route(_CALLS + ".json", list_calls, methods=["GET"]),
    Route(_CALLS + "/{Sid}.json", fetch_call, methods=["GET"]),
]
