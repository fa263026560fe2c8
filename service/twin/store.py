"""The twin's state: every resource in memory, plus the asynchronous operations that change it.

Resources are kept as the JSON objects the API returns (dicts in insertion order), so a fetch is
a copy and a list is a slice. One process, one event loop: no locks are needed.

Operations (configuration writes, conversation deletes) are Twilio's 202 + poll pattern. Each
holds the change it will make; :meth:`Store.settle` applies the ones whose delay has passed. It
runs before every API request, so no background task is needed and a test that sets the delay
to 0 sees the change on its very next request.
"""
from __future__ import annotations

import base64
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from service.twin import ids
from service.twin.errors import invalid, not_found

Json = dict[str, Any]
# What a finished operation reports: None on success, else RFC 9457 problem fields.
Apply = Callable[[], Json | None]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
STATUS_URL = "https://conversations.twilio.com/v2/ControlPlane/Operations/{}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Replay:
    """An answer kept for an ``Idempotency-Key``: the same key gets the same answer."""

    fingerprint: str
    status: int
    body: Json
    headers: dict[str, str]


@dataclass
class Store:
    account_sid: str
    operation_delay: float = 0.2
    configurations: dict[str, Json] = field(default_factory=dict)
    operations: dict[str, Json] = field(default_factory=dict)
    conversations: dict[str, Json] = field(default_factory=dict)
    participants: dict[str, dict[str, Json]] = field(default_factory=dict)
    communications: dict[str, dict[str, Json]] = field(default_factory=dict)
    by_resource_id: dict[tuple[str, str], str] = field(default_factory=dict)
    idempotency: dict[str, Replay] = field(default_factory=dict)
    messages: dict[tuple[str, str], Json] = field(default_factory=dict)
    # The core API and Event Streams (issue 14): numbers, calls, a call's transcriptions, sinks,
    # subscriptions, and every webhook attempt the twin made (with the answer it got).
    numbers: dict[str, Json] = field(default_factory=dict)
    calls: dict[str, Json] = field(default_factory=dict)
    transcriptions: dict[str, Json] = field(default_factory=dict)
    sinks: dict[str, Json] = field(default_factory=dict)
    subscriptions: dict[str, Json] = field(default_factory=dict)
    deliveries: list[Json] = field(default_factory=list)
    # Conversations (classic), by kind: services, webhooks (a service's webhook configuration),
    # conversations, participants, messages; each by Sid (service.twin.classic).
    classic: dict[str, dict[str, Json]] = field(default_factory=lambda: {
        k: {} for k in ("services", "webhooks", "conversations", "participants", "messages")})
    _due: list[tuple[float, str, Apply]] = field(default_factory=list)

    def reset(self, operation_delay: float) -> None:
        fresh = Store(self.account_sid, operation_delay)
        self.__dict__.update(fresh.__dict__)

    # --- operations ----------------------------------------------------------------------

    def start_operation(self, related: dict[str, str], apply: Apply) -> Json:
        """Record a PENDING operation that runs ``apply`` after the operation delay."""
        op_id = ids.new_id("proc_job_")
        op = {
            "operationId": op_id,
            "status": "PENDING",
            "createdAt": now_iso(),
            "statusUrl": STATUS_URL.format(op_id),
            "related": related,
        }
        self.operations[op_id] = op
        self._due.append((time.monotonic() + self.operation_delay, op_id, apply))
        self._due.sort(key=lambda due: due[0])  # stable: equal times keep request order
        self.settle()
        return op

    def settle(self) -> None:
        """Apply, in order, every operation whose delay has passed."""
        now = time.monotonic()
        while self._due and self._due[0][0] <= now:
            _, op_id, apply = self._due.pop(0)
            problem = apply()
            op = self.operations[op_id]
            op["status"] = "FAILED" if problem else "COMPLETED"
            op["completedAt"] = now_iso()
            if problem:
                op["error"] = problem

    # --- reads ---------------------------------------------------------------------------

    def conversation(self, conversation_id: str) -> Json:
        """The conversation, or Twilio's 404 naming it."""
        conv = self.conversations.get(conversation_id)
        if conv is None:
            raise not_found(f"Conversation {conversation_id}")
        return conv

    def holder_of(self, conversation_id: str, channel: str, address: str) -> str | None:
        """The id of the conversation's participant with this address on this channel."""
        for participant in self.participants[conversation_id].values():
            for a in participant.get("addresses", []):
                if a["channel"] == channel and a["address"] == address:
                    return participant["id"]
        return None

    def conversation_view(self, conversation_id: str) -> Json:
        """A conversation as the API returns it: with its participants embedded."""
        conv = copy.deepcopy(self.conversations[conversation_id])
        conv["participants"] = [copy.deepcopy(p) for p in
                                self.participants[conversation_id].values()]
        return conv

    def snapshot(self) -> Json:
        """Everything, for tests: conversations carry participants and communications."""
        self.settle()
        conversations = []
        for conv_id in self.conversations:
            view = self.conversation_view(conv_id)
            view["communications"] = copy.deepcopy(list(self.communications[conv_id].values()))
            conversations.append(view)
        return {
            "configurations": copy.deepcopy(list(self.configurations.values())),
            "operations": copy.deepcopy(list(self.operations.values())),
            "conversations": conversations,
            "messages": copy.deepcopy(list(self.messages.values())),
            "numbers": copy.deepcopy(list(self.numbers.values())),
            "calls": copy.deepcopy(list(self.calls.values())),
            "transcriptions": copy.deepcopy(list(self.transcriptions.values())),
            "sinks": copy.deepcopy(list(self.sinks.values())),
            "subscriptions": copy.deepcopy(list(self.subscriptions.values())),
            "deliveries": copy.deepcopy(self.deliveries),
            "classic": {k: copy.deepcopy(list(v.values())) for k, v in self.classic.items()},
        }

    def number(self, phone_number: str) -> Json | None:
        """The account's IncomingPhoneNumber with this E.164 number (channel prefix ignored)."""
        bare = phone_number.split(":", 1)[-1]
        return next((n for n in self.numbers.values() if n["phone_number"] == bare), None)


# --- pagination (pageSize / pageToken / meta.nextToken) ---------------------------------------

def _token(key: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{key}:{offset}".encode()).decode().rstrip("=")


def _offset(key: str, token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        name, _, number = raw.partition(":")
        offset = int(number)
    except (ValueError, UnicodeDecodeError):
        raise invalid("pageToken: not a token this list issued") from None
    if name != key or offset < 0:
        raise invalid("pageToken: not a token this list issued")
    return offset


def page_size(query: Any) -> int:
    raw = query.get("pageSize")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise invalid("pageSize: must be an integer from 1 to 1000") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise invalid("pageSize: must be an integer from 1 to 1000")
    return size


def page(key: str, items: list[Json], query: Any) -> Json:
    """One page of ``items``: ``{key: [...], meta: {key, pageSize, nextToken?, previousToken?}}``."""
    size = page_size(query)
    token = query.get("pageToken")
    offset = _offset(key, token) if token else 0
    chunk = items[offset:offset + size]
    meta: Json = {"key": key, "pageSize": len(chunk)}
    if offset + size < len(items):
        meta["nextToken"] = _token(key, offset + size)
    if offset > 0:
        meta["previousToken"] = _token(key, max(0, offset - size))
    return {key: copy.deepcopy(chunk), "meta": meta}
