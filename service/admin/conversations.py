"""``/api/v1/conversations``: list, inspect, explicitly close (or pause/reopen), actively create.

- ``GET /api/v1/conversations?status=&channel=&configuration=&address=&since=&until=&limit=&offset=``
  newest first; ``address`` keeps those with a CUSTOMER whose address contains it, ``since`` /
  ``until`` bound the creation time (ISO 8601, UTC when no offset is given); ``next`` is the
  offset of the following page (absent on the last one).
- ``GET /api/v1/conversations/{id}`` (threadline ``tlc_…`` id or v2 id): participants,
  channels, timers (the armed check and the next transition), the pinned configuration
  version, ``flagged`` when v2 refused a status PATCH for good, and ``deadLetters``: the dead
  letters between the same two addresses (the events of this key that never made it in).
- ``GET /api/v1/conversations/{id}/communications?pageSize=&pageToken=``: its timeline, read
  from v2's communications list on demand (threadline stores no content). v2's page as it came,
  ``next`` = v2's nextToken. 409 while the conversation is CREATING (no v2 id yet); a v2 refusal
  → 502, v2 failing transiently → 503, each with v2's status and message (never a body).
- ``PATCH /api/v1/conversations/{id}`` ``{"status": "CLOSED"|"INACTIVE"|"ACTIVE"}`` → PATCH to
  v2, then the store: a CLOSED conversation leaves grouping, so the key's next traffic
  starts a new one. 404 unknown, 409 already CLOSED / not allowed, 400 bad body, 503 when
  v2 kept failing transiently (nothing recorded: try again), 502 when v2 refused (flagged).
- ``POST /api/v1/conversations`` ``{"configurationId", "participants": [...], "name"?}`` →
  201, created in v2 and registered for grouping (workers/lifecycle/active.py).
"""
from __future__ import annotations

import time
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.admin.answers import error as _err
from service.admin.answers import json_object, redis_guard
from workers.capture.store import AsyncConfigStore
from workers.conversations.store import ConversationStore, LockTimeout
from workers.eventlog.deadletters import DeadLetter
from workers.foundations import keys
from workers.foundations.addresses import normalize, split_prefix
from workers.foundations.text import as_str
from workers.lifecycle import active, timers, transitions
from workers.lifecycle import policy as lifecycle
from workers.twilio.client import V2Client, V2Error

MAX_LIMIT = 500
# The newest dead letters scanned for a conversation's own (the stream is never long for long:
# a dead letter leaves it by replay).
DEAD_SCAN = 1000
TIMELINE_PAGE = 100


_redis_guard = redis_guard("conversations")


def _v2(request: Request) -> V2Client:
    """The web process's own client: never the worker runtime's, which lives on another loop
    in ``threadline dev``."""
    client = getattr(request.app.state, "lifecycle_v2", None)
    if client is None:
        client = request.app.state.lifecycle_v2 = V2Client(request.app.state.settings)
    return client


def _store(request: Request) -> ConversationStore:
    st = getattr(request.app.state, "conversation_store", None)
    if st is None:
        st = request.app.state.conversation_store = ConversationStore(request.app.state.redis)
    return st


async def _find(request: Request, conv_id: str):
    store = _store(request)
    return await store.get(conv_id) or await store.get_by_twilio_id(conv_id)


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"


async def _view(request: Request, conv, *, detail: bool) -> dict:
    out = conv.to_api()
    if not detail:
        return out
    redis = request.app.state.redis
    settings = request.app.state.settings
    due = await redis.zscore(keys.TIMERS, conv.id)
    timer: dict = {"armedAt": _iso(float(due)) if due is not None else None}
    activity = conv.last_activity or {p.channel: conv.created_at for p in conv.participants.values()}
    if conv.status in lifecycle.OPEN and activity:
        vc = await AsyncConfigStore(redis).get(conv.configuration_id, conv.configuration_version)
        touts = lifecycle.channel_timeouts(vc.config if vc else None, activity)
        since, react = await transitions.since_of(redis, conv.id)
        d = lifecycle.decide(conv.status, activity, touts, settings.minute_seconds,
                             time.time(), status_since=since, reactivated_at=react)
        timer.update({"next": d.next_status, "nextAt": _iso(d.next_due),
                      "timeouts": {ch: {"inactive": t.inactive, "closed": t.closed}
                                   for ch, t in touts.items()},
                      "minuteSeconds": settings.minute_seconds})
    out["timers"] = timer
    flag = await transitions.flagged(redis, conv.id)
    if flag:
        out["flagged"] = flag
    out["deadLetters"] = await _dead_letters_of(redis, conv)
    return out


