"""Twilio → threadline: the webhook endpoints and everything between a request and the log.

Holds: the endpoints (:mod:`.endpoints`), strict parameter decoding (:mod:`.params`),
signatures (:mod:`.signatures`), Event Streams batches (:mod:`.eventstreams`), forwarding to
the operator's application (:mod:`.forwarding`, its table of numbers :mod:`.upstream_table`), the
per-process ingress state (:mod:`.ingress`), the group commit (:mod:`.appender`), the spool
(:mod:`.spool`), drain enqueues (:mod:`.drains`) and the bound on slow bodies
(:mod:`.slowbodies`). It may import ``workers/``; nothing in
``workers/`` imports it.
"""
