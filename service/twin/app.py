"""The twin's application: its routes, and the gate every API request passes through.

The gate (:class:`Gate`, an ASGI middleware) does, in order, for every request outside
``/_twin/``: read the body; check HTTP Basic auth (401); apply the injected faults (the
account's concurrency limit, latency, 429/5xx, held answers); settle due operations; hand over
to the routes; then count the answer by route template and status (and the injected fault by
kind) and append the request to the record file. Routes answer refusals in Twilio's error
shape, including Starlette's own 404 (unknown route) and 405 (wrong method).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.twin import (
    calls,
    control,
    errors,
    eventstreams,
    memory,
    messages,
    numbers,
    simulate,
    transcriptions,
)
from service.twin import communications as comm
from service.twin import configurations as cfg
from service.twin import conversations as conv
from service.twin import participants as part
from service.twin.classic import routes as classic
from service.twin.faults import Faults, FaultSpec
from service.twin.store import Store
from service.twin.traffic import Counts, Recorder
from service.twin.webhooks_out import Sender
from workers.foundations import log
from workers.foundations.settings import Settings

logger = log.get_logger("threadline.twin")

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32

_C = "/v2/Conversations/{ConversationId}"
API_ROUTES = [
    Route("/v2/ControlPlane/Configurations", cfg.create_configuration, methods=["POST"]),
    Route("/v2/ControlPlane/Configurations", cfg.list_configurations, methods=["GET"]),
    Route("/v2/ControlPlane/Configurations/{id}", cfg.fetch_configuration, methods=["GET"]),
    Route("/v2/ControlPlane/Configurations/{id}", cfg.update_configuration, methods=["PUT"]),
    Route("/v2/ControlPlane/Configurations/{id}", cfg.patch_configuration, methods=["PATCH"]),
    Route("/v2/ControlPlane/Configurations/{id}", cfg.delete_configuration, methods=["DELETE"]),
    Route("/v2/ControlPlane/Operations/{id}", cfg.fetch_operation, methods=["GET"]),
    Route("/v2/Conversations", conv.create_conversation, methods=["POST"]),
    Route("/v2/Conversations", conv.list_conversations, methods=["GET"]),
    Route("/v2/Conversations/{id}", conv.fetch_conversation, methods=["GET"]),
    Route("/v2/Conversations/{id}", conv.update_conversation, methods=["PUT"]),
    Route("/v2/Conversations/{id}", conv.patch_conversation, methods=["PATCH"]),
    Route("/v2/Conversations/{id}", conv.delete_conversation, methods=["DELETE"]),
    Route(_C + "/Participants", part.create_participant, methods=["POST"]),
    Route(_C + "/Participants", part.list_participants, methods=["GET"]),
    Route(_C + "/Participants/{id}", part.fetch_participant, methods=["GET"]),
    Route(_C + "/Participants/{id}", part.update_participant, methods=["PUT"]),
    Route(_C + "/Communications", comm.create_communication, methods=["POST"]),
    Route(_C + "/Communications", comm.list_communications, methods=["GET"]),
    Route(_C + "/Communications/{id}", comm.fetch_communication, methods=["GET"]),
    *memory.ROUTES,
    *messages.ROUTES,
    *numbers.ROUTES,
    *calls.ROUTES,
    *transcriptions.ROUTES,
    *eventstreams.ROUTES,
    *classic.ROUTES,
]


@dataclass
class TwinOptions:
    """What ``threadline twin`` was started with (flags), kept so ``/_twin/reset`` returns to it."""

    operation_delay: float = 0.2
    faults: FaultSpec = field(default_factory=FaultSpec)
    record: Path | None = None
    memory_stores: list[str] = field(default_factory=list)


def credentials(settings: Settings) -> list[tuple[str, str]]:
    """The Basic-auth pairs the twin accepts: account SID + token(s), API key + secret, and the
    subaccounts of THREADLINE_AUTH_TOKENS (SID + token)."""
    pairs = list(settings.subaccount_tokens.items())
    sid = settings.twilio_account_sid
    for token in (settings.twilio_auth_token, settings.twilio_auth_token_secondary):
        if sid and token:
            pairs.append((sid, token))
    if settings.twilio_api_key and settings.twilio_api_secret:
        pairs.append((settings.twilio_api_key, settings.twilio_api_secret))
    return pairs


def _authorized(header: str | None, pairs: list[tuple[str, str]]) -> bool:
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    if not pairs:  # no credentials configured: any Basic pair will do (logged at start)
        return bool(user and password)
    return any(hmac.compare_digest(user, u) & hmac.compare_digest(password, p)
               for u, p in pairs)


# A draw's outcome → the fault's name in the counts and the record (the FaultSpec field).
_FAULT_KINDS = {"429": "rate_429", "500": "rate_500", "503": "rate_503", "hold": "rate_timeout"}


class Gate:
    """Auth, faults, counting and recording around the API routes (not ``/_twin/``)."""

    def __init__(self, app: ASGIApp, twin: Twin) -> None:
        self.app = app
        self.twin = twin

    def _route(self, scope: Scope) -> str:
        routed = scope.get("route")  # set by Starlette's router (full or 405 partial match)
        if isinstance(routed, Route):
            return f"{scope['method']} {routed.path}"
        for route in API_ROUTES:  # answered before routing (401, injected fault)
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return f"{scope['method']} {route.path}"
        return f"{scope['method']} ?"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_twin/"):
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status, hold, fault, entered = 500, 0.0, None, False

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if hold:
                    await asyncio.sleep(hold)
            await send(message)

        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            twin = self.twin
            if not _authorized(headers.get("authorization"), twin.pairs):
                refusal = errors.TwinError(401, errors.UNAUTHORIZED, "Authenticate",
                                           {"WWW-Authenticate": 'Basic realm="Twilio API"'})
                await errors.from_error(refusal)(scope, replay, send_and_note)
                return
            if twin.faults.applies(scope["path"]):
                entered = twin.faults.enter()
                if not entered:  # over the account's concurrency: refused before any work
                    fault = "max_concurrent"
                    await errors.from_error(twin.faults.error(fault))(scope, replay, send_and_note)
                    return
                delay = twin.faults.delay()
                if delay:
                    await asyncio.sleep(delay)
                outcome = twin.faults.draw()
                if outcome is not None:
                    fault = _FAULT_KINDS[outcome]
                if outcome == "hold":
                    hold = twin.faults.spec.hold_seconds
                elif outcome is not None:
                    await errors.from_error(twin.faults.error(outcome))(scope, replay,
                                                                         send_and_note)
                    return
            twin.store.settle()
            await self.app(scope, replay, send_and_note)
        finally:
            if entered:
                self.twin.faults.leave()
            self.twin.counts.add(self._route(scope), status, fault)
            self.twin.recorder.write(method=scope["method"], path=scope["path"],
                                     query=scope.get("query_string", b"").decode("latin-1"),
                                     headers=headers, body=body, status=status, fault=fault)


@dataclass
class Twin:
    """Everything the twin holds; ``app.state.twin`` in handlers."""

    settings: Settings
    options: TwinOptions
    store: Store
    faults: Faults
    counts: Counts
    recorder: Recorder
    memory: memory.MemoryState
    pairs: list[tuple[str, str]]
    sender: Sender
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Play traffic in the background (kept referenced until done; cancelled by reset)."""
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("twin traffic failed", exc_info=task.exception())

    def reset(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        self.locks.clear()
        self.store.reset(self.options.operation_delay)
        self.faults.set(self.options.faults)
        self.counts.reset()
        self.memory.reset(self.options.memory_stores)


async def _twin_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.TwinError)
    return errors.from_error(exc)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return errors.response(404, errors.NOT_FOUND,
                               f"The requested resource {request.url.path} was not found")
    if exc.status_code == 405:
        return errors.response(405, errors.METHOD_NOT_ALLOWED,
                               f"Method {request.method} not allowed on {request.url.path}",
                               dict(exc.headers or {}))
    return errors.response(exc.status_code, exc.status_code, str(exc.detail))


