"""The operator's own application, as forwarding tests and the forwarding benchmark need it.

A small real Starlette app served by uvicorn on a free port. Like a production Twilio app it
checks ``X-Twilio-Signature`` with twilio-python's ``RequestValidator`` over the URL it was
called at (403 when the check fails) and answers TwiML, so a test that gets the app's TwiML back
has proved the signature was valid. Every request it takes is kept in :attr:`OperatorApp.seen`.

Paths (any method):
- ``/sms`` → ``<Response><Message>…</Message></Response>``; ``/voice`` → ``<Response><Say>…``;
  ``/voice-relay`` → ``<Connect><ConversationRelay conversationConfiguration=…>`` (routed actively);
  ``/status`` → 200 with an empty body (a status callback's answer).
- ``/slow`` → TwiML after ``SLOW_SECONDS``; ``/huge`` → a 2 MiB body; ``/big`` → a 900 KiB TwiML
  document; ``/redirect`` → 302 to ``/sms``; ``/error`` → 500 with a plain text reason.

``python -m tests.operator_app PORT [DELAY_MS]`` serves it in a process of its own (the
benchmark does; ``DELAY_MS`` is how long every answer takes, as an application's own work).
"""
from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from tests.conftest import AUTH_TOKEN

SMS_TWIML = b"<Response><Message>Thanks, we got your message.</Message></Response>"
VOICE_TWIML = b"<Response><Say>Hello from the operator's application.</Say></Response>"
# A call the application routes actively: Orchestrator's own speech-to-text runs on it.
RELAY_TWIML = (b'<Response><Connect><ConversationRelay url="wss://ai.example.com/relay" '
               b'conversationConfiguration="conf_support"/></Connect></Response>')
SLOW_SECONDS = 3.0
HUGE = 2 * 1024 * 1024
BIG_TWIML = b"<Response><Say>" + b"a" * (900 * 1024) + b"</Say></Response>"


@dataclass(frozen=True)
class Seen:
    """One request the application took."""

    method: str
    path: str
    url: str
    params: dict[str, str]
    headers: dict[str, str]
    signature_ok: bool


@dataclass
class OperatorApp:
    url: str = ""
    token: str = AUTH_TOKEN
    delay: float = 0.0
    seen: list[Seen] = field(default_factory=list)

    def requests(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    def asgi(self) -> Starlette:
        validator = RequestValidator(self.token)

        async def handle(request: Request) -> Response:
            if request.method == "POST":
                # parse_qsl rather than request.form(): python-multipart is not a dependency.
                params = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
                signed: dict[str, str] = params
            else:
                params, signed = dict(request.query_params), {}
            url = str(request.url)
            ok = validator.validate(url, signed, request.headers.get("x-twilio-signature", ""))
            self.seen.append(Seen(request.method, request.url.path, url, params,
                                  dict(request.headers), ok))
            if not ok:
                return PlainTextResponse("bad signature", 403)
            if self.delay:
                await asyncio.sleep(self.delay)
            if request.url.path == "/slow":
                await asyncio.sleep(SLOW_SECONDS)
            return _answer(request.url.path)

        return Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])])


def _answer(path: str) -> Response:
    if path in ("/sms", "/slow"):
        return Response(SMS_TWIML, media_type="text/xml")
    if path == "/voice":
        return Response(VOICE_TWIML, media_type="text/xml")
    if path == "/voice-relay":
        return Response(RELAY_TWIML, media_type="text/xml")
    if path == "/status":
        return Response(b"", 200)
    if path == "/huge":
        return Response(b"x" * HUGE, media_type="text/plain")
    if path == "/big":
        return Response(BIG_TWIML, media_type="application/xml")
    if path == "/redirect":
        return RedirectResponse("/sms", 302)
    if path == "/error":
        return PlainTextResponse("the application broke", 500)
    return PlainTextResponse("no such page", 404)


class Served:
    """The app served by uvicorn in a thread of the test process."""

    def __init__(self, app: OperatorApp, port: int) -> None:
        app.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app.asgi(), host="127.0.0.1", port=port,
                                log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the operator's application did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Garbage:
    """A TCP server that answers every connection with bytes that are not HTTP, then closes."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_server(("127.0.0.1", port))
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"SURPRISE \x00\x01 this is not HTTP\r\n\r\n")

    def stop(self) -> None:
        self.sock.close()


if __name__ == "__main__":
    delay_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    served = OperatorApp(delay=delay_ms / 1000)
    uvicorn.run(served.asgi(), host="127.0.0.1", port=int(sys.argv[1]), log_config=None,
                access_log=False)
