"""Every call threadline makes to Twilio's APIs (Conversations v2, Memory v1, Messages), async.

One :class:`V2Client` per worker process holds one connection pool: HTTP/1.1 keep-alive
connections pooled up to ``THREADLINE_MAX_INFLIGHT``, so a drain's hundreds of calls reuse a
handful of TLS connections instead of paying a handshake each. The engine's client
(:func:`engine_client`) sends through a lean HTTP/1.1 keep-alive client
(:class:`workers.twilio.transport.Http11Sender`: one HTTP stack per call, measured beside aiohttp
and httpx in ``bench/httpstack.py``); a client made without a sender
(the CLI, the web tier, tests with an ``httpx`` mock transport) uses ``httpx.AsyncClient``.
Both raise httpx's transport errors, so the failure rules below are the same on either. URLs come from
:func:`workers.twilio.urls.api_url`, so ``THREADLINE_TWILIO_BASE_URL`` sends everything to the
twin or a proxy. Bodies are JSON with every ``null`` removed (threadline's requests never carry
one; the contract test checks).

Failures (DESIGN §5):
- 429, 5xx, connection errors and timeouts are retried here with exponential backoff and full
  jitter (:mod:`workers.twilio.backoff`), honouring ``Retry-After``, up to ``THREADLINE_MAX_ATTEMPTS``
  attempts; then :class:`V2Error` with ``transient=True`` (reason ``retries_exhausted``).
- Any other 4xx raises at once (``transient=False``, reason ``v2_rejected``).
- v2 takes no idempotency key on conversation and participant creates. When such a create
  times out *after the request was sent*, Twilio may or may not have made the resource: the
  call is counted (``uncertain_creates|<resource>``), marked ``uncertain`` and retried. That
  retry is the only window in which a duplicate conversation or participant can appear;
  the engine tags conversations with their grouping key so an operator can find one.
  Communications are safe: ``resourceId`` makes a repeat an update.

Concurrency: every HTTP attempt holds a place in the client's adaptive limit
(:mod:`workers.twilio.concurrency`), one per process, shared by v2, Memory and Messages calls alike —
Twilio's limit on concurrent requests is per account. It starts at ``THREADLINE_MAX_INFLIGHT``
and a 429 lowers it (``v2_limit|decreased``, logged at INFO with the new limit); successes
while the window is full raise it back by one per window. A place is given back before any backoff sleep, so a request
waiting to retry never keeps another from being sent.

Every attempt is counted (``v2_requests|<route>|<status>`` and the ``v2_latency`` histogram,
route = a template such as ``POST /v2/Conversations/{id}/Communications``). The counts go
through :class:`workers.stats.buffer.StatsBuffer`, flushed in one pipeline about once a second,
never one Redis round trip per call. Logs carry route, status, latency and the correlation id:
never a body (success at DEBUG, retries and failures at WARNING).
"""
from __future__ import annotations

import asyncio
import time
import uuid
from importlib import metadata
from typing import Any

import httpx

from workers import stats
from workers.foundations.log import get_logger
from workers.foundations.settings import Settings
from workers.foundations.text import path_segment as _q
from workers.stats.buffer import StatsBuffer, shared
from workers.twilio import backoff
from workers.twilio.concurrency import AdaptiveLimit
from workers.twilio.errors import is_transient
from workers.twilio.transport import Http11Sender, Reply, Sender
from workers.twilio.urls import api_url
from workers.twilio.wire import Accepted, V2Error, accepted, json_or_none, operation_id, strip_nulls

__all__ = ["USER_AGENT", "Accepted", "V2Client", "V2Error", "engine_client", "shared_client", "strip_nulls"]

logger = get_logger("threadline.v2")

try:
    VERSION = metadata.version("threadline")
except metadata.PackageNotFoundError:  # running from a source tree without install
    VERSION = "0.1.0"
USER_AGENT = f"threadline/{VERSION}"

