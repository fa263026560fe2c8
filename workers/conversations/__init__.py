"""What threadline remembers of each v2 conversation, message and call.

Holds: conversation records and their indexes (:mod:`.store`), the record's compact hash
encoding (:mod:`.record`, pure), the token locks around a grouping key's get-or-create
(:mod:`.locks`), what is remembered per message — best delivery status, body cache
(:mod:`.messages`) — and per call leg (:mod:`.calls`). Messages and calls are here, beside
the records, because they are the same kind of thing: engine memory in Redis, read by
delivery, the lifecycle and the admin API. It may import the foundations, stats, eventlog,
capture and parse; never the Twilio client (it stores what happened; it calls no one).
"""
