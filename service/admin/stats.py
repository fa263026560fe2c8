"""``GET /api/v1/stats``: the JSON view of the counters, histograms and live gauges.

The same numbers as ``/metrics`` and ``/dashboard`` (all three call
:func:`workers.stats.read.read_stats`). Query: ``window`` (``5m``, ``1h`` … up to the
retention; default ``1h``) and ``configuration`` (an id). An unknown window or configuration is
a 400 with the reason — zeros would read as "no traffic" — and Redis unreachable is a 503, so
the dashboard can say so instead of drawing empty charts.
"""
from __future__ import annotations

import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from workers import stats
from workers.foundations.log import get_logger
from workers.stats.read import StatsQueryError, read_stats

logger = get_logger("threadline.stats")


async def _count_refusal(request: Request, reason: str) -> None:
    settings = request.app.state.settings
    try:
        pipe = request.app.state.redis.pipeline(transaction=False)
        stats.add(pipe, {stats.field("stats_queries_refused", reason): 1},
                  retention_minutes=settings.stats_retention_minutes)
        await pipe.execute()
    except redis.RedisError:
        pass  # the 400 still answers; the count is best-effort when Redis is down


async def get_stats(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    window = request.query_params.get("window", "1h")
    configuration = request.query_params.get("configuration") or None
    try:
        data = await run_in_threadpool(read_stats, request.app.state.redis_sync, settings,
                                       window=window, configuration=configuration)
    except StatsQueryError as exc:
        await _count_refusal(request, exc.field)
        return JSONResponse({"error": str(exc)}, 400)
    except redis.RedisError as exc:
        logger.warning("stats read failed: redis unavailable", extra={"error": type(exc).__name__})
        return JSONResponse({"error": "redis unavailable", "redis": "down"}, 503)
    return JSONResponse(data)


routes = [Route("/stats", get_stats, methods=["GET"])]