# Transport errors raised before any byte of the request left: never an uncertain create.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


class V2Client:
    def __init__(self, settings: Settings, *, stats_buffer: StatsBuffer | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 sender: Sender | None = None) -> None:
        self.settings = settings
        self.stats = stats_buffer if stats_buffer is not None else shared(settings)
        self._transport = transport
        self._sender = sender
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Twilio's per-account concurrency, learnt from its 429s (workers.twilio.concurrency).
        self.limit = AdaptiveLimit.with_ceiling(settings.max_inflight)

    # --- plumbing --------------------------------------------------------------------------
    def _client(self) -> httpx.AsyncClient:
        """The pooled client, (re)made when first used in a new event loop.

        Pooled connections belong to the loop that opened them; a worker that keeps one loop
        (the engine's drains do) reuses them across jobs, and a new loop gets a fresh pool
        instead of a broken one.
        """
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            n = self.settings.max_inflight
            t = self.settings.twilio_timeout
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(t, connect=min(t, 5.0)),
                limits=httpx.Limits(max_connections=n, max_keepalive_connections=n,
                                    keepalive_expiry=60.0),
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                transport=self._transport,
            )
            self._loop = loop
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._sender is not None:
            await self._sender.aclose()
        self.stats.flush()

    async def __aenter__(self) -> V2Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _auth(self, account_sid: str | None = None) -> tuple[str, str]:
        if account_sid and account_sid in self.settings.subaccount_tokens:
            return (account_sid, self.settings.subaccount_tokens[account_sid])
        creds = self.settings.api_credentials
        if creds is None:
            raise V2Error(None, None, "no Twilio credentials: set TWILIO_API_KEY and "
                          "TWILIO_API_SECRET, or TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
                          transient=False, attempts=0, reason="no_credentials")
        return creds

    def _lowered(self, route: str) -> None:
        self.stats.add({stats.field("v2_limit", "decreased"): 1})
        logger.info("v2 concurrency limit lowered", extra={"route": route, "limit": self.limit.limit,
                                                          "ceiling": self.settings.max_inflight})

    def _count(self, route: str, status: object, ms: float) -> None:
        counts = {stats.field("v2_requests", route, status): 1}
        counts.update(stats.histogram_fields("v2_latency", ms, route))
        self.stats.add(counts)

    async def request(self, method: str, route: str, path: str, *, json: Any = None,
                      params: Any = None, form: Any = None, headers: dict[str, str] | None = None,
                      create: str | None = None, account_sid: str | None = None,
                      retry_uncertain: bool = True) -> httpx.Response | Reply:
        """One logical call with its retries; returns the successful (< 400) response.

        ``form`` is a form-encoded body (Conversations classic), ``json`` a JSON one (v2, Memory).
        ``create`` names the resource (``conversation``, ``participant``) when the call is a
        create without an idempotency key, so a timeout after sending is counted uncertain.
        """
        url = api_url(self.settings, path)
        body = strip_nulls(json) if json is not None else None
        auth = self._auth(account_sid)
        attempts, uncertain = 0, False
        while True:
            attempts += 1
            retry_after: float | None = None
            try:
                # One place in the adaptive window per attempt, given back before any backoff;
                # the latency counted is the attempt's, not the wait for a place.
                async with self.limit.slot() as slot:
                    t0 = time.perf_counter()
                    resp: httpx.Response | Reply
                    if self._sender is not None:
                        resp = await self._sender.send(method, url, json_body=body, params=params,
                                                       form=form, headers=headers, auth=auth)
                    else:
                        resp = await self._client().request(method, url, json=body, params=params,
                                                            data=form, headers=headers, auth=auth)
                    ms = (time.perf_counter() - t0) * 1000
                    if resp.status_code == 429:
                        slot.overloaded()
                    elif resp.status_code < 400:
                        slot.succeeded()
                if slot.decreased:
                    self._lowered(route)
            except httpx.TransportError as exc:
                ms = (time.perf_counter() - t0) * 1000
                timeout = isinstance(exc, httpx.TimeoutException)
                self._count(route, "timeout" if timeout else "error", ms)
                if create and not isinstance(exc, _NOT_SENT):
                    uncertain = True
                    self.stats.add({stats.field("uncertain_creates", create): 1})
                err = V2Error(None, None, type(exc).__name__, transient=True, uncertain=uncertain,
                              attempts=attempts, route=route)
            else:
                status = resp.status_code
                self._count(route, status, ms)
                if status < 400:
                    logger.debug("v2 call", extra={"route": route, "status": status,
                                                   "ms": round(ms, 1), "attempt": attempts})
                    return resp
                data = json_or_none(resp)
                code = data.get("code") if isinstance(data, dict) else None
                message = str(data.get("message", "")) if isinstance(data, dict) else ""
                err = V2Error(status, code if isinstance(code, int) else None,
                              message or resp.reason_phrase, transient=is_transient(status),
                              uncertain=uncertain, attempts=attempts, route=route,
                              body=data if isinstance(data, dict) else None,
                              conflicting_id=resp.headers.get("X-Conflicting-Resource-Id"))
                retry_after = backoff.parse_retry_after(resp.headers.get("Retry-After"))
            extra = {"route": route, "status": err.status, "code": err.code, "ms": round(ms, 1),
                     "attempt": attempts, "uncertain": uncertain}
            if not err.transient or attempts >= self.settings.max_attempts or (
                    uncertain and not retry_uncertain):
                logger.warning("v2 call failed", extra={**extra, "reason": err.reason})
                raise err
            wait = backoff.delay(attempts, base=self.settings.retry_base,
                                 cap=self.settings.retry_cap, retry_after=retry_after)
            logger.warning("v2 call retried", extra={**extra, "wait_s": round(wait, 3)})
            await asyncio.sleep(wait)

    async def _json(self, method: str, route: str, path: str, *, need: tuple[str, ...] = (),
                    **kw: Any) -> dict:
        resp = await self.request(method, route, path, **kw)
        data = json_or_none(resp)
        missing = [f for f in need if not isinstance(data, dict) or data.get(f) in (None, "")]
        if not isinstance(data, dict) or missing:
            what = f"missing {', '.join(missing)}" if isinstance(data, dict) else "not a JSON object"
            raise V2Error(resp.status_code, None, f"response {what}", transient=False,
                          route=route, reason="v2_bad_response")
        return data

    # --- conversations ---------------------------------------------------------------------
    async def create_conversation(self, body: dict, *, retry_uncertain: bool = True) -> dict:
        """``retry_uncertain=False``: a create whose outcome is unknown raises at once (uncertain)
        instead of being sent again, so the caller can look for it first (the engine does)."""
        return await self._json("POST", "POST /v2/Conversations", "/v2/Conversations",
                                json=body, create="conversation", need=("id",),
                                retry_uncertain=retry_uncertain)

    async def fetch_conversation(self, conversation_id: str) -> dict:
        return await self._json("GET", "GET /v2/Conversations/{id}",
                                f"/v2/Conversations/{_q(conversation_id)}", need=("id",))

    async def patch_conversation(self, conversation_id: str, body: dict) -> dict:
        return await self._json("PATCH", "PATCH /v2/Conversations/{id}",
                                f"/v2/Conversations/{_q(conversation_id)}", json=body, need=("id",))

    async def list_conversations(self, *, status: list[str] | None = None,
                                 channel_id: str | None = None, page_size: int | None = None,
                                 page_token: str | None = None) -> dict:
        params = strip_nulls({"status": status, "channelId": channel_id, "pageSize": page_size,
                              "pageToken": page_token})
        return await self._json("GET", "GET /v2/Conversations", "/v2/Conversations",
                                params=params, need=("conversations",))

    async def create_participant(self, conversation_id: str, body: dict) -> dict:
        return await self._json("POST", "POST /v2/Conversations/{id}/Participants",
                                f"/v2/Conversations/{_q(conversation_id)}/Participants",
                                json=body, create="participant", need=("id",))

    async def update_participant(self, conversation_id: str, participant_id: str, body: dict) -> dict:
        return await self._json(
            "PUT", "PUT /v2/Conversations/{id}/Participants/{pid}",
            f"/v2/Conversations/{_q(conversation_id)}/Participants/{_q(participant_id)}",
            json=body, need=("id",))

    async def create_communication(self, conversation_id: str, body: dict) -> dict:
        """Create, or update when ``body['resourceId']`` already exists in the conversation."""
        return await self._json("POST", "POST /v2/Conversations/{id}/Communications",
                                f"/v2/Conversations/{_q(conversation_id)}/Communications",
                                json=body, need=("id",))

    async def list_communications(self, conversation_id: str, *, page_size: int | None = None,
                                  page_token: str | None = None, channel_id: str | None = None) -> dict:
        """A page of the conversation's communications; ``channel_id`` filters by ``channelId``."""
        params = strip_nulls({"channelId": channel_id, "pageSize": page_size, "pageToken": page_token})
        return await self._json("GET", "GET /v2/Conversations/{id}/Communications",
                                f"/v2/Conversations/{_q(conversation_id)}/Communications",
                                params=params)

    # --- messages (status callbacks carry no body) -----------------------------------------
    async def fetch_message(self, account_sid: str, message_sid: str) -> dict:
        """A message of ``account_sid`` (a subaccount's own token when THREADLINE_AUTH_TOKENS has it)."""
        return await self._json(
            "GET", "GET /2010-04-01/Accounts/{sid}/Messages/{sid}.json",
            f"/2010-04-01/Accounts/{_q(account_sid)}/Messages/{_q(message_sid)}.json",
            account_sid=account_sid, need=("sid",))

    # --- Conversations (classic): the bridge's replies and its webhook configuration --------
    async def create_classic_message(self, service_sid: str, conversation_sid: str,
                                     author: str, body: str) -> dict:
        """Post a message into a classic conversation, with its webhooks (the operator's own
        application hears about it; threadline's bridge takes the echo as a duplicate)."""
        return await self._json(
            "POST", "POST /v1/Services/{sid}/Conversations/{sid}/Messages",
            f"/v1/Services/{_q(service_sid)}/Conversations/{_q(conversation_sid)}/Messages",
            form={"Author": author, "Body": body}, headers={"X-Twilio-Webhook-Enabled": "true"},
            need=("sid",))

    async def fetch_classic_conversation(self, service_sid: str, conversation_sid: str) -> dict:
        """A classic conversation of a service (a 404 when the service has no such conversation)."""
        return await self._json("GET", "GET /v1/Services/{sid}/Conversations/{sid}",
                                f"/v1/Services/{_q(service_sid)}/Conversations/{_q(conversation_sid)}",
                                need=("sid",))

    async def fetch_classic_webhooks(self, service_sid: str) -> dict:
        return await self._json("GET", "GET /v1/Services/{sid}/Configuration/Webhooks",
                                f"/v1/Services/{_q(service_sid)}/Configuration/Webhooks")

    async def update_classic_webhooks(self, service_sid: str, form: dict[str, Any]) -> dict:
        """Set a classic service's webhook configuration (a list value repeats the name: Filters)."""
        return await self._json("POST", "POST /v1/Services/{sid}/Configuration/Webhooks",
                                f"/v1/Services/{_q(service_sid)}/Configuration/Webhooks", form=form)

    # --- control plane: configurations and their operations --------------------------------
    async def create_configuration(self, body: dict, idempotency_key: str | None = None) -> Accepted:
        resp = await self.request(
            "POST", "POST /v2/ControlPlane/Configurations", "/v2/ControlPlane/Configurations",
            json=body, headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())})
        return accepted(resp, "POST /v2/ControlPlane/Configurations")

    async def update_configuration(self, configuration_id: str, body: dict,
                                   idempotency_key: str | None = None) -> Accepted:
        route = "PUT /v2/ControlPlane/Configurations/{id}"
        resp = await self.request(
            "PUT", route, f"/v2/ControlPlane/Configurations/{_q(configuration_id)}", json=body,
            headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())})
        return accepted(resp, route)

    async def fetch_configuration(self, configuration_id: str) -> dict:
        return await self._json("GET", "GET /v2/ControlPlane/Configurations/{id}",
                                f"/v2/ControlPlane/Configurations/{_q(configuration_id)}",
                                need=("id",))

    async def fetch_operation(self, operation_id: str) -> dict:
        return await self._json("GET", "GET /v2/ControlPlane/Operations/{id}",
                                f"/v2/ControlPlane/Operations/{_q(operation_id)}",
                                need=("status",))

    async def wait_operation(self, ref: Accepted | str, timeout: float = 60.0, *,
                             interval: float | None = None) -> dict:
        """Poll an operation until COMPLETED or FAILED; returns its final status object.

        ``ref`` is the :class:`Accepted`, a ``statusUrl`` or an operation id. A statusUrl is
        reduced to its operation id and fetched through ``api_url``: credentials never go to a
        host named in a response. Polls every ``interval`` s (default: Twilio's Retry-After,
        else 1 s). Still PENDING at ``timeout`` → :class:`V2Error` (transient, reason
        ``operation_timeout``).
        """
        op_id = ref.operation_id if isinstance(ref, Accepted) else operation_id(ref)
        if interval is None:
            hinted = ref.retry_after if isinstance(ref, Accepted) else None
            interval = hinted if hinted is not None else 1.0
        interval = max(interval, 0.05)  # Retry-After: 0 means "soon", not "spin"
        deadline = time.monotonic() + timeout
        while True:
            op = await self.fetch_operation(op_id)
            if op.get("status") in ("COMPLETED", "FAILED"):
                return op
            left = deadline - time.monotonic()
            if left <= 0:
                raise V2Error(None, None, f"operation {op_id} still {op.get('status')} after "
                              f"{timeout:g}s", transient=True, route="GET /v2/ControlPlane/"
                              "Operations/{id}", reason="operation_timeout")
            await asyncio.sleep(min(interval, left))

    # --- Memory (profiles) -----------------------------------------------------------------
    async def lookup_profile(self, store_id: str, body: dict) -> dict:
        """``POST /v1/Stores/{storeId}/Profiles/Lookup`` (``{idType, value}``) → ``{profiles: […]}``.

        A 404 (no such store or profile) raises :class:`V2Error` with ``status == 404``.
        """
        return await self._json("POST", "POST /v1/Stores/{id}/Profiles/Lookup",
                                f"/v1/Stores/{_q(store_id)}/Profiles/Lookup", json=body)

    async def create_profile(self, store_id: str, body: dict) -> dict:
        """``POST /v1/Stores/{storeId}/Profiles`` (``{traits: …}``) → 202 ``{id, message}``."""
        return await self._json("POST", "POST /v1/Stores/{id}/Profiles",
                                f"/v1/Stores/{_q(store_id)}/Profiles", json=body, need=("id",))


def engine_client(settings: Settings) -> V2Client:
    """The worker's client: the lean HTTP/1.1 sender under the V2Client's retries, limit and stats."""
    return V2Client(settings, sender=Http11Sender(
        settings.max_inflight, timeout=settings.twilio_timeout,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"}))


_shared_client: V2Client | None = None


def shared_client(settings: Settings) -> V2Client:
    """The process's client (one connection pool per worker process, reused across jobs)."""
    global _shared_client
    if _shared_client is None or _shared_client.settings != settings:
        _shared_client = V2Client(settings)
    return _shared_client
