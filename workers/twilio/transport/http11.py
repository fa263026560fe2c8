"""The engine's HTTP stack for Twilio calls: lean HTTP/1.1 keep-alive on asyncio (one host).

Why: the worker's CPU per event was dominated by the v2 call, and most of that by aiohttp's
per-request machinery, not by the bytes (BENCHMARKS.md, issue 19). The engine talks to one
host with a handful of routes, so a request here is a string: a cached block of the fixed
headers (Host, User-Agent, Accept, Authorization) per origin and credentials, the request
line and the body's two headers, written in one call on a pooled connection
(:mod:`.pool`, :mod:`.connection`). TLS is asyncio's ``ssl`` with the system's default
verification (as aiohttp's was); ``http://`` for the twin.

:class:`Http11Sender` answers like the aiohttp sender it replaced (``bench/aiohttp_sender.py``,
the benchmark's comparison) — same arguments, a :class:`.reply.Reply`, httpx's error classes
with their meaning: ``ConnectError`` / ``ConnectTimeout`` when the request was certainly not sent; ``ReadTimeout`` /
``RemoteProtocolError`` once it was written (maybe processed). It never resends: retrying
is the V2Client's decision, made with those classes.
"""
from __future__ import annotations

import asyncio
import ssl
from typing import Any, Protocol
from urllib.parse import urlsplit

from workers.twilio.transport.connection import Connection
from workers.twilio.transport.encoding import basic_auth, query
from workers.twilio.transport.encoding import body as encoded_body
from workers.twilio.transport.pool import ConnectionPool
from workers.twilio.transport.reply import Reply


class Sender(Protocol):
    """What the V2Client needs of an HTTP stack: one attempt, answered or raised as httpx does."""

    async def send(self, method: str, url: str, *, json_body: Any = None, params: Any = None,
                   form: Any = None, headers: dict[str, str] | None = None,
                   auth: tuple[str, str]) -> Reply: ...

    async def aclose(self) -> None: ...


def _checked(text: str) -> str:
    """A header or request-target fragment, refused if it could split the request."""
    if "\r" in text or "\n" in text:
        raise ValueError("CR or LF in an HTTP request header or target")
    return text


class Http11Sender:
    """Pools of kept-alive connections per origin, of the running event loop."""

    def __init__(self, limit: int, *, timeout: float, headers: dict[str, str],
                 tls: ssl.SSLContext | None = None) -> None:
        """``tls``: the context for ``https://`` origins (default: the system's CAs, verified)."""
        self.limit = limit
        self._timeout = timeout
        self._connect_timeout = min(timeout, 5.0)
        self._headers = "".join(f"{_checked(k)}: {_checked(v)}\r\n" for k, v in headers.items())
        self._fixed: dict[tuple[str, tuple[str, str]], str] = {}  # (origin, auth) → header block
        self._pools: dict[str, ConnectionPool] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tls = tls

    def _pool(self, origin: str) -> ConnectionPool:
        """The origin's pool in the running loop; pools are remade in a new loop, since pooled
        connections belong to the loop that opened them."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._close_pools()
            self._loop = loop
        pool = self._pools.get(origin)
        if pool is None:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"not an http(s) origin: {origin!r}")
            tls = None
            if parts.scheme == "https":
                if self._tls is None:
                    self._tls = ssl.create_default_context()
                tls = self._tls
            pool = self._pools[origin] = ConnectionPool(
                parts.hostname, parts.port or (443 if tls else 80), tls=tls,
                connect_timeout=self._connect_timeout, limit=self.limit)
        return pool

    def _fixed_headers(self, origin: str, auth: tuple[str, str]) -> str:
        block = self._fixed.get((origin, auth))
        if block is None:
            netloc = urlsplit(origin).netloc
            block = self._fixed[(origin, auth)] = (
                f"Host: {netloc}\r\n{self._headers}Authorization: {_checked(basic_auth(auth))}\r\n")
        return block

    async def send(self, method: str, url: str, *, json_body: Any = None, params: Any = None,
                   form: Any = None, headers: dict[str, str] | None = None,
                   auth: tuple[str, str]) -> Reply:
        cut = url.find("/", url.find("://") + 3)
        origin, target = (url, "/") if cut < 0 else (url[:cut], url[cut:])
        if params:
            target += query(params)
        data, content_type = encoded_body(json_body, form)
        head = [method, " ", _checked(target), " HTTP/1.1\r\n", self._fixed_headers(origin, auth)]
        if data is not None:
            head += ["Content-Type: ", content_type or "", "\r\nContent-Length: ", str(len(data)), "\r\n"]
        elif method in ("POST", "PUT", "PATCH"):
            head.append("Content-Length: 0\r\n")
        if headers:
            head += [f"{_checked(k)}: {_checked(v)}\r\n" for k, v in headers.items()]
        head.append("\r\n")
        request = "".join(head).encode("latin-1")
        if data:
            request += data
        pool = self._pool(origin)
        conn: Connection = await pool.acquire()  # ConnectError / ConnectTimeout: not sent
        try:
            return await conn.exchange(request, self._timeout)  # from here on: maybe processed
        finally:
            pool.release(conn)

    def _close_pools(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

    async def aclose(self) -> None:
        self._close_pools()
        self._loop = None