async def _dead_letters_of(redis, conv) -> list[dict]:
    """The dead letters between two of this conversation's participants (newest first; on the
    same channel when the grouping is per channel): what this key's traffic lost."""
    bares = set(conv.participants)
    per_channel = conv.grouping_type == "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE"
    out = []
    for raw_id, fields in await redis.xrevrange(keys.DEAD_LETTERS, count=DEAD_SCAN):
        view = DeadLetter(as_str(raw_id), {as_str(k): as_str(v) for k, v in fields.items()}).view()
        params = (view.get("entry") or {}).get("params") or {}
        frm, to = params.get("From"), params.get("To")
        if not (isinstance(frm, str) and isinstance(to, str)):
            continue
        if normalize(frm) not in bares or normalize(to) not in bares:
            continue
        channel = split_prefix(frm)[0] or ("VOICE" if params.get("CallSid") else "SMS")
        if per_channel and conv.channels and channel not in conv.channels:
            continue
        out.append({k: view.get(k) for k in ("id", "reason", "deadAt", "error")})
    return out


def _instant(raw: str | None, name: str) -> float | None:
    """An ISO 8601 query value → epoch seconds (no offset given = UTC)."""
    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name}: not an ISO 8601 time (e.g. 2026-12-03T10:00:00Z)") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


@_redis_guard
async def list_conversations(request: Request) -> JSONResponse:
    q = request.query_params
    status = q.get("status")
    if status and status not in ("CREATING", *lifecycle.STATUSES):
        return _err(400, "status: must be ACTIVE, INACTIVE, CLOSED or CREATING")
    try:
        limit = int(q.get("limit", "50"))
        offset = int(q.get("offset", "0"))
    except ValueError:
        return _err(400, "limit and offset must be integers")
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        return _err(400, f"limit must be 1..{MAX_LIMIT} and offset ≥ 0")
    try:
        since, until = _instant(q.get("since"), "since"), _instant(q.get("until"), "until")
    except ValueError as exc:
        return _err(400, str(exc))
    convs = await _store(request).list(status=status, channel=q.get("channel") or None,
                                       configuration_id=q.get("configuration") or None,
                                       address=(q.get("address") or "").strip() or None,
                                       since=since, until=until, limit=limit + 1, offset=offset)
    page = convs[:limit]
    body: dict = {"conversations": [c.to_api() for c in page], "offset": offset, "limit": limit}
    if len(convs) > limit:
        body["next"] = offset + limit
    return JSONResponse(body)


@_redis_guard
async def get_conversation(request: Request) -> JSONResponse:
    conv = await _find(request, request.path_params["id"])
    if conv is None:
        return _err(404, "no such conversation")
    return JSONResponse(await _view(request, conv, detail=True))


@_redis_guard
async def patch_conversation(request: Request) -> JSONResponse:
    if isinstance(body := await json_object(request), JSONResponse):
        return body
    if set(body) != {"status"}:
        return _err(400, 'body must be {"status": "CLOSED" | "INACTIVE" | "ACTIVE"}')
    wanted = body["status"]
    store = _store(request)
    conv = await _find(request, request.path_params["id"])
    if conv is None:
        return _err(404, "no such conversation")
    if conv.status == "CREATING":
        return _err(409, "conversation is still being created in v2; try again shortly")
    settings, redis = request.app.state.settings, request.app.state.redis
    try:
        async with store.lock(conv.configuration_id, conv.grouping_key, wait=10.0):
            conv = await store.get(conv.id)
            if conv is None:  # removed while we waited for the lock (the retention sweep)
                return _err(404, "no such conversation")
            try:
                send = lifecycle.check_explicit(conv.status, wanted)
            except lifecycle.TransitionRefused as exc:
                return _err(409 if exc.already or wanted in lifecycle.STATUSES else 400, exc.reason,
                            current=conv.status)
            if send:
                await transitions.send_status(settings, redis, store, _v2(request),
                                              conv, wanted, "explicit")
                if wanted != lifecycle.CLOSED:
                    # Re-arm at once: the job decides the next deadline from the new status.
                    pipe = redis.pipeline(transaction=False)
                    timers.schedule_now(pipe, conv.id)
                    await pipe.execute()
    except LockTimeout:
        return _err(503, "conversation is busy (its grouping key stayed locked); try again")
    except transitions.TransientFailure as exc:
        return _err(503, "v2 did not accept the PATCH (transient); nothing recorded, try again",
                    detail=str(exc)[:300])
    except transitions.Refused as exc:
        return _err(502, "v2 refused the PATCH; the conversation is flagged",
                    reason=exc.reason, detail=exc.error[:300])
    after = await store.get(conv.id)
    return JSONResponse(await _view(request, after or conv, detail=True))


