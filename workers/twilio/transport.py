"""The engine's HTTP stack for Twilio calls: aiohttp, used directly (one HTTP stack per call).

Why: the worker spends most of its CPU per event in the v2 call. httpcore's pool assigns queued
requests to connections with a scan that grows with connections × waiting requests (at 64 in
flight throughput *fell*: BENCHMARKS.md, "engine"), so the drains moved to aiohttp's pool; but
going through httpx's API on top of it still built an ``httpx.Request`` (headers, URL, JSON
encoding) and an ``httpx.Response`` per call, about a quarter of the worker's CPU in a py-spy
profile. :class:`AiohttpSender` sends the bytes with aiohttp alone and hands back a
:class:`Reply` that reads like the httpx response the V2Client's callers use (``status_code``,
case-insensitive ``headers``, ``json()``). ``bench/httpstack.py`` measures it beside httpx.

Errors keep httpx's classes and meaning, which the V2Client relies on: a failure to connect is
a ``ConnectError`` (never sent, so never an uncertain create); a timeout or a broken connection
after sending is a ``ReadTimeout`` / ``RemoteProtocolError`` (maybe processed: uncertain).
:meth:`AiohttpSender.session` is the one place that makes the pooled session of a loop
(``bench/httpstack.py`` also runs httpx's API over it, for comparison).
"""
from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx


class Reply:
    """What the V2Client and its callers read of an HTTP answer (httpx.Response's names)."""

    __slots__ = ("status_code", "headers", "content", "reason_phrase")

    def __init__(self, status: int, headers, content: bytes, reason: str) -> None:
        self.status_code, self.headers, self.content, self.reason_phrase = status, headers, content, reason

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def _pairs(params: Any) -> list[tuple[str, str]] | None:
    """Query parameters as httpx encodes them: a list value repeats its key."""
    if not params:
        return None
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        for v in value if isinstance(value, (list, tuple)) else (value,):
            out.append((key, str(v)))
    return out


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
            value = self._auth[auth] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        return value

    async def send(self, method: str, url: str, *, json_body: Any = None, params: Any = None,
                   form: Any = None, headers: dict[str, str] | None = None, auth: tuple[str, str]) -> Reply:
        hdrs = {**self._headers, "Authorization": self._basic(auth)}
        data = None
        if json_body is not None:  # compact, UTF-8, as httpx encodes ``json=``
            data = json.dumps(json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
            hdrs["Content-Type"] = "application/json"
        elif form is not None:  # as httpx encodes ``data=``: a list value repeats its key
            data = urlencode(form, doseq=True).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        if headers:
            hdrs.update(headers)
        try:
            async with self.session().request(
                    method, url, headers=hdrs, data=data, params=_pairs(params),
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
