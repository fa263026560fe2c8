"""What an interrupted request may have left in v2, found there before anything is sent again.

Two requests can go through in v2 while their answer never reaches the engine (a SIGKILL, a
timeout): a conversation's create and a communication's post.

- **A create** is recorded (CREATING) before it is sent and tagged with the record's id in v2's
  ``metadata``: :func:`find_created` pages through the open conversations for the tag
  (DESIGN §5: adopt, never orphan).
- **A post** is recorded as an *attempt* before its first POST into a conversation
  (``tried:<conversation>`` in the message's own state, :meth:`MessageMemory.attempt
  <workers.conversations.messages.MessageMemory.attempt>`), and marked ``posted:<conversation>``
  only once v2 accepted it. While the conversation is open a redelivered post needs nothing:
  v2's upsert by ``resourceId`` makes the repeat an update. Once the conversation is CLOSED it
  does: v2 refuses writes to it, so without this the message went into a *new* conversation and
  stood in two (the soak: a worker SIGKILLed between v2's 201 and the lane's flush, its entries
  redelivered 20 s later, after the 15 s close).
- **A call's final transcription** is posted the same way (``Voice._post``: the attempt
  recorded by :func:`before_first_post`, the ``posted:`` mark :data:`NO_STATUS` at the lane's
  flush, in ``tl:msg:<resourceId>`` like a message's) and resumed the same way, both through
  grouping (:func:`resume_elsewhere`) and routed by ``conversationId``
  (:func:`resume_in_closed`, not dead-lettered ``conversation_closed``). The lookup filters by
  the ``channelId`` the post set (:func:`channel_id_of`: the call, not the ``resourceId``).
  Without this the medium soak had two transcriptions doubled into a new conversation.

Which conversation a message is in is read from the message's own state, never from the
grouping key's conversations (:func:`resume_elsewhere`): under GROUP_BY_PROFILE a key is shared
by several address pairs, drained by different shards, and by the time one pair's entry is
redelivered another pair may have opened the key's next conversation (so may a call under
GROUP_BY_PARTICIPANT_ADDRESSES: voice is sharded by call). Resolving against the key's latest
posted the message there too (issue 12). Now every event of a message — its redelivery, its
status callbacks — first looks at the closed conversations of its configuration it was posted
or tried in: :func:`resume_in_closed` keeps it in one where it is marked posted, or tried and
found by its ``resourceId`` (:func:`find_posted`); it is marked posted there and the event is
counted ``communications|after_close``; v2 takes no update of a closed conversation's
communication. A message tried there but not found in v2 never got in: it goes on as new, into
the key's open conversation or a new one.

Cost: the states are read on the lane's one round trip anyway; the attempt is one HSET per
message and conversation, only for a message not yet posted nor tried there (a status update of
a posted message writes none), the lane's such messages together in one round trip before its
first POST there (:func:`~workers.conversations.messages.first_posts`), their TTL given at the
lane's flush; a conversation record is read only for a message posted or tried in another
conversation of its configuration. (The lane's coalesced writes pay for the HSET: the drain's
commands per event went 7.6 → 6.7, ``workers.delivery.lane.Writes``.) A final transcription
adds what a message pays: its state read with the lane's (one HGETALL per transcription, in the
lane's one round trip), the attempt HSET (one round trip per lane and conversation), the
``posted:`` HSET and its EXPIRE on the lane's flush — three commands, one more round trip per
voice lane; a message's commands are unchanged. Call statuses and progress write none of it.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from workers import stats
from workers.conversations import store as cv
from workers.conversations.messages import first_posts, tried_elsewhere
from workers.foundations.addresses import normalize
from workers.foundations.log import get_logger

if TYPE_CHECKING:
    from workers.conversations.messages import MessageMemory
    from workers.delivery.lane import LaneSession
    from workers.parse import CaptureEvent

logger = get_logger("threadline.delivery")



class Delivery(Protocol):
    """What these lookups use of :class:`workers.delivery.deliver.Delivery`, which calls them
    (named here so the two modules do not import each other)."""

    redis: Any
    store: cv.ConversationStore
    client: Any
    messages: MessageMemory

    async def call_v2(self, call: Callable[..., Awaitable[Any]], *args: Any) -> Any: ...


MAX_LOOKUP_PAGES = 200  # pages of 1,000 searched for an interrupted create or post
# The ``posted:`` mark of a communication v2 holds without a recipient's deliveryStatus (a
# call's transcription, or one found in v2 without it): any non-empty mark says "in v2".
NO_STATUS = "unknown"


async def find_created(d: Delivery, conv_id: str) -> dict | None:
    """The open v2 conversation whose ``metadata.threadlineConversation`` is ``conv_id``.

    v2's list filters by status and ``channelId`` only (../shared/specs), not by metadata:
    the open conversations are paged through (1,000 a page) and their tags compared. This
    runs only for a record left CREATING (a crash or an uncertain create), so its cost is
    paid rarely; MAX_LOOKUP_PAGES bounds it."""
    token = None
    for _ in range(MAX_LOOKUP_PAGES):
        page = await d.call_v2(lambda: d.client.list_conversations(
            status=list(cv.OPEN), page_size=1000, page_token=token))
        for item in page.get("conversations") or []:
            if isinstance(item, dict) and (item.get("metadata") or {}).get(
                    "threadlineConversation") == conv_id and item.get("id"):
                return item
        token = (page.get("meta") or {}).get("nextToken")
        if not token:
            return None
    logger.warning("interrupted create not resolved within the lookup bound",
                   extra={"conversation": conv_id, "pages": MAX_LOOKUP_PAGES})
    return None


def channel_id_of(event: CaptureEvent) -> str:
    """The ``channelId`` a post of ``event`` sets: a message's own id (``Delivery._post``), a
    transcription's call (``Voice._post``: a call's words share it)."""
    if event.channel == "VOICE" and event.metadata.get("callSid"):
        return str(event.metadata["callSid"])
    return event.resource_id


async def find_posted(d: Delivery, twilio_id: str, resource_id: str,
                      channel_id: str | None = None) -> dict | None:
    """The communication of v2 conversation ``twilio_id`` whose ``resourceId`` is
    ``resource_id``. v2 filters the list by ``channelId`` (:func:`channel_id_of`: a message's
    own id by default, a transcription's call); the ``resourceId`` is compared all the same,
    page by page."""
    token = None
    for _ in range(MAX_LOOKUP_PAGES):
        page = await d.call_v2(lambda: d.client.list_communications(
            twilio_id, channel_id=channel_id or resource_id, page_size=1000, page_token=token))
        for item in page.get("communications") or []:
            if isinstance(item, dict) and item.get("resourceId") == resource_id:
                return item
        token = (page.get("meta") or {}).get("nextToken")
        if not token:
            return None
    return None


async def before_first_post(d: Delivery, conv: cv.Conversation, configuration_id: str, rid: str,
                            session: LaneSession) -> None:
    """Record that ``rid`` (its state read into ``session``) is being posted into ``conv``,
    before its first POST there: with the lane's other communications not yet posted nor tried
    there (:func:`~workers.conversations.messages.first_posts`), in one round trip, their TTL
    given at the lane's flush (``session.tried``). Nothing when it is posted or tried there
    already. What :func:`resume_in_closed` reads should the answer be lost and the conversation
    close before the redelivery; messages and a call's transcriptions both post through it."""
    known = session.states[rid]
    if f"posted:{conv.id}" in known or f"tried:{conv.id}" in known:
        return
    tried = first_posts(session.states, conv.id, rid, session.expected)
    session.pipe(d.redis)  # the flush that gives them their TTL
    session.tried.update(tried)
    await d.messages.attempt(conv.id, configuration_id, tried, session.states)


def _status_of(comm: dict) -> str:
    for r in comm.get("recipients") or []:
        if isinstance(r, dict) and r.get("deliveryStatus"):
            return str(r["deliveryStatus"])
    return ""


async def resume_elsewhere(d: Delivery, event: CaptureEvent, configuration_id: str,
                           current: cv.Conversation | None, counts: Counter,
                           session: LaneSession) -> cv.Conversation | None:
    """The CLOSED conversation of this configuration, other than the grouping key's open one
    (``current``), that ``event``'s message is already in (:func:`resume_in_closed`), or None:
    post it into ``current`` (or a new one). Decided from the message's own state (the
    conversations it was posted or tried in, :func:`~workers.conversations.messages.tried_elsewhere`),
    never from the key's latest conversation: under GROUP_BY_PROFILE another number of the
    customer may have opened a newer one since, and the message went into both (issue 12).

    The states are read on the round trip the post makes anyway (the lane's, at its first
    event); a conversation record is read only for a message posted or tried in another
    conversation of this configuration (a status update after a close, a redelivery: rare)."""
    rid = event.resource_id
    open_id = current.id if current is not None and current.is_open else None
    if rid not in session.states:
        await d.messages.load([*session.expected, rid], session.states)
    for conv_id in tried_elsewhere(session.states[rid], configuration_id, open_id):
        conv = current if current is not None and current.id == conv_id else await d.store.get(conv_id)
        if conv is None or conv.status != cv.CLOSED or conv.configuration_id != configuration_id:
            continue
        if await resume_in_closed(d, conv, event, counts, session):
            return conv
    return None


async def resume_in_closed(d: Delivery, closed: cv.Conversation, event: CaptureEvent,
                           counts: Counter, session: LaneSession) -> bool:
    """True when ``event``'s message is already in the CLOSED conversation ``closed`` (marked
    posted there, or attempted there and found in v2): it is marked posted and counted
    ``after_close``, and the caller makes no new conversation for it. False: post as new."""
    rid = event.resource_id
    if closed.twilio_id is None:
        return False
    if rid not in session.states:
        await d.messages.load([*session.expected, rid], session.states)
    known = session.states[rid]
    posted = known.get(f"posted:{closed.id}", "")
    if not posted:
        if f"tried:{closed.id}" not in known:
            return False
        counts[stats.field("uncertain_creates", "communication")] += 1
        comm = await find_posted(d, closed.twilio_id, rid, channel_id_of(event))
        if comm is None:  # the interrupted post never got in: a new message after all
            return False
        counts[stats.field("uncertain_creates", "communication_found")] += 1
        posted = _status_of(comm) or NO_STATUS
        logger.warning("a post interrupted before its conversation closed was found in v2; "
                       "not posted again", extra={"conversation": closed.id})
    state = d.messages.observe(known, event.delivery_status,
                               event.occurred_at if event.text is not None else None, closed.id)
    d.messages.write(session.pipe(d.redis), rid, state, closed.id, posted, known=known)
    counts[stats.field("communications", "after_close")] += 1
    return True


def participants_from(created: dict, channel: str) -> dict[str, cv.Participant]:
    """Participants of a v2 conversation response, by bare address."""
    out: dict[str, cv.Participant] = {}
    for p in created.get("participants") or []:
        if not isinstance(p, dict) or not p.get("id"):
            continue
        for addr in p.get("addresses") or []:
            bare = normalize(addr.get("address")) if isinstance(addr, dict) else None
            if bare:
                out[bare] = cv.Participant(p["id"], p.get("type") or "UNKNOWN",
                                           addr.get("address"), addr.get("channel") or channel)
    return out
