"""How threadline reads Twilio's error answers (shared by the v2 client, the engine and the twin).

A communication sent to a conversation that is CLOSED: v2's OpenAPI document declares
400/404/429/5xx for ``POST …/Communications`` and no 409, so Twilio can only refuse it with a
400. The twin answers exactly ``400`` with :data:`CONVERSATION_CLOSED_CODE`; threadline also
recognizes any 400/409 whose message says the conversation is closed, so a differently worded
refusal from Twilio still reopens the flow (a new conversation) instead of a dead letter.
"""
from __future__ import annotations

CONVERSATION_CLOSED_STATUS = 400
CONVERSATION_CLOSED_CODE = 50437  # threadline's twin; the message names the CLOSED status


def is_conversation_closed(status: int, body: object) -> bool:
    if status not in (400, 409) or not isinstance(body, dict):
        return False
    if body.get("code") == CONVERSATION_CLOSED_CODE:
        return True
    message = str(body.get("message", "")).lower()
    return "closed" in message and "conversation" in message


def is_transient(status: int) -> bool:
    """429 and 5xx are worth retrying; other 4xx are final."""
    return status == 429 or status >= 500
