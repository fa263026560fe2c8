"""Kept-alive connections to one origin (scheme, host, port), and where *not sent* is decided.

A request takes the most recently used idle connection, else opens one. A connection the
server closed while it sat idle is noticed here (its protocol saw the close) and dropped before
anything is written on it, so that case costs a new connection, never an uncertain request.
Idle connections older than the keep-alive window are closed rather than reused, since a
server that times them out may close one just as a request is written on it.

Opening a connection is the *not sent* side of the engine's rule: a refused or unreachable
host, a DNS or TLS failure is ``httpx.ConnectError``, and no connection within the connect
timeout (TLS handshake included) is ``httpx.ConnectTimeout`` — the V2Client never counts
either as an uncertain create.
"""
from __future__ import annotations

import asyncio
import ssl

import httpx

from workers.twilio.transport.connection import Connection

KEEPALIVE_SECONDS = 60.0  # an idle connection older than this is closed, not reused


class ConnectionPool:
    """Idle connections to ``host:port`` of one event loop, at most ``limit`` of them kept."""

    def __init__(self, host: str, port: int, *, tls: ssl.SSLContext | None, connect_timeout: float,
                 limit: int) -> None:
        self.host, self.port = host, port
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._limit = limit
        self._idle: list[Connection] = []
        self._loop = asyncio.get_running_loop()

    async def acquire(self) -> Connection:
        """An open connection on which nothing is in flight."""
        now = self._loop.time()
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_SECONDS:
                return conn
            conn.close()
        return await self._open()

    def release(self, conn: Connection) -> None:
        if conn.reusable and len(self._idle) < self._limit:
            conn.idle_since = self._loop.time()
            self._idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Close the idle connections. After their loop closed (a sender used again under a new
        loop) they can only be dropped: closing a transport schedules on its loop."""
        idle, self._idle = self._idle, []
        if self._loop.is_closed():
            return
        for conn in idle:
            conn.close()

    async def _open(self) -> Connection:
        loop = self._loop
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: Connection(loop), self.host, self.port, ssl=self._tls,
                    server_hostname=self.host if self._tls is not None else None)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(
                f"no connection to {self.host}:{self.port} within {self._connect_timeout:g}s") from exc
        except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
            raise httpx.ConnectError(f"cannot connect to {self.host}:{self.port}: {type(exc).__name__}") from exc
        return conn
