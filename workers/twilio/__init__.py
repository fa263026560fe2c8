"""Every call threadline makes to Twilio.

Holds: the async client for Conversations v2, Memory v1 and the core API (:mod:`.client`),
its HTTP stack (:mod:`.transport`), what crosses the wire and Twilio's error answers
(:mod:`.wire`, :mod:`.errors`), the adaptive concurrency limit (:mod:`.concurrency`),
backoff (:mod:`.backoff`), where calls go (:mod:`.urls`; ``THREADLINE_TWILIO_BASE_URL``),
the twilio-python HTTP client that honours it (:mod:`.rest`), Memory calls (:mod:`.memory`)
and ``configs sync`` (:mod:`.sync`, which binds stored configurations to v2 ones). It may
import every package above it (foundations, stats, eventlog, capture, parse, conversations);
the lifecycle and delivery use it, never the reverse.
"""
