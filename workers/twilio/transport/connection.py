"""One kept-alive HTTP/1.1 connection to the Twilio host: an asyncio Protocol and httptools' parser.

Why: aiohttp's per-request machinery (URL objects, header multidicts, timers, payload and
response objects, a task per read) was most of the worker's CPU per v2 call. A connection here
carries one request at a time: :meth:`Connection.exchange` writes the request's bytes in one
call and awaits a future that ``httptools.HttpResponseParser`` (llhttp, what uvicorn parses
with) completes from ``data_received``; one timer per exchange bounds the wait. Content-Length
and chunked bodies are llhttp's; a body delimited by the connection's close is completed in
:meth:`connection_lost`.

The line the engine's rules depend on (DESIGN §5): once :meth:`exchange` has written, any
failure means *maybe processed* — a timeout is ``httpx.ReadTimeout``, a closed or garbled
connection ``httpx.RemoteProtocolError``. Failures before the write (opening the connection)
belong to :mod:`.pool`, which raises the *not sent* classes.
"""
from __future__ import annotations

import asyncio

import httptools
import httpx

from workers.twilio.transport.reply import Headers, Reply


class Connection(asyncio.Protocol):
    """A socket's protocol; :attr:`reusable` says whether it may carry another request."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Reply] | None = None
        self._reason = b""
        self._headers = Headers()
        self._body: list[bytes] = []
        self._headers_done = False
        self.closed = False
        self.reusable = False  # true between a complete keep-alive answer and the next request
        self.idle_since = 0.0

    # --- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self.reusable = True

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: this connection's framing can't be trusted
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"invalid HTTP response: {type(exc).__name__}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed, self.reusable = True, False
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers_done and self._until_close():
            self._complete(keep_alive=False)  # a body delimited by the server's close
        else:
            waiter.set_exception(httpx.RemoteProtocolError(
                "server closed the connection before the response ended"))

    # --- httptools' callbacks ----------------------------------------------------------------
    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers = self._headers
        headers[key] = f"{dict.__getitem__(headers, key)}, {text}" if dict.__contains__(headers, key) else text

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._complete(keep_alive=self._parser.should_keep_alive())

    # --- one request ---------------------------------------------------------------------------
    async def exchange(self, request: bytes, timeout: float) -> Reply:
        """Send ``request`` (head and body) and return the whole answer. Once this is called the
        request counts as sent: every failure after it is *maybe processed*."""
        waiter: asyncio.Future[Reply] = self._loop.create_future()
        self._waiter, self.reusable = waiter, False
        self._reason, self._headers, self._body, self._headers_done = b"", Headers(), [], False
        assert self._transport is not None
        self._transport.write(request)
        timer = self._loop.call_later(timeout, self._timed_out, timeout)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._waiter = None
            if not self.reusable:  # failed, cancelled, or the server asked to close
                self.close()

    def close(self) -> None:
        self.closed, self.reusable = True, False
        if self._transport is not None:
            self._transport.close()

    # --- internals -------------------------------------------------------------------------
    def _complete(self, *, keep_alive: bool) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        status = self._parser.get_status_code()
        if status < 200:  # 1xx: an interim answer; the final one follows on this connection
            self._reason, self._headers, self._body, self._headers_done = b"", Headers(), [], False
            return
        self.reusable = keep_alive and not self.closed
        waiter.set_result(Reply(status, self._headers, b"".join(self._body),
                                self._reason.decode("latin-1")))

    def _until_close(self) -> bool:
        """The answer has no length of its own: its body ends where the connection does."""
        headers = self._headers
        return (not dict.__contains__(headers, "content-length")
                and "chunked" not in dict.get(headers, "transfer-encoding", "").lower())

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def _timed_out(self, timeout: float) -> None:
        self._fail(httpx.ReadTimeout(f"no complete response within {timeout:g}s"))
