"""The classic bridge: a Conversations (classic) service's events into v2 (DESIGN §4, issue 17).

Each classic conversation maps one-to-one to a v2 conversation of the configuration whose
``conversationsV1Bridge.serviceId`` names the service: its threadline record has the grouping
key ``classic|<ConversationSid>`` (so the per-key lock, the index and the admin API work as for
any conversation), and it is created on the conversation's first event, whatever that is.

- Participants: channel ``CHAT``, the identity as the address, the classic ConversationSid as
  ``channelId``; typed by :meth:`Configuration.chat_type` (CUSTOMER, the service's ``system``
  author AGENT, ``participantTypes["chat:<identity>"]`` when mapped). Every bridged conversation
  has the ``system`` participant, so a message always has a recipient.
- Messages: a TEXT communication with ``resourceId`` = the classic MessageSid (an update is an
  upsert), ``channelId`` = the ConversationSid. Each message's last applied change is kept
  (:func:`workers.foundations.keys.classic_message`): an event older than it (out of order) is counted
  ``stale`` and left. v2 has no communication delete, so a removal is counted and left, and
  the message is marked so that a late add or update does not bring it back.
- State: classic's ``active``/``inactive``/``closed`` becomes v2's ACTIVE/INACTIVE/CLOSED
  (``PATCH /v2/Conversations/{id}``); no lifecycle timer is ever armed (statusTimeouts do not
  apply). A closed or removed classic conversation is final in classic: later events for it are
  counted (``classic|<event>|after_closed``/``after_removed``) and left.
- A participant removal is counted and left (v2 has no participant delete).

Counters: ``classic|<event>|<outcome>``. Modules: what a bridged conversation is
(:mod:`.bridged`, pure), the events routed and applied (:mod:`.bridge`), conversations and
participants (:mod:`.participants`), messages and replies (:mod:`.messages`).
"""
from workers.delivery.classic.bridge import ClassicBridge
from workers.delivery.classic.bridged import CHAT, match_for
from workers.delivery.classic.messages import ReplyRefused

__all__ = ["CHAT", "ClassicBridge", "ReplyRefused", "match_for"]
