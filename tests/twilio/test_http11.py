"""The engine's lean HTTP/1.1 sender (``workers.twilio.transport.Http11Sender``) over real TCP and TLS.

The twin answers like Twilio (``test_sender.py`` runs the engine's client against it); the
cases here are the ones a well-behaved server rarely shows, so each test runs a small scripted
HTTP server on a real socket: chunked and close-delimited bodies, keep-alive reuse, a server
that closes an idle connection, closes after reading a request, answers after the client gave
up, or never finishes a TLS handshake. Each asserts the line the engine's rules rely on:
*not sent* (ConnectError / ConnectTimeout, never an uncertain create) vs *maybe processed*
(ReadTimeout / RemoteProtocolError).
"""
from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import threading
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.twilio.test_sender import make_engine_client
from workers.twilio.client import V2Error
from workers.twilio.transport import Http11Sender

AUTH = ("ACx", "secret")
HEADERS = {"User-Agent": "threadline-test", "Accept": "application/json"}


def answer(status: int, body: dict, *, extra: str = "") -> bytes:
    data = json.dumps(body).encode()
    return (f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            f"{extra}\r\n").encode() + data


Handler = Callable[[int, bytes, asyncio.StreamWriter], Awaitable[bool]]


class Scripted:
    """A real TCP server: for the n-th request (over all connections) ``handler(n, request,
    writer)`` writes what it likes and returns whether to keep reading on that connection."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                if not await self.handler(len(self.requests), request, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the test ended with the connection open
        finally:
            writer.close()


def sender(timeout: float = 5.0, tls: ssl.SSLContext | None = None) -> Http11Sender:
    return Http11Sender(8, timeout=timeout, headers=HEADERS, tls=tls)


def test_keep_alive_reuses_one_connection_and_reads_chunked_and_close_delimited_bodies() -> None:
    async def handler(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        if n in (1, 4):
            writer.write(answer(201, {"id": "first"}))
        elif n == 2:  # chunked, split across writes
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Twilio: a\r\nx-twilio: b\r\n\r\n"
                         b"6\r\n{\"id\":\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"9\r\n\"second\"}\r\n0\r\n\r\n")
        else:  # no length: the body ends with the connection
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"id\":\"third\"}")
            return False
        return True

    async def main() -> None:
        async with Scripted(handler) as server:
            s = sender()
            first = await s.send("POST", f"{server.url}/v2/Conversations", json_body={"a": "é"}, auth=AUTH)
            second = await s.send("GET", f"{server.url}/v2/Conversations/x", params={"status": ["ACTIVE", "CLOSED"]},
                                  auth=AUTH)
            assert server.connections == 1  # kept alive
            third = await s.send("GET", f"{server.url}/v2/x", auth=AUTH)
            fourth = await s.send("POST", f"{server.url}/v2/Conversations", json_body={}, auth=AUTH)
            await s.aclose()
        assert (first.status_code, first.json()) == (201, {"id": "first"})
        assert second.json() == {"id": "second"} and second.headers.get("X-TWILIO") == "a, b"
        assert third.json() == {"id": "third"} and fourth.status_code == 201
        assert server.connections == 2  # the close-delimited answer ended the first connection
        head, body = server.requests[0].split(b"\r\n\r\n")
        assert head.startswith(b"POST /v2/Conversations HTTP/1.1\r\nHost: 127.0.0.1:")
        assert b"\r\nAuthorization: Basic QUN4OnNlY3JldA==\r\n" in head and b"User-Agent: threadline-test" in head
        assert b"Content-Type: application/json\r\nContent-Length: 10" in head  # UTF-8 bytes, not characters
        assert json.loads(body) == {"a": "é"}
        assert server.requests[1].startswith(b"GET /v2/Conversations/x?status=ACTIVE&status=CLOSED HTTP/1.1\r\n")

    asyncio.run(main())


def test_connection_the_server_closed_while_idle_is_replaced_without_error() -> None:
    async def handler(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(201, {"id": f"c{n}"}))
        return False  # answered with keep-alive, then closed: as a server's idle timeout does

    async def main() -> None:
        async with Scripted(handler) as server:
            s = sender()
            first = await s.send("POST", f"{server.url}/a", json_body={}, auth=AUTH)
            await asyncio.sleep(0.1)  # the close reaches the idle connection
            second = await s.send("POST", f"{server.url}/a", json_body={}, auth=AUTH)
            await s.aclose()
        assert (first.json(), second.json()) == ({"id": "c1"}, {"id": "c2"})
        assert len(server.requests) == 2 and server.connections == 2  # nothing sent twice

    asyncio.run(main())


def test_close_after_the_request_was_read_is_maybe_processed(redis_url) -> None:
    async def handler(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        return False  # read it, then close without an answer

    async def main() -> tuple[V2Error, int]:
        async with Scripted(handler) as server:
            async with make_engine_client(server.url, redis_url, THREADLINE_MAX_ATTEMPTS=1) as client:
                with pytest.raises(V2Error) as info:
                    await client.create_conversation({"configurationId": "conf_configuration_x"})
            return info.value, len(server.requests)

    err, seen = asyncio.run(main())
    assert seen == 1 and err.uncertain and err.message == "RemoteProtocolError"


def test_answer_after_the_timeout_never_answers_the_next_request() -> None:
    async def handler(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        if n == 1:
            await asyncio.sleep(0.4)  # after the client's timeout
        writer.write(answer(200, {"id": f"answer{n}"}))
        return True

    async def main() -> None:
        async with Scripted(handler) as server:
            s = sender(timeout=0.2)
            with pytest.raises(httpx.ReadTimeout):
                await s.send("GET", f"{server.url}/a", auth=AUTH)
            await asyncio.sleep(0.3)  # the late answer arrives (on a connection now closed)
            second = await s.send("GET", f"{server.url}/a", auth=AUTH)
            await s.aclose()
        assert second.json() == {"id": "answer2"}
        assert server.connections == 2

    asyncio.run(main())


def test_a_sender_used_again_under_a_new_event_loop_opens_new_connections() -> None:
    """Pooled connections belong to the loop that opened them; the first loop is closed by
    then, so its connections are dropped, not closed through it (that raised)."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/a"
        s = sender()
        first = asyncio.run(s.send("GET", url, auth=AUTH))
        second = asyncio.run(s.send("GET", url, auth=AUTH))  # a new loop
    finally:
        server.shutdown()
        server.server_close()
    assert (first.status_code, second.status_code) == (200, 200)


