"""The twin-only control API under ``/_twin/``: no auth, never faulted, never recorded.

| method + path                    | body / answer                                               |
|----------------------------------|-------------------------------------------------------------|
| GET  /_twin/healthz              | ``ok``                                                      |
| POST /_twin/reset                | state, faults, counts, operation delay back to the flags   |
| GET  /_twin/faults               | the fault settings in force                                 |
| POST /_twin/faults               | replace them: ``{latency_ms, jitter_ms, rate_429, retry_after, rate_500, rate_503, rate_timeout, hold_seconds, max_concurrent, path, seed}`` |
| POST /_twin/operation-delay      | ``{"seconds": 0.5}``                                        |
| POST /_twin/messages             | seed one Message ``{from, to, body, sid?, status?, …}`` → the resource |
| POST /_twin/numbers             | ``{"phoneNumber": "+1…"}`` → the account's IncomingPhoneNumber (201; 200 if held) |
| POST /_twin/simulate/message     | traffic: see :mod:`service.twin.simulate`                   |
| POST /_twin/simulate/call        | traffic: see :mod:`service.twin.simulate`                   |
| POST /_twin/memory/stores        | ``{"id": "mem_store_…"}`` optional → ``{"id": …}``          |
| GET  /_twin/counts               | ``{total, routes: {"POST /v2/Conversations": {"201": 3}}, faults?: {"max_concurrent": 2}}`` |
| GET  /_twin/state                | configurations, operations, conversations (with participants and communications), messages, memory |
|                                  | + numbers, calls, transcriptions, sinks, subscriptions, deliveries |

Bad control bodies get a 400 in Twilio's shape, like everything else.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from service.twin import messages, numbers
from service.twin.errors import invalid
from service.twin.faults import FaultSpec
from service.twin.http import read_json
from service.twin.schemas import parse_object


class _Delay(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(ge=0)


class _StoreSeed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, pattern=r"^mem_(store|service)_[0-7][0-9a-z]{25}$")


async def _body(request: Request) -> object:
    return {} if not (await request.body()).strip() else await read_json(request)


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def reset(request: Request) -> JSONResponse:
    request.app.state.twin.reset()
    return JSONResponse({"reset": True})


async def get_faults(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.twin.faults.describe())


async def set_faults(request: Request) -> JSONResponse:
    spec = parse_object(FaultSpec, await _body(request))
    assert isinstance(spec, FaultSpec)
    try:
        request.app.state.twin.faults.set(spec)
    except ValueError as exc:
        raise invalid(str(exc)) from None
    return JSONResponse(request.app.state.twin.faults.describe())


async def operation_delay(request: Request) -> JSONResponse:
    body = parse_object(_Delay, await read_json(request))
    assert isinstance(body, _Delay)
    request.app.state.twin.store.operation_delay = body.seconds
    return JSONResponse({"seconds": body.seconds})


async def seed_message(request: Request) -> JSONResponse:
    seed = parse_object(messages.MessageSeed, await read_json(request))
    assert isinstance(seed, messages.MessageSeed)
    return JSONResponse(messages.seed(request.app.state.store, seed), status_code=201)


async def give_number(request: Request) -> JSONResponse:
    seed = parse_object(numbers.NumberSeed, await read_json(request))
    assert isinstance(seed, numbers.NumberSeed)
    number, created = numbers.give(request.app.state.store, seed.phoneNumber)
    return JSONResponse(number, status_code=201 if created else 200)


async def create_store(request: Request) -> JSONResponse:
    body = parse_object(_StoreSeed, await _body(request))
    assert isinstance(body, _StoreSeed)
    return JSONResponse({"id": request.app.state.twin.memory.create_store(body.id)},
                        status_code=201)


async def counts(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.twin.counts.report())


async def state(request: Request) -> JSONResponse:
    twin = request.app.state.twin
    snapshot = twin.store.snapshot()
    snapshot["memory"] = twin.memory.snapshot()
    snapshot["operation_delay"] = twin.store.operation_delay
    return JSONResponse(snapshot)


ROUTES = [
    Route("/_twin/healthz", healthz, methods=["GET"]),
    Route("/_twin/reset", reset, methods=["POST"]),
    Route("/_twin/faults", get_faults, methods=["GET"]),
    Route("/_twin/faults", set_faults, methods=["POST"]),
    Route("/_twin/operation-delay", operation_delay, methods=["POST"]),
    Route("/_twin/messages", seed_message, methods=["POST"]),
    Route("/_twin/numbers", give_number, methods=["POST"]),
    Route("/_twin/memory/stores", create_store, methods=["POST"]),
    Route("/_twin/counts", counts, methods=["GET"]),
    Route("/_twin/state", state, methods=["GET"]),
]