async def _crash(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("twin handler failed", extra={"path": request.url.path})
    return errors.response(500, errors.INTERNAL, "Internal Server Error (twin bug)")


def create_twin_app(settings: Settings, options: TwinOptions | None = None) -> Starlette:
    options = options or TwinOptions()
    account = settings.twilio_account_sid or DEFAULT_ACCOUNT_SID
    store = Store(account, options.operation_delay)
    twin = Twin(settings=settings, options=options, store=store, faults=Faults(options.faults),
                counts=Counts(), recorder=Recorder(options.record),
                memory=memory.MemoryState(options.memory_stores), pairs=credentials(settings),
                sender=Sender(store, settings.twilio_auth_token))
    if not twin.pairs:
        logger.warning("no TWILIO_* credentials set: the twin accepts any Basic auth pair")
    app = Starlette(
        routes=[*API_ROUTES, *control.ROUTES, *simulate.ROUTES, *classic.CONTROL_ROUTES],
        exception_handlers={errors.TwinError: _twin_error, HTTPException: _http_error,
                            Exception: _crash},
    )
    app.router.redirect_slashes = False  # Twilio answers /v2/Conversations/ with a 404, not a 307
    app.state.twin = twin
    app.state.store = twin.store
    app.add_middleware(Gate, twin=twin)
    return app
