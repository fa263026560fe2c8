"""The twin: a local stand-in for the Twilio APIs threadline calls (``threadline twin``).

Conversations v2 (configurations and their operations, conversations, participants,
communications), the Memory v1 profile lookup, the core API (numbers, messages, calls, a live
call's transcriptions) and Event Streams (sinks, subscriptions), with Basic auth,
Twilio's error shape, fault injection and a control API under ``/_twin/``. Tests, benchmarks
and ``threadline dev`` point ``THREADLINE_TWILIO_BASE_URL`` at it.

Modules: ``app`` (routes and the auth/fault/record gate), ``store`` (in-memory state, operations,
pagination), ``schemas`` (request validation), ``configurations``, ``conversations``,
``participants``, ``communications``, ``memory``, ``messages`` (the resources), ``faults``,
``traffic`` (record file, counts),
``control`` (``/_twin/``), ``errors``, ``ids``, ``http`` (body and Idempotency-Key handling).

Twilio's side of the traffic (issue 14): ``numbers``, ``calls``, ``transcriptions``,
``eventstreams`` (core API and Events v1 resources; ``forms`` checks their form bodies,
``listing`` pages them), ``simulate`` (``/_twin/simulate/…``), ``messaging_flow`` and
``call_flow`` (what a message or call sends, in order), ``webhooks_out`` (signing, timeout,
retry, the record of every attempt).

Conversations (classic) for the classic bridge: the ``classic`` package (services and their
webhook configuration, conversations, participants, messages, and the post-event webhooks and
Event Streams events a service sends, ``X-Twilio-Webhook-Enabled`` honoured).
"""