def test_garbled_answer_is_a_protocol_error() -> None:
    async def handler(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 abc nonsense\r\n\r\n")
        return True

    async def main() -> None:
        async with Scripted(handler) as server:
            s = sender()
            with pytest.raises(httpx.RemoteProtocolError):
                await s.send("GET", f"{server.url}/a", auth=AUTH)
            await s.aclose()

    asyncio.run(main())


def test_header_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    async def handler(n: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(200, {}))
        return True

    async def main() -> None:
        async with Scripted(handler) as server:
            s = sender()
            with pytest.raises(ValueError):
                await s.send("POST", f"{server.url}/a", json_body={}, auth=AUTH,
                             headers={"Idempotency-Key": "k\r\nX-Injected: 1"})
            await s.aclose()
        assert server.requests == [] and server.connections == 0

    asyncio.run(main())


# --- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl), and its key."""
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_tls_round_trip_and_an_untrusted_certificate_is_not_sent(certificate) -> None:
    cert, key = certificate
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer(200, {"id": "tls"}))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=served)
        url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/v2/Conversations/x"
        trusting = ssl.create_default_context(cafile=str(cert))
        s = sender(tls=trusting)
        reply = await s.send("GET", url, auth=AUTH)
        await s.aclose()
        assert reply.json() == {"id": "tls"}
        untrusting = sender()  # the system's CAs: a self-signed certificate fails verification
        with pytest.raises(httpx.ConnectError):
            await untrusting.send("GET", url, auth=AUTH)
        await untrusting.aclose()
        server.close()

    asyncio.run(main())


def test_tls_handshake_that_never_completes_is_a_connect_timeout_not_uncertain(redis_url) -> None:
    """A TCP accept without a TLS handshake: the request was never written, so a create
    must not be counted uncertain (aiohttp's connect timeout read as a read timeout)."""
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(2)
        writer.close()

    async def main() -> V2Error:
        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        base = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        async with make_engine_client(base, redis_url, THREADLINE_TWILIO_TIMEOUT=0.3,
                                      THREADLINE_MAX_ATTEMPTS=2) as client:
            with pytest.raises(V2Error) as info:
                await client.create_conversation({"configurationId": "conf_configuration_x"})
        server.close()
        return info.value

    err = asyncio.run(main())
    assert err.status is None and err.transient and not err.uncertain
    assert err.attempts == 2 and err.message == "ConnectTimeout"
