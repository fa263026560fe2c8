"""``/_twin/simulate/…``: make traffic happen on the twin's account (twin-only, like ``/_twin/``).

``POST /_twin/simulate/message``
  ``{"from", "to", "body", "channel"?: "SMS|WHATSAPP|RCS", "direction"?: "inbound|outbound",
  "statusCallback"?, "fail"?: "30003"}``: inbound (the default) needs ``to`` to be one of the
  account's numbers, outbound needs ``from`` to be; the addresses get the channel's
  ``whatsapp:``/``rcs:`` prefix when they lack it. 202 ``{"sid", "status"}``; the webhooks then
  follow in the background (:mod:`service.twin.messaging_flow`).
``POST /_twin/simulate/call``
  ``{"from", "to", "utterances": [{"track": "inbound_track|outbound_track", "text",
  "confidence"?, "pauseSeconds"?}], "callType"?: "PSTN|CLIENT|SIP|PUBLIC_SIP",
  "answerAfterSeconds"?, "holdSeconds"?}``: ``to`` must be one of the account's numbers. 202
  ``{"sid", "status": "ringing"}``; the call then plays (:mod:`service.twin.call_flow`).

Refusals, in Twilio's error shape: a malformed body (not JSON, unknown or missing fields, a
wrong enum, a ``fail`` that is not a 5-digit error code) is a 400 naming the field; a number the
account does not hold is a 404 naming it. Where the webhooks went, and what they got back, is in
``/_twin/state`` (``deliveries``). Unlike the rest of ``/_twin/``, these requests are counted
(``GET /_twin/counts``, by route and status), so refused traffic shows.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.twin import call_flow, calls, messages, messaging_flow
from service.twin.errors import TwinError
from service.twin.http import read_json, store
from service.twin.schemas import parse_object
from service.twin.store import Json, Store

Address = Field(min_length=1, max_length=256)


class SimulatedMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from", min_length=1, max_length=256)
    to: str = Address
    body: str = Field(max_length=1600)
    channel: Literal["SMS", "WHATSAPP", "RCS"] = "SMS"
    direction: Literal["inbound", "outbound"] = "inbound"
    statusCallback: str | None = Field(None, pattern=r"^https?://")
    fail: str | None = Field(None, pattern=r"^\d{5}$")


class Utterance(BaseModel):
    model_config = ConfigDict(extra="forbid")
    track: Literal["inbound_track", "outbound_track"]
    text: str = Field(min_length=1, max_length=4000)
    confidence: float = Field(0.93, ge=0, le=1)
    pauseSeconds: float = Field(0.0, ge=0, le=60)


class SimulatedCall(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from", min_length=1, max_length=256)
    to: str = Address
    utterances: list[Utterance] = Field(default_factory=list, max_length=200)
    callType: Literal["PSTN", "CLIENT", "SIP", "PUBLIC_SIP"] = "PSTN"
    answerAfterSeconds: float = Field(0.0, ge=0, le=60)
    holdSeconds: float = Field(0.0, ge=0, le=600)


def _owned(st: Store, address: str, role: str) -> Json:
    number = st.number(address)
    if number is None:
        raise TwinError(404, 20404, f"{role} {address} is not one of the account's numbers "
                                    "(POST /_twin/numbers gives it one)")
    return number


def _on_channel(address: str, channel: str) -> str:
    prefix = {"WHATSAPP": "whatsapp:", "RCS": "rcs:"}.get(channel)
    if prefix is None or ":" in address:
        return address
    return prefix + address


async def simulate_message(request: Request) -> JSONResponse:
    spec = parse_object(SimulatedMessage, await read_json(request))
    st = store(request)
    twin = request.app.state.twin
    ours = spec.to if spec.direction == "inbound" else spec.from_
    number = _owned(st, ours, "to" if spec.direction == "inbound" else "from")
    from_, to = _on_channel(spec.from_, spec.channel), _on_channel(spec.to, spec.channel)
    if spec.direction == "inbound":
        msg = messages.seed(st, messages.MessageSeed.model_validate(
            {"from": from_, "to": to, "body": spec.body, "status": "received",
             "direction": "inbound"}))
        twin.spawn(messaging_flow.inbound(twin.sender, st, msg, number))
    else:
        msg = messages.seed(st, messages.MessageSeed.model_validate(
            {"from": from_, "to": to, "body": spec.body, "status": "queued",
             "direction": "outbound-api", "status_callback": spec.statusCallback}))
        twin.spawn(messaging_flow.outbound(twin.sender, st, msg, spec.fail))
    return JSONResponse({"sid": msg["sid"], "status": msg["status"]}, status_code=202)


async def simulate_call(request: Request) -> JSONResponse:
    spec = parse_object(SimulatedCall, await read_json(request))
    st = store(request)
    twin = request.app.state.twin
    number = _owned(st, spec.to, "to")
    call = calls.new_call(st, spec.from_, spec.to)
    call["phone_number_sid"] = number["sid"]
    call["_call_type"] = spec.callType
    twin.spawn(call_flow.play(twin, call, number, spec))
    return JSONResponse({"sid": call["sid"], "status": call["status"]}, status_code=202)


def _counted(route: str, handler: Callable[[Request], Awaitable[JSONResponse]]
             ) -> Callable[[Request], Awaitable[JSONResponse]]:
    async def endpoint(request: Request) -> JSONResponse:
        status = 500
        try:
            response = await handler(request)
            status = response.status_code
            return response
        except TwinError as exc:
            status = exc.status
            raise
        finally:
            request.app.state.twin.counts.add(route, status)
    return endpoint


ROUTES = [
    Route("/_twin/simulate/message",
          _counted("POST /_twin/simulate/message", simulate_message), methods=["POST"]),
    Route("/_twin/simulate/call",
          _counted("POST /_twin/simulate/call", simulate_call), methods=["POST"]),
]
