"""Timeouts and closes: ACTIVE → INACTIVE → CLOSED.

Holds: the pure decisions (:mod:`.policy`: no Redis, no HTTP, no clock), the timer set
(:mod:`.timers`), the one I/O path that PATCHes a status and records it
(:mod:`.transitions`), applying a fired timer (:mod:`.expiry`), the worker's loop that claims
due timers and applies them beside its drains (:mod:`.applier`) and active creation, where an operator opens a
conversation before any traffic (:mod:`.active`). It may import everything above it, the
Twilio client included; delivery imports it (traffic re-arms timers), never the reverse.
"""
