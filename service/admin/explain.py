"""``POST /api/v1/rules/explain``: which configurations and rules would capture an event.

Body ``{"channel": "SMS", "from": "+1…", "to": "+1…", "metadata": {"callType": "CLIENT"},
"direction": "inbound"}`` (metadata and direction optional). Answer: ``workers.delivery.explain`` — the
matches (configuration, version, rules, customer side and why, participant type), each
one's grouping key and the conversation the event would join or create; ``ignored`` with the
reason when nothing matches. Read-only. 400 names the bad field; 401/503 as the admin API.
"""
from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.admin.answers import redis_guard
from service.admin.configurations import store
from workers.conversations.store import ConversationStore
from workers.delivery.explain import ExplainError, explain, parse_request


@redis_guard("configurations")
async def explain_rules(request: Request) -> Response:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return JSONResponse({"error": "the body is not JSON"}, 400)
    try:
        channel, frm, to, metadata, direction = parse_request(body)
    except ExplainError as exc:
        return JSONResponse({"error": str(exc), "field": exc.field}, 400)
    redis = request.app.state.redis
    result = await explain(await store(request).current(), channel, frm, to, metadata,
                           direction=direction, redis=redis, conversations=ConversationStore(redis))
    return JSONResponse(result)


routes = [Route("/rules/explain", explain_rules, methods=["POST"])]
