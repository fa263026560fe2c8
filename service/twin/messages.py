"""``GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json`` for messages seeded by tests.

threadline fetches a message's body this way when a status callback (which carries none)
arrives before the message itself. The twin knows only the messages given to it through
``POST /_twin/messages``; any other SID, or a SID of another account, is Twilio's 404.
"""
from __future__ import annotations

import copy
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.twin import ids
from service.twin.errors import not_found
from service.twin.http import store
from service.twin.store import Json, Store


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
    account = message.account_sid or st.account_sid
    now = format_datetime(datetime.now(UTC), usegmt=True)
    data: dict[str, Any] = message.model_dump(by_alias=True)
    uri = f"/2010-04-01/Accounts/{account}/Messages/{message.sid}.json"
    resource = {
        "account_sid": account, "api_version": "2010-04-01", "date_created": now,
        "date_sent": now, "date_updated": now, "error_code": None, "error_message": None,
        "num_segments": "1", "price": None, "price_unit": "USD", "uri": uri,
        "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
        **data,
    }
    resource["account_sid"] = account
    st.messages[(account, message.sid)] = resource
    return copy.deepcopy(resource)


async def fetch_message(request: Request) -> JSONResponse:
    account, sid = request.path_params["AccountSid"], request.path_params["Sid"]
    message = store(request).messages.get((account, sid))
    if message is None:
        raise not_found(request.url.path)
    return JSONResponse(copy.deepcopy(message))


ROUTES = [
    Route("/2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json", fetch_message,
          methods=["GET"]),
]
