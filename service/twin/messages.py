"""Messages (``/2010-04-01/Accounts/{AccountSid}/Messages…``): create, list, fetch.

- Create (form-encoded: ``To`` required; ``From`` or ``MessagingServiceSid``; ``Body``,
  ``MediaUrl`` or ``ContentSid``; ``StatusCallback``): the message is recorded ``queued`` and then
  sent as :mod:`service.twin.messaging_flow` plays it (status callbacks, Event Streams). A
  ``From`` that is not one of the account's numbers is Twilio's 400, code 21606.
- List (filters ``To``, ``From``) and fetch: every message the twin knows, whether created by
  the API, by ``/_twin/simulate/message`` or seeded by a test (``POST /_twin/messages``; any
  other SID, or a SID of another account, is Twilio's 404).
"""
from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.twin import forms, ids, messaging_flow
from service.twin.errors import TwinError, not_found
from service.twin.http import store
from service.twin.listing import account, page, rfc2822
from service.twin.store import Json, Store

CREATE = forms.Form({
    "To": forms.STR, "From": forms.STR, "MessagingServiceSid": forms.STR, "Body": forms.STR,
    "StatusCallback": forms.URI, "ApplicationSid": forms.STR, "MaxPrice": forms.STR,
    "ProvideFeedback": forms.BOOL, "Attempt": forms.INT, "ValidityPeriod": forms.INT,
    "ForceDelivery": forms.BOOL, "ContentRetention": ("retain", "discard"),
    "AddressRetention": ("retain", "obfuscate"), "SmartEncoded": forms.BOOL,
    "PersistentAction": forms.STR, "TrafficType": ("free",), "ShortenUrls": forms.BOOL,
    "ScheduleType": ("fixed",), "SendAt": forms.STR, "SendAsMms": forms.BOOL,
    "ContentVariables": forms.STR, "RiskCheck": ("enable", "disable"), "FallbackFrom": forms.STR,
    "MediaUrl": forms.STR, "ContentSid": forms.STR,
}, required=("To",), repeated=frozenset({"MediaUrl", "PersistentAction"}))


class MessageSeed(BaseModel):
    """One message as a test describes it; the rest of Twilio's Message fields are filled in."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    sid: str = Field(default_factory=ids.message_sid, pattern=r"^(SM|MM)[0-9a-fA-F]{32}$")
    account_sid: str | None = None
    from_: str = Field(alias="from")
    to: str
    body: str = ""
    status: str = "delivered"
    direction: str = "outbound-api"
    num_media: str = "0"
    messaging_service_sid: str | None = None


def seed(st: Store, message: MessageSeed) -> Json:
    account_sid = message.account_sid or st.account_sid
    now = rfc2822()
    data: dict[str, Any] = message.model_dump(by_alias=True)
    uri = f"/2010-04-01/Accounts/{account_sid}/Messages/{message.sid}.json"
    resource = {
        "account_sid": account_sid, "api_version": "2010-04-01", "date_created": now,
        "date_sent": now, "date_updated": now, "error_code": None, "error_message": None,
        "num_segments": "1", "price": None, "price_unit": "USD", "uri": uri,
        "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
        **data,
    }
    resource["account_sid"] = account_sid
    st.messages[(account_sid, message.sid)] = resource
    return resource


async def create_message(request: Request) -> JSONResponse:
    account(request)
    st = store(request)
    body = await forms.read(request, CREATE)
    sender = body.get("From") or body.get("MessagingServiceSid")
    if not sender:
        raise TwinError(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required "
                                    "to send a message")
    if not (body.get("Body") or body.get("MediaUrl") or body.get("ContentSid")):
        raise TwinError(400, 21602, "Message body is required")
    if body.get("From") and st.number(str(body["From"])) is None:
        raise TwinError(400, 21606, f"The From phone number {body['From']} is not a valid, "
                                    "SMS-capable inbound phone number for your account")
    media = body.get("MediaUrl") or []
    msg = seed(st, MessageSeed.model_validate({
        "from": str(sender), "to": str(body["To"]), "body": str(body.get("Body", "")),
        "status": "queued", "direction": "outbound-api", "num_media": str(len(media)),
        "status_callback": body.get("StatusCallback")}))
    twin = request.app.state.twin
    twin.spawn(messaging_flow.outbound(twin.sender, st, msg))
    return JSONResponse(copy.deepcopy(msg), status_code=201)


async def list_messages(request: Request) -> JSONResponse:
    account_sid = account(request)
    q = request.query_params
    items = [m for (acct, _), m in store(request).messages.items() if acct == account_sid
             and q.get("To") in (None, m["to"]) and q.get("From") in (None, m["from"])]
    items.reverse()  # Twilio lists the newest first
    return JSONResponse(page("messages", items, request))


async def fetch_message(request: Request) -> JSONResponse:
    account_sid, sid = request.path_params["AccountSid"], request.path_params["Sid"]
    message = store(request).messages.get((account_sid, sid))
    if message is None:
        raise not_found(request.url.path)
    return JSONResponse(copy.deepcopy(message))


_M = "/2010-04-01/Accounts/{AccountSid}/Messages"
ROUTES = [
    Route(_M + ".json", create_message, methods=["POST"]),
    Route(_M + ".json", list_messages, methods=["GET"]),
    Route(_M + "/{Sid}.json", fetch_message, methods=["GET"]),
]
