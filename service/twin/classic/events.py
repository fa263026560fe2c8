"""What a classic service on the twin sends when something changes: its post-event webhooks and
its Event Streams events (:mod:`service.twin.classic` makes the changes).

- The webhook goes to the service's ``PostWebhookUrl`` for the events its ``Filters`` name, and
  for a change made through the REST API only when the request said
  ``X-Twilio-Webhook-Enabled: true``; a chat user's (SDK) changes always send it.
- The Event Streams event (``com.twilio.conversations.<resource>.<action>``; ``data`` = the
  webhook's fields, the body as ``MessageBody``, no ``ChatServiceSid``) goes to every sink
  subscribed to its type, whatever made the change (Twilio documents every post-event but
  ``onDeliveryUpdated``).
- One queue per service, through the twin's one sender (:mod:`service.twin.webhooks_out`):
  a service's webhooks and events leave one at a time, in the order of the changes.
"""
from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.twin import eventstreams
from service.twin.http import store
from service.twin.store import Json
from workers.foundations import log

logger = log.get_logger("threadline.twin.classic")

BASE = "https://conversations.twilio.com/v1/Services"


# Event Streams' type for each post-event (Twilio documents all of them but onDeliveryUpdated).
ES_TYPES = {
    "onConversationAdded": "conversation.added", "onConversationUpdated": "conversation.updated",
    "onConversationRemoved": "conversation.removed",
    "onConversationStateUpdated": "conversation-state.updated",
    "onParticipantAdded": "participant.added", "onParticipantUpdated": "participant.updated",
    "onParticipantRemoved": "participant.removed", "onMessageAdded": "message.added",
    "onMessageUpdated": "message.updated", "onMessageRemoved": "message.removed",
}
ES_PREFIX = "com.twilio.conversations."
_ES_LEFT_OUT = ("EventType", "ChatServiceSid", "RetryCount", "Source")  # not in an event's data

Item = tuple[str, str, str, dict[str, str]]  # ("webhook", url, method, params) | ("event", type, source, data)


class Outbox:
    """One queue per service: its webhooks and Event Streams events leave one at a time, in the
    order of the changes, through the twin's one sender (:mod:`service.twin.webhooks_out`)."""

    def __init__(self, twin: Any) -> None:
        self.twin = twin
        self.queues: dict[str, asyncio.Queue[Item]] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def put(self, service_sid: str, item: Item) -> None:
        queue = self.queues.get(service_sid)
        task = self.tasks.get(service_sid)
        if queue is None or task is None or task.done():  # new, or cancelled by /_twin/reset
            queue = self.queues[service_sid] = asyncio.Queue()
            self.tasks[service_sid] = self.twin.spawn(self._run(queue))
        queue.put_nowait(item)

    async def _run(self, queue: asyncio.Queue[Item]) -> None:
        while True:
            what, target, how, params = await queue.get()
            try:
                if what == "webhook":
                    await self.twin.sender.form("classic", target, params, how)
                else:
                    await eventstreams.publish(self.twin.sender, self.twin.store, target, how, params)
            except Exception:  # a sender bug must not stop the service's later webhooks
                logger.exception("classic webhook failed")
            finally:
                queue.task_done()

    async def drained(self) -> None:
        await asyncio.gather(*(q.join() for sid, q in self.queues.items()
                               if not self.tasks[sid].done()))


def _outbox(request: Request) -> Outbox:
    state = request.app.state
    box = getattr(state, "classic_outbox", None)
    if box is None:
        box = state.classic_outbox = Outbox(state.twin)
    return box


def fire(request: Request, service: Json, event: str, params: dict[str, str], *,
         enabled: bool) -> None:
    """Queue the post-event ``event`` of ``service``: its webhook, if the service sends it
    (REST changes only with ``X-Twilio-Webhook-Enabled: true``), and its Event Streams event
    (whatever made the change) for the sinks subscribed to it."""
    hooks = store(request).classic["webhooks"][service["sid"]]
    form = {"AccountSid": service["account_sid"], "ChatServiceSid": service["sid"],
            "EventType": event, "RetryCount": "0", **params}
    box = _outbox(request)
    if enabled and hooks["post_webhook_url"] and event in hooks["filters"]:
        box.put(service["sid"], ("webhook", hooks["post_webhook_url"], hooks["method"], form))
    if event in ES_TYPES:
        data: dict[str, Any] = {k: v for k, v in form.items() if k not in _ES_LEFT_OUT}
        if "Body" in data:
            data["MessageBody"] = data.pop("Body")
        if "Index" in data:
            data["Index"] = int(data["Index"])
        source = f"{BASE}/{service['sid']}/Conversations/{params['ConversationSid']}"
        box.put(service["sid"], ("event", ES_PREFIX + ES_TYPES[event], source, data))


def conversation_params(conv: Json) -> dict[str, str]:
    return {"ConversationSid": conv["sid"], "FriendlyName": conv["friendly_name"] or "",
            "UniqueName": conv["unique_name"] or "", "Attributes": conv["attributes"],
            "DateCreated": conv["date_created"], "DateUpdated": conv["date_updated"],
            "State": conv["state"], "Source": "API"}


def message_params(msg: Json, source: str) -> dict[str, str]:
    return {"ConversationSid": msg["conversation_sid"], "MessageSid": msg["sid"],
            "Index": str(msg["index"]), "Author": msg["author"], "Body": msg["body"] or "",
            "Attributes": msg["attributes"], "ParticipantSid": msg["participant_sid"] or "",
            "DateCreated": msg["date_created"], "Source": source}


def participant_params(part: Json) -> dict[str, str]:
    return {"ConversationSid": part["conversation_sid"], "ParticipantSid": part["sid"],
            "Identity": part["identity"] or "", "Attributes": part["attributes"],
            "DateCreated": part["date_created"], "Source": "API"}



async def drained(request: Request) -> JSONResponse:
    """``POST /_twin/classic/drained``: answers once every queued classic webhook was sent."""
    box = getattr(request.app.state, "classic_outbox", None)
    if box is not None:
        await box.drained()
    return JSONResponse({"deliveries": len(store(request).deliveries)})
