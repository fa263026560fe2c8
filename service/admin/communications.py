"""``POST /api/v1/conversations/{id}/communications`` ``{"author", "body"}``: a reply.

Only a bridged conversation (the classic bridge) takes one here, as Orchestrator routes a
reply to such a conversation through classic: the message is posted into the classic
conversation (``POST /v1/Services/{IS}/Conversations/{CH}/Messages``) and the communication
into v2 under the message's Sid, so the classic ``onMessageAdded`` that follows is not a second
one. 201 ``{"messageSid", "communicationId"}``; 400 bad body, 404 unknown conversation, 409 not
bridged or not open, 502/503 when Twilio refused or kept failing (nothing may have been sent:
the body says which).
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.admin.answers import error, json_object
from service.admin.conversations import _find, _v2
from workers.capture.store import AsyncConfigStore
from workers.conversations.store import LockTimeout
from workers.delivery.classic import ClassicBridge, ReplyRefused
from workers.delivery.deliver import Delivery
from workers.twilio.client import V2Error

MAX_BODY = 1600  # characters: classic's own limit on a message body (twilio_conversations_v1.json)


async def post_communication(request: Request) -> JSONResponse:
    if isinstance(body := await json_object(request), JSONResponse):
        return body
    author, text = body.get("author"), body.get("body")
    if set(body) != {"author", "body"} or not isinstance(author, str) or not author.strip() \
            or not isinstance(text, str) or not text:
        return error(400, 'body must be {"author": "<chat identity>", "body": "<text>"}')
    if len(text) > MAX_BODY:
        return error(400, f"body: over {MAX_BODY} characters (classic's limit)")
    conv = await _find(request, request.path_params["id"])
    if conv is None:
        return error(404, "no such conversation")
    state = request.app.state
    vc = await AsyncConfigStore(state.redis).get(conv.configuration_id)
    if vc is None:
        return error(409, "the conversation's configuration no longer exists")
    bridge = ClassicBridge(Delivery(state.settings, state.redis, _v2(request)))
    try:
        sent = await bridge.reply(conv, vc, author.strip(), text)
    except ReplyRefused as exc:
        return error(exc.status, exc.message)
    except LockTimeout:
        return error(503, "conversation is busy (its key stayed locked); try again")
    except V2Error as exc:
        return error(503 if exc.transient else 502, "Twilio did not take the reply",
                     route=exc.route or "", detail=str(exc)[:300])
    return JSONResponse(sent, 201)


routes = [Route("/conversations/{id}/communications", post_communication, methods=["POST"])]
