"""An httpx transport over aiohttp's connection pool, for the drains' V2Client.

Why: httpcore's connection pool assigns queued requests to connections with a scan that grows
with connections × waiting requests; at THREADLINE_MAX_INFLIGHT=64 a worker spent more CPU in
that scan than in everything else, and throughput *fell* as in-flight calls rose (measured in
BENCHMARKS.md, "engine"). aiohttp's pool hands out connections in constant time. The V2Client
keeps its httpx API, retries, stats and logging; only the bytes move through aiohttp.

Errors keep httpx's meaning, which the V2Client relies on: a failure to connect is a
``ConnectError`` (never sent, so never an uncertain create); a timeout or a broken connection
after sending is a ``ReadTimeout`` / ``RemoteProtocolError`` (maybe processed: uncertain).
"""
from __future__ import annotations

import asyncio

import aiohttp
import httpx


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.limit, keepalive_timeout=60),
                auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding"))
            self._loop = loop
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        t = request.extensions.get("timeout") or {}
        timeout = aiohttp.ClientTimeout(total=None, connect=t.get("connect"), sock_read=t.get("read"))
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                   if k.lower() not in (b"host", b"content-length", b"transfer-encoding")]
        body = await request.aread()
        try:
            async with self._get_session().request(
                    request.method, str(request.url), headers=headers, data=body or None,
                    timeout=timeout, allow_redirects=False) as resp:
                content = await resp.read()
                raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers]
                status = resp.status
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out", request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc
        return httpx.Response(status, headers=raw_headers, content=content, request=request)

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
