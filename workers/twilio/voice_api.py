"""The core-API voice calls passive voice makes (``/2010-04-01``, form-encoded, through V2Client).

- ``GET …/Calls.json?Status=in-progress``: the account's live calls, one request per page
  (Twilio's ``next_page_uri`` followed as a path, so credentials never go to a host a response
  names) — how threadline finds calls no webhook told it about;
- ``GET …/Calls/{CallSid}.json``: one call's parties, for a transcription callback that arrives
  before any status of its call;
- ``POST …/Calls/{CallSid}/Transcriptions.json``: start a Real-Time Transcription;
- ``POST …/Calls/{CallSid}/Transcriptions/{Name}.json`` ``Status=stopped``: stop it (Twilio
  accepts the Name in place of the SID).

Every request goes through :meth:`V2Client.request`: counted by route, retried on 429/5xx,
refused at once on any other 4xx (:class:`V2Error`, whose ``code`` is Twilio's, e.g. 21220).
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from workers.foundations.text import path_segment as _q
from workers.twilio.client import V2Client
from workers.twilio.wire import json_or_none

LIST_ROUTE = "GET /2010-04-01/Accounts/{sid}/Calls.json"
FETCH_ROUTE = "GET /2010-04-01/Accounts/{sid}/Calls/{sid}.json"
START_ROUTE = "POST /2010-04-01/Accounts/{sid}/Calls/{sid}/Transcriptions.json"
STOP_ROUTE = "POST /2010-04-01/Accounts/{sid}/Calls/{sid}/Transcriptions/{sid}.json"
PAGE_SIZE = 200
MAX_PAGES = 50  # 10,000 live calls: far beyond one account's concurrency; a loop guard


def _calls(account: str) -> str:
    return f"/2010-04-01/Accounts/{_q(account)}/Calls"


async def in_progress_calls(client: V2Client, account: str) -> AsyncIterator[dict[str, Any]]:
    """Every call of ``account`` whose status is ``in-progress``, page by page."""
    path, params = f"{_calls(account)}.json", {"Status": "in-progress", "PageSize": str(PAGE_SIZE)}
    for _ in range(MAX_PAGES):
        resp = await client.request("GET", LIST_ROUTE, path, params=params, account_sid=account)
        data = json_or_none(resp)
        if not isinstance(data, dict):
            return
        for call in data.get("calls") or []:
            if isinstance(call, dict) and call.get("sid"):
                yield call
        nxt = data.get("next_page_uri")
        if not isinstance(nxt, str) or not nxt.startswith("/2010-04-01/"):
            return
        parts = urlsplit(nxt)
        path, params = parts.path, dict(parse_qsl(parts.query))


async def fetch_call(client: V2Client, account: str, call_sid: str) -> dict[str, Any] | None:
    resp = await client.request("GET", FETCH_ROUTE, f"{_calls(account)}/{_q(call_sid)}.json",
                                account_sid=account)
    data = json_or_none(resp)
    return data if isinstance(data, dict) and data.get("sid") else None


async def start_transcription(client: V2Client, account: str, call_sid: str,
                              form: dict[str, str]) -> dict[str, Any]:
    resp = await client.request("POST", START_ROUTE,
                                f"{_calls(account)}/{_q(call_sid)}/Transcriptions.json",
                                form=form, account_sid=account)
    data = json_or_none(resp)
    return data if isinstance(data, dict) else {}


async def stop_transcription(client: V2Client, account: str, call_sid: str, name: str) -> None:
    await client.request("POST", STOP_ROUTE,
                         f"{_calls(account)}/{_q(call_sid)}/Transcriptions/{_q(name)}.json",
                         form={"Status": "stopped"}, account_sid=account)


def status_params(call: dict[str, Any]) -> dict[str, str]:
    """A Calls API resource as the status callback Twilio would send about it (the parameters
    :func:`workers.parse.voice.parse_call_status` reads), so a call learned from the API is
    recorded exactly as one learned from a webhook. ``SequenceNumber`` is absent: the API says
    the call's status, not the position of an event."""
    out = {"AccountSid": str(call.get("account_sid") or ""), "CallSid": str(call["sid"]),
           "CallStatus": str(call.get("status") or ""), "From": str(call.get("from") or ""),
           "To": str(call.get("to") or ""), "Direction": str(call.get("direction") or ""),
           "CallbackSource": "threadline-api"}
    if call.get("parent_call_sid"):
        out["ParentCallSid"] = str(call["parent_call_sid"])
    return out
