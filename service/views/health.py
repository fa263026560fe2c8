"""``GET /readyz``: can this process take webhooks right now?

Ready means Redis answers *and* accepts writes (a replica, a full ``maxmemory`` or a
``MISCONF`` after a failed save all answer PING but refuse the XADD a webhook needs), so the
probe writes a short-lived key. ``/healthz`` (process up, no dependency) lives in
``service.app``. A spool (``THREADLINE_SPOOL_DIR``) keeps webhooks safe while Redis is away,
but the process still reports not ready then: a load balancer should prefer a peer that
reaches Redis. The body says which check failed and how much waits in the spool.

It also says what a 200 means (``durability``: ``THREADLINE_ACK_DURABILITY``, the server, and
warnings such as a Redis that keeps nothing on disk or evicts keys), and is not ready when the
server can no longer give that durability (AOF switched off, the last replica gone): every
webhook would get 503 there (service/webhooks/durability.py).
"""
from __future__ import annotations

import asyncio
import time

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.webhooks import durability
from workers.foundations import keys

PROBE_TIMEOUT = 2.0


async def readyz(request: Request) -> JSONResponse:
    redis = request.app.state.redis
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(redis.ping(), PROBE_TIMEOUT)
        checks["redis"] = "ok"
    except (TimeoutError, RedisError, OSError) as exc:
        checks["redis"] = f"failed: {type(exc).__name__}"
        checks["log"] = "unknown"
    else:
        try:
            await asyncio.wait_for(
                redis.set(keys.READY_PROBE, str(int(time.time())), ex=60), PROBE_TIMEOUT)
            checks["log"] = "ok"
        except (TimeoutError, RedisError, OSError) as exc:
            checks["log"] = f"not writable: {type(exc).__name__}"
    body: dict = {}
    if checks["redis"] == "ok":
        try:
            checks["durability"], body = await asyncio.wait_for(
                durability.report(request.app.state.settings, redis), PROBE_TIMEOUT)
        except TimeoutError:
            checks["durability"] = "unknown: TimeoutError"
    else:
        checks["durability"] = "unknown"
    ingress = getattr(request.app.state, "ingress", None)
    if ingress is not None and ingress.spool is not None:
        checks["spool"] = "pending" if ingress.spool.pending() else "empty"
    ok = checks["redis"] == "ok" and checks["log"] == "ok" and checks["durability"] == "ok"
    settings = request.app.state.settings
    answer = {"ready": ok, "checks": checks,
              "durability": {"setting": settings.ack_durability, "promise": durability.describe(settings),
                             **{k: v for k, v in body.items() if k != "warnings"}},
              "warnings": body.get("warnings", [])}
    return JSONResponse(answer, status_code=200 if ok else 503)
