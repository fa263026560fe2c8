"""Admin API for the dead-letter stream: list, inspect and replay (DESIGN §3, §5).

- ``GET /api/v1/dead-letters?count=50&after=<id>``: oldest first; ``meta.nextCursor`` is the
  ``after`` of the next page (absent on the last one); ``meta.total`` is the stream's length.
- ``GET /api/v1/dead-letters/{id}``: one dead letter (message text shown only as its length).
- ``POST /api/v1/dead-letters/{id}/replay``: back into its shard's log (workers.eventlog.deadletters);
  404 when there is no such letter (already replayed), 409 when its entry never decoded.

The stream is read with the synchronous client in a thread: replay enqueues an RQ job, which
is synchronous, and these calls are rare and small.
"""
from __future__ import annotations

from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from workers.eventlog import deadletters
from workers.foundations.log import get_logger

logger = get_logger("threadline.admin")

MAX_PAGE = 1000


def _unavailable() -> JSONResponse:
    return JSONResponse({"error": "Redis is unavailable; try again"}, 503)


async def list_dead_letters(request: Request) -> JSONResponse:
    raw_count = request.query_params.get("count", "50")
    after = request.query_params.get("after") or None
    if not raw_count.isdigit() or not 1 <= int(raw_count) <= MAX_PAGE:
        return JSONResponse({"error": f"count must be an integer from 1 to {MAX_PAGE}"}, 400)
    if after is not None and not deadletters.valid_id(after):
        return JSONResponse({"error": "after must be a dead-letter id such as 1700000000000-0"}, 400)
    redis = request.app.state.redis_sync

    def read() -> tuple[list, str | None, int]:
        page, cursor = deadletters.list(redis, int(raw_count), after)
        return page, cursor, deadletters.count(redis)

    try:
        page, cursor, total = await run_in_threadpool(read)
    except RedisError:
        return _unavailable()
    meta: dict[str, object] = {"count": len(page), "total": total}
    if cursor:
        meta["nextCursor"] = cursor
    return JSONResponse({"deadLetters": [d.view() for d in page], "meta": meta})


async def get_dead_letter(request: Request) -> JSONResponse:
    dead_id = request.path_params["id"]
    try:
        letter = await run_in_threadpool(deadletters.get, request.app.state.redis_sync, dead_id)
    except RedisError:
        return _unavailable()
    if letter is None:
        return JSONResponse({"error": f"no dead letter {dead_id!r}"}, 404)
    return JSONResponse(letter.view())


async def replay_dead_letter(request: Request) -> JSONResponse:
    dead_id = request.path_params["id"]
    settings = request.app.state.settings
    try:
        done = await run_in_threadpool(deadletters.replay, request.app.state.redis_sync,
                                       dead_id, settings)
    except deadletters.NotReplayable as exc:
        return JSONResponse({"error": str(exc)}, 409)
    except RedisError:
        return _unavailable()
    if done is None:
        return JSONResponse({"error": f"no dead letter {dead_id!r} (already replayed?)"}, 404)
    return JSONResponse({"replayed": done.dead_id, "shard": done.shard, "entryId": done.entry_id,
                         "drainEnqueued": done.drain_enqueued})


routes = [
    Route("/dead-letters", list_dead_letters, methods=["GET"]),
    Route("/dead-letters/{id}", get_dead_letter, methods=["GET"]),
    Route("/dead-letters/{id}/replay", replay_dead_letter, methods=["POST"]),
]
