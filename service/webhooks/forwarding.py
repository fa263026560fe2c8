"""Forwarding: a captured webhook goes on to the operator's application, and its answer comes back.

For a number `threadline connect --forward` pointed at threadline (DESIGN §4 "Coexistence"),
the application keeps answering its customers: once the webhook is checked and logged as any
other, :class:`Relay` sends it to the URL the number had (:mod:`workers.twilio.upstreams`) with
the same parameters, in the method the application asked for, and an ``X-Twilio-Signature``
computed for *that* URL with the account's token — so the application's own signature check
passes as if Twilio had called it. The application's status, ``Content-Type`` and body (its
TwiML) go back to Twilio unchanged.

Decisions the relay makes (each counted as ``forwards|<role>|<outcome>``, the application's
time as the ``forward_latency`` histogram):

- ``answered``: whatever the application answered — 2xx, a 4xx/5xx of its own, a redirect
  (``Location`` passed back, made absolute against the application's URL so Twilio follows it
  to the application rather than to threadline), a body that is not TwiML — is passed back as
  it came. A 204/304 carries no body, as HTTP requires.
- ``timeout`` (``THREADLINE_FORWARD_TIMEOUT``, default 10 s: under Twilio's 15 s, so Twilio
  hears threadline's answer rather than its own timeout), ``unreachable`` (no connection) and
  ``bad_answer`` (not HTTP, or cut short) → 502, the answer Twilio treats as the
  application's failure: the number's fallback URL, which threadline never changes, applies.
- ``too_large``: an answer over :data:`MAX_ANSWER` (1 MiB) → 502, never truncated (a cut TwiML
  document would be executed wrongly). 1 MiB holds any TwiML a call or message flow returns
  many times over; threadline's own 64 KiB webhook bound is about what *Twilio* sends.
- ``loop``: a request that threadline itself relayed (it carries :data:`LOOP_HEADER`, e.g. a
  number whose recorded URL is threadline) is captured but never relayed again → 508.

The capture never depends on the application, and the application never depends on the
capture: the relay happens even when the log answered 503 (Redis away: that delivery is
counted as ``unavailable`` and lost to threadline, as it would be without forwarding) or a
parameter check refused it — a delivery Twilio signed reaches the application whatever
threadline thinks of it. Duplicates are relayed too: a Twilio retry reaches the application
again, as it would without threadline, while the log keeps one copy.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from urllib.parse import urlencode, urljoin

import aiohttp
from starlette.datastructures import ImmutableMultiDict
from starlette.responses import PlainTextResponse, Response
from starlette.types import Scope

from service.webhooks.signatures import Signatures
from service.webhooks.upstream_table import UpstreamTable
from workers import stats
from workers.foundations import log
from workers.foundations.settings import Settings
from workers.stats.buffer import StatsBuffer
from workers.twilio.upstreams import Upstream

logger = log.get_logger("threadline.forwarding")
__all__ = ["Relay", "MAX_ANSWER", "LOOP_HEADER", "OUTCOMES"]

MAX_ANSWER = 1024 * 1024
LOOP_HEADER = "x-threadline-forwarded"
ANSWERED, TIMEOUT, UNREACHABLE, BAD_ANSWER, TOO_LARGE, LOOP = (
    "answered", "timeout", "unreachable", "bad_answer", "too_large", "loop")
OUTCOMES = (ANSWERED, TIMEOUT, UNREACHABLE, BAD_ANSWER, TOO_LARGE, LOOP)
# Connections kept to the applications; Twilio's own concurrency bounds the rest. An idle one is
# closed after KEEPALIVE seconds, under the 5 s that uvicorn and Node servers keep one open, so
# the relay never sends a webhook on a connection the application is closing (which would fail
# it: a POST is not retried, the application might have run it).
CONNECTIONS = 256
KEEPALIVE = 4.0

# Request headers never relayed: hop-by-hop ones, those that describe threadline's side of the
# connection (the application must see its own URL, not threadline's proxy), the signature
# (recomputed) and the SharedKey settings (the relay signs with the account's Auth Token).
_DROP = frozenset(name.encode() for name in (
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer",
    "upgrade", "proxy-authorization", "proxy-connection", "accept-encoding", "forwarded",
    "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port",
    "x-real-ip", "x-twilio-signature", "x-twilio-webhooks-signature-settings", LOOP_HEADER))
_NO_BODY = (204, 304)


def _failure(status: int, reason: str) -> Response:
    return PlainTextResponse(reason + "\n", status)


class Relay:
    """One per web process: the forwarded numbers and a connection pool to the applications."""

    def __init__(self, settings: Settings, signatures: Signatures, counts: StatsBuffer,
                 redis_sync) -> None:
        self.table = UpstreamTable(redis_sync)
        self.timeout = settings.forward_timeout
        self._signatures = signatures
        self._counts = counts
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        await self.table.start()
        self._http()  # made now, so the first relayed webhook does not pay for it

    async def stop(self) -> None:
        await self.table.stop()
        if self._session is not None and not self._session.closed:
            await self._session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONNECTIONS, keepalive_timeout=KEEPALIVE),
                skip_auto_headers=("User-Agent",))
        return self._session

    def upstream(self, role: str, pairs: Sequence[tuple[str, str]]) -> tuple[Upstream, str, str] | None:
        """(record, URL, method) a webhook of ``role`` is relayed to, by its ``To``; no I/O."""
        if not len(self.table):
            return None
        to = next((v for n, v in pairs if n == "To"), None)
        up = self.table.get(to)
        target = up.target(role) if up is not None else None
        return (up, *target) if up is not None and target is not None else None

    def _count(self, role: str, outcome: str, elapsed_ms: float | None = None) -> None:
        counts = {stats.field("forwards", role, outcome): 1}
        if elapsed_ms is not None:
            counts.update(stats.histogram_fields("forward_latency", elapsed_ms, role))
        self._counts.add(counts)

    def _sign(self, account: str, url: str, params: object) -> str | None:
        validators = self._signatures.validators(account or None)
        if not validators:
            return None
        return validators[0].compute_signature(url, params)

    def request_for(self, upstream: Upstream, url: str, method: str, scope: Scope,
                    pairs: Sequence[tuple[str, str]], raw_body: bytes | None
                    ) -> tuple[str, list[tuple[str, str]], bytes | None]:
        """(URL, headers, body) of the relayed request, signed for the application's URL."""
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
                   if k.lower() not in _DROP]
        params: object
        if method == "GET":
            # As Twilio calls a GET webhook: the parameters in the query, the URL alone signed.
            if pairs:
                url += ("&" if "?" in url else "?") + urlencode(list(pairs))
            body, params = None, None
            headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
        else:
            # The body exactly as Twilio sent it when it came as a form POST; built otherwise.
            body = raw_body if raw_body is not None else urlencode(list(pairs)).encode()
            if raw_body is None:
                headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
                headers.append(("Content-Type", "application/x-www-form-urlencoded"))
            names = {n for n, _ in pairs}
            params = dict(pairs) if len(names) == len(pairs) else ImmutableMultiDict(list(pairs))
        signature = self._sign(upstream.account, url, params)
        if signature is not None:
            headers.append(("X-Twilio-Signature", signature))
        headers.append((LOOP_HEADER, "1"))
        return url, headers, body

    async def relay(self, role: str, target: tuple[Upstream, str, str], scope: Scope,
                    pairs: Sequence[tuple[str, str]], raw_body: bytes | None) -> Response:
        """Send the webhook on and answer with what the application answered (or a 502)."""
        if any(k.lower() == LOOP_HEADER.encode() for k, _ in scope["headers"]):
            self._count(role, LOOP)
            logger.warning("forwarded webhook came back to threadline: not relayed again",
                           extra={"role": role})
            return _failure(508, "forwarding loop: this webhook was relayed by threadline")
        upstream, url, method = target
        url, headers, body = self.request_for(upstream, url, method, scope, pairs, raw_body)
        started = time.perf_counter()
        outcome, answer = await self._send(method, url, headers, body)
        elapsed_ms = (time.perf_counter() - started) * 1000
        self._count(role, outcome, elapsed_ms)
        if outcome != ANSWERED:
            logger.warning("forwarded webhook not answered", extra={
                "role": role, "outcome": outcome, "elapsed_ms": round(elapsed_ms, 1)})
        else:
            logger.debug("webhook forwarded", extra={"role": role, "status": answer.status_code,
                                                     "elapsed_ms": round(elapsed_ms, 1)})
        return answer

    async def _send(self, method: str, url: str, headers: list[tuple[str, str]],
                    body: bytes | None) -> tuple[str, Response]:
        try:
            async with self._http().request(
                    method, url, headers=headers, data=body, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                if not 200 <= resp.status <= 599:
                    return BAD_ANSWER, _failure(502, "the application's answer is not usable")
                if resp.content_length is not None and resp.content_length > MAX_ANSWER:
                    return TOO_LARGE, _too_large()
                content = await _read_bounded(resp.content, MAX_ANSWER)
                if content is None:
                    return TOO_LARGE, _too_large()
                return ANSWERED, _answer(resp, content, url)
        except TimeoutError:  # aiohttp's timeouts are TimeoutErrors too
            return TIMEOUT, _failure(502, "the application did not answer in time")
        except (aiohttp.ClientConnectorError, aiohttp.InvalidURL):
            return UNREACHABLE, _failure(502, "the application could not be reached")
        except (aiohttp.ClientError, OSError, ValueError):
            return BAD_ANSWER, _failure(502, "the application's answer is not usable")


def _too_large() -> Response:
    return _failure(502, f"the application's answer is over {MAX_ANSWER} bytes")


async def _read_bounded(stream: aiohttp.StreamReader, limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` (a body without a length, too)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.readany()
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def _answer(resp: aiohttp.ClientResponse, content: bytes, url: str) -> Response:
    """The application's answer as Twilio gets it: status, Content-Type, Location, body."""
    status = resp.status
    answer = Response(b"" if status in _NO_BODY else content, status)
    for name, value in resp.raw_headers:
        lower = name.lower()
        if lower == b"content-type":
            answer.raw_headers.append((b"content-type", value))
        elif lower == b"location":
            location = urljoin(url, value.decode("latin-1")).encode("latin-1", "replace")
            answer.raw_headers.append((b"location", location))
    return answer