@_redis_guard
async def list_communications(request: Request) -> JSONResponse:
    conv = await _find(request, request.path_params["id"])
    if conv is None:
        return _err(404, "no such conversation")
    if not conv.twilio_id:
        return _err(409, "conversation is still being created in v2: no timeline yet",
                    status=conv.status)
    q = request.query_params
    try:
        size = int(q.get("pageSize", str(TIMELINE_PAGE)))
    except ValueError:
        size = 0
    if not 1 <= size <= 1000:
        return _err(400, "pageSize must be an integer from 1 to 1000")
    try:
        data = await _v2(request).list_communications(conv.twilio_id, page_size=size,
                                                      page_token=q.get("pageToken") or None)
    except V2Error as exc:
        what = ("v2 has no such conversation" if exc.status == 404
                else "v2 did not return the timeline")
        return _err(503 if exc.transient else 502, what, v2Status=exc.status,
                    detail=str(exc)[:300])
    comms = data.get("communications")
    if not isinstance(comms, list):
        return _err(502, "v2 answered without a communications list")
    body: dict = {"conversationId": conv.id, "twilioConversationId": conv.twilio_id,
                  "communications": comms}
    token = (data.get("meta") or {}).get("nextToken") if isinstance(data.get("meta"), dict) else None
    if token:
        body["next"] = token
    return JSONResponse(body)


@_redis_guard
async def create_conversation(request: Request) -> JSONResponse:
    if isinstance(body := await json_object(request), JSONResponse):
        return body
    if not isinstance(body.get("configurationId"), str):
        return _err(400, "configurationId: required (a threadline configuration id)")
    redis, settings = request.app.state.redis, request.app.state.settings
    vc = await AsyncConfigStore(redis).get(body["configurationId"])
    if vc is None:
        return _err(404, "configurationId: no such configuration")
    name = body.get("name") if isinstance(body.get("name"), str) else None
    try:
        wanted = active.parse_participants(body.get("participants"))
        v2_config = await v2_configuration_id(redis, vc.config)
        if not v2_config:
            return _err(409, "configuration is not bound to a v2 Configuration yet: set "
                             "twilioConfigurationId or run `threadline configs sync`")
        conv = await active.create(settings, redis, _store(request), _v2(request),
                                   vc.config, vc.version, v2_config, wanted, name)
    except active.BadRequest as exc:
        return _err(400, str(exc))
    except active.Conflict as exc:
        return _err(409, str(exc), existing=exc.existing)
    except LockTimeout:
        return _err(503, "grouping key stayed locked; try again")
    except V2Error as exc:
        return _err(503 if exc.transient else 502, "v2 did not create the conversation",
                    detail=str(exc)[:300])
    created = await _store(request).get(conv.id)
    return JSONResponse(await _view(request, created or conv, detail=True), 201)


async def v2_configuration_id(redis, config) -> str | None:
    """The v2 Configuration a threadline configuration is bound to (explicitly or by sync)."""
    if config.twilioConfigurationId:
        return config.twilioConfigurationId
    bound = await redis.hget(keys.CONFIG_V2_IDS, config.id)
    return (bound.decode() if isinstance(bound, bytes) else bound) or None


routes = [
    Route("/conversations", list_conversations, methods=["GET"]),
    Route("/conversations", create_conversation, methods=["POST"]),
    Route("/conversations/{id}", get_conversation, methods=["GET"]),
    Route("/conversations/{id}", patch_conversation, methods=["PATCH"]),
    Route("/conversations/{id}/communications", list_communications, methods=["GET"]),
]
