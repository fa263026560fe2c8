"""The twin: a local stand-in for the Twilio APIs threadline calls (``threadline twin``).

Conversations v2 (configurations and their operations, conversations, participants,
communications), the Memory v1 profile lookup, and the Messages API fetch, with Basic auth,
Twilio's error shape, fault injection and a control API under ``/_twin/``. Tests, benchmarks
and ``threadline dev`` point ``THREADLINE_TWILIO_BASE_URL`` at it.

Modules: ``app`` (routes and the auth/fault/record gate), ``store`` (in-memory state, operations,
pagination), ``schemas`` (request validation), ``configurations``, ``conversations``,
``participants``, ``communications``, ``memory``, ``messages`` (the resources), ``faults``,
``traffic`` (record file, counts),
``control`` (``/_twin/``), ``errors``, ``ids``, ``http`` (body and Idempotency-Key handling).
"""
