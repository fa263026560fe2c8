"""IncomingPhoneNumbers: the account's numbers and the URLs Twilio calls for their traffic.

``POST /_twin/numbers {"phoneNumber": "+1…"}`` (control API) gives the account a number; the
core API then lists (filters ``PhoneNumber``, ``FriendlyName``), fetches and updates it
(``SmsUrl``, ``SmsMethod``, ``VoiceUrl``, ``VoiceMethod``, ``StatusCallback``,
``StatusCallbackMethod`` and the rest of the spec's update parameters, form-encoded). Those URLs
are where :mod:`service.twin.simulate` sends the number's webhooks. Giving the account a number
it already holds returns that number (200) instead of a second one.
"""
from __future__ import annotations

import copy
import re

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.twin import forms, ids
from service.twin.errors import not_found
from service.twin.http import store
from service.twin.listing import account, page, rfc2822
from service.twin.store import Json, Store

E164 = r"^\+[1-9]\d{1,14}$"

# Spec parameter → resource field, for the update (POST …/IncomingPhoneNumbers/{Sid}.json).
_URLS = ("SmsUrl", "SmsFallbackUrl", "VoiceUrl", "VoiceFallbackUrl", "StatusCallback")
_METHODS = ("SmsMethod", "SmsFallbackMethod", "VoiceMethod", "VoiceFallbackMethod",
            "StatusCallbackMethod")
UPDATE = forms.Form({
    **{n: forms.URI for n in _URLS}, **{n: forms.METHOD for n in _METHODS},
    "FriendlyName": forms.STR, "AccountSid": forms.STR, "ApiVersion": forms.STR,
    "SmsApplicationSid": forms.STR, "VoiceApplicationSid": forms.STR,
    "VoiceCallerIdLookup": forms.BOOL, "EmergencyStatus": ("Active", "Inactive"),
    "EmergencyAddressSid": forms.STR, "TrunkSid": forms.STR,
    "VoiceReceiveMode": ("voice", "fax"), "IdentitySid": forms.STR, "AddressSid": forms.STR,
    "BundleSid": forms.STR,
})


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


class NumberSeed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phoneNumber: str = Field(pattern=E164)


def give(st: Store, phone_number: str) -> tuple[Json, bool]:
    """The account's number ``phone_number`` (created when new) and whether it was created."""
    existing = st.number(phone_number)
    if existing is not None:
        return copy.deepcopy(existing), False
    sid = ids.sid("PN")
    now = rfc2822()
    uri = f"/2010-04-01/Accounts/{st.account_sid}/IncomingPhoneNumbers/{sid}.json"
    number: Json = {
        "sid": sid, "account_sid": st.account_sid, "phone_number": phone_number,
        "friendly_name": phone_number, "api_version": "2010-04-01",
        "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
        "date_created": now, "date_updated": now, "origin": "twilio", "status": "in-use",
        "sms_url": "", "sms_method": "POST", "sms_fallback_url": "", "sms_fallback_method": "POST",
        "voice_url": "", "voice_method": "POST", "voice_fallback_url": "",
        "voice_fallback_method": "POST", "status_callback": "", "status_callback_method": "POST",
        "voice_caller_id_lookup": False, "uri": uri,
    }
    st.numbers[sid] = number
    return copy.deepcopy(number), True


def _number(request: Request) -> Json:
    account(request)
    number = store(request).numbers.get(request.path_params["Sid"])
    if number is None:
        raise not_found(request.url.path)
    return number


async def list_numbers(request: Request) -> JSONResponse:
    account(request)
    q = request.query_params
    items = [n for n in store(request).numbers.values()
             if q.get("PhoneNumber") in (None, n["phone_number"])
             and q.get("FriendlyName") in (None, n["friendly_name"])]
    return JSONResponse(page("incoming_phone_numbers", items, request))


async def fetch_number(request: Request) -> JSONResponse:
    return JSONResponse(copy.deepcopy(_number(request)))


async def update_number(request: Request) -> JSONResponse:
    number = _number(request)
    changes = await forms.read(request, UPDATE)
    for name, value in changes.items():
        if name in ("AccountSid", "ApiVersion"):
            continue
        number[_snake(name)] = value == "true" if name == "VoiceCallerIdLookup" else value
    number["date_updated"] = rfc2822()
    return JSONResponse(copy.deepcopy(number))


_N = "/2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers"
ROUTES = [
    Route(_N + ".json", list_numbers, methods=["GET"]),
    Route(_N + "/{Sid}.json", fetch_number, methods=["GET"]),
    Route(_N + "/{Sid}.json", update_number, methods=["POST"]),
]
