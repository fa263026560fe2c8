"""The twin's Conversations (classic) routes: the API (``/v1/Services/…``) and its controls."""
from __future__ import annotations

from starlette.routing import Route

from service.twin.classic import conversations as cv
from service.twin.classic import events, messages, services

_S = "/v1/Services/{ChatServiceSid}"
_CV = _S + "/Conversations/{ConversationSid}"
ROUTES = [
    *services.ROUTES,
    Route(_S + "/Conversations", cv.create_conversation, methods=["POST"]),
    Route(_S + "/Conversations", cv.list_conversations, methods=["GET"]),
    Route(_S + "/Conversations/{Sid}", cv.fetch_conversation, methods=["GET"]),
    Route(_S + "/Conversations/{Sid}", cv.update_conversation, methods=["POST"]),
    Route(_S + "/Conversations/{Sid}", cv.delete_conversation, methods=["DELETE"]),
    Route(_CV + "/Participants", cv.create_participant, methods=["POST"]),
    Route(_CV + "/Participants", cv.list_participants, methods=["GET"]),
    Route(_CV + "/Participants/{Sid}", cv.delete_participant, methods=["DELETE"]),
    *messages.ROUTES,
]
CONTROL_ROUTES = [
    Route("/_twin/simulate/classic/message", messages.simulate_message, methods=["POST"]),
    Route("/_twin/classic/drained", events.drained, methods=["POST"]),
]
