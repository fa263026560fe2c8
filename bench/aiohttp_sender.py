"""The engine's HTTP stack before the lean one: aiohttp, used directly (one HTTP stack per call).

Kept here, out of the engine, as the measured comparison: ``bench/httpstack.py`` runs it beside
:class:`workers.twilio.transport.http11.Http11Sender`, which the engine uses. It takes the same
arguments and raises the same httpx error classes. A
failure to connect is a ``ConnectError`` (never sent, so never an uncertain create); a timeout
or a broken connection after sending is a ``ReadTimeout`` / ``RemoteProtocolError`` (maybe
processed: uncertain). :meth:`AiohttpSender.session` is the one place that makes the pooled
session of a loop (``bench/httpstack.py`` also runs httpx's API over it, for comparison).
"""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import httpx

from workers.twilio.transport.encoding import basic_auth, pairs
from workers.twilio.transport.encoding import body as encoded_body
from workers.twilio.transport.reply import Reply


class AiohttpSender:
    """One pooled aiohttp session per event loop; one :meth:`send` per HTTP attempt."""

    def __init__(self, limit: int, *, timeout: float, headers: dict[str, str]) -> None:
        self.limit = limit
        self._timeout = aiohttp.ClientTimeout(total=None, connect=min(timeout, 5.0), sock_read=timeout)
        self._headers = headers
        self._auth: dict[tuple[str, str], str] = {}
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def session(self) -> aiohttp.ClientSession:
        """The pooled session of the running loop, (re)made when first used in a new loop:
        pooled connections belong to the loop that opened them."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.limit, keepalive_timeout=60),
                auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding"))
            self._loop = loop
        return self._session

    def _basic(self, auth: tuple[str, str]) -> str:
        value = self._auth.get(auth)
        if value is None:
            value = self._auth[auth] = basic_auth(auth)
        return value

    async def send(self, method: str, url: str, *, json_body: Any = None, params: Any = None,
                   form: Any = None, headers: dict[str, str] | None = None, auth: tuple[str, str]) -> Reply:
        hdrs = {**self._headers, "Authorization": self._basic(auth)}
        data, content_type = encoded_body(json_body, form)
        if content_type is not None:
            hdrs["Content-Type"] = content_type
        if headers:
            hdrs.update(headers)
        try:
            async with self.session().request(
                    method, url, headers=hdrs, data=data, params=pairs(params),
                    timeout=self._timeout, allow_redirects=False) as resp:
                content = await resp.read()
                return Reply(resp.status, resp.headers, content, resp.reason or "")
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc)) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "timed out") from exc
        except aiohttp.ClientError as exc:
            raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
