"""The dead-letter stream ``tl:dead``: events threadline could not deliver, kept to be replayed.

An event lands here when v2 refused it for good (a 4xx), when its retries ran out, or when it
could not be understood at all (a malformed log entry, an unknown channel, an address that
normalizes to nothing, a configuration deleted while it waited). Each dead letter holds the
log entry exactly as ingress wrote it (fields ``k t a p q c``), plus why (``reason``, a short
slug), how many attempts were made, the error (Twilio's status/code/message or a slug —
never a message body) and the stream id it came from.

Reasons (the ``dead_letters|<reason>`` counter's label), by who writes them:

- v2 client: ``v2_rejected`` (a 4xx other than 429: read ``error`` for Twilio's code and
  message, fix the cause, replay), ``retries_exhausted`` (429/5xx/timeouts on every attempt,
  or an entry read more than THREADLINE_MAX_ATTEMPTS times; replay once Twilio is healthy),
  ``v2_bad_response`` (a 2xx without the fields it must carry).
- engine: ``malformed_entry``, ``unknown_channel``, ``bad_address``, ``missing_field`` and the
  other parse slugs (the webhook itself cannot be captured: replaying repeats the refusal),
  ``unknown_configuration`` (deleted while its events waited), ``configuration_unbound`` (no
  v2 Configuration yet: run ``threadline configs sync``, then replay), ``message_not_found``,
  ``internal_error`` (a bug: the event is kept for a replay after the fix).
- lifecycle: refused status PATCHes (not events: listed, never replayable).
- web tier: ``malformed_event`` — an Event Streams event in a signed batch that cannot be
  read (no id or type, not an object, missing what its webhook needs); the rest of the batch
  is logged. Listed with its id, type and data, never replayable.

Nothing trims the stream: a dead letter leaves it only by ``replay`` (or an operator's XDEL).
Its length is a gauge on the dashboard.

``replay`` puts the entry back into its shard's log through ingress's own append path
(:func:`workers.eventlog.writer.append`), so the shard's drain is scheduled exactly as for a new webhook.
It deliberately bypasses the dedupe check: the event *was* taken once (that is why it is
here), so a dedupe lookup would drop the replay as a repeat. A replay is safe to repeat:
communications upsert by ``resourceId``.

Views for the admin API and CLI redact message text (``Body``, transcription text): the
operator sees its length, the stream keeps the full entry for the replay.
"""
from __future__ import annotations

import builtins
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workers import eventlog, stats
from workers.eventlog.entries import LogEntry, MalformedEntry, shard_of
from workers.foundations import keys
from workers.foundations.errors import Permanent
from workers.foundations.log import get_logger
from workers.foundations.settings import Settings
from workers.foundations.text import as_str

logger = get_logger("threadline.deadletters")

# The ``webhooks|<kind>|<outcome>`` outcome a replayed entry is counted under (not "accepted":
# it is not a new webhook from Twilio).
REPLAYED = "replayed"
# Written by the web tier for an Event Streams event it cannot read (service.webhooks.eventstreams).
MALFORMED_EVENT = "malformed_event"
CLAIM_TTL_S = 60  # a replay under way: a second one of the same letter finds nothing to do

# The log entry's own field names (workers.eventlog.entries.LogEntry.to_fields).
_ENTRY_FIELDS = ("k", "t", "a", "p", "q", "c")
# Parameters that carry what a person wrote or said: never shown, only their length.
REDACTED_PARAMS = frozenset({"Body", "TranscriptionData", "TranscriptionText", "SpeechResult",
                             "UnstableSpeechResult"})
MAX_ERROR = 500



def dead_letter(pipe, entry: LogEntry | Mapping[str, Any], reason: str, attempts: int,
                error: str, source_stream_id: str = "", *, source_stream: str = "",
                retention_minutes: int = 1440, now: float | None = None) -> None:
    """Queue the dead letter (XADD to ``tl:dead``) and its ``dead_letters|<reason>`` counter on
    ``pipe``, a pipeline the caller executes, typically with the XACK of the source entry in
    the same round trip.

    ``entry`` is a :class:`LogEntry`, or the raw stream fields of an entry that could not be
    decoded (reason ``malformed_entry``). ``error`` must not contain a message body: pass
    ``str(V2Error)`` (Twilio's status, code and message) or a short explanation.
    """
    now = time.time() if now is None else now
    pipe.xadd(keys.DEAD_LETTERS, letter_fields(entry, reason, attempts, error, source_stream_id,
                                               source_stream=source_stream, now=now))
    stats.add(pipe, {stats.field("dead_letters", reason): 1},
              retention_minutes=retention_minutes, now=now)


def letter_fields(entry: LogEntry | Mapping[str, Any], reason: str, attempts: int, error: str,
                  source_stream_id: str = "", *, source_stream: str = "",
                  now: float | None = None) -> dict[str, str]:
    """The stream fields of a dead letter (for a writer that XADDs them itself, such as the
    drain's fenced commit script)."""
    if isinstance(entry, LogEntry):
        fields = entry.to_fields()
    else:
        fields = {as_str(k): as_str(v) for k, v in entry.items() if as_str(k) in _ENTRY_FIELDS}
    now = time.time() if now is None else now
    fields.update({
        "reason": reason,
        "attempts": str(int(attempts)),
        "error": error[:MAX_ERROR],
        "source_id": as_str(source_stream_id),
        "source_stream": as_str(source_stream),
        "dead_at_ms": str(int(now * 1000)),
    })
    return fields


@dataclass(frozen=True)
class DeadLetter:
    id: str
    fields: dict[str, str]

    @property
    def reason(self) -> str:
        return self.fields.get("reason", "")

    def entry(self) -> LogEntry:
        """The original log entry; :class:`MalformedEntry` when it never decoded."""
        return LogEntry.from_fields({k: self.fields[k] for k in _ENTRY_FIELDS if k in self.fields})

    def view(self) -> dict[str, Any]:
        """What the admin API and CLI show: everything but message text."""
        f = self.fields
        out: dict[str, Any] = {
            "id": self.id,
            "reason": f.get("reason", ""),
            "attempts": int(f.get("attempts", "0") or 0),
            "error": f.get("error", ""),
            "sourceId": f.get("source_id") or None,
            "sourceStream": f.get("source_stream") or None,
            "deadAt": _iso(int(f.get("dead_at_ms", "0") or 0)),
        }
        try:
            e = self.entry()
        except MalformedEntry as exc:
            # Not an event of the log (an undecodable entry, or a lifecycle PATCH v2 refused):
            # show what can be read, never replayable into the event log.
            raw: dict[str, Any] = {"kind": f.get("k"), "account": f.get("a"), "cid": f.get("c")}
            try:
                params = json.loads(f.get("p") or "")
            except ValueError:
                params = None
            if isinstance(params, dict):
                raw["params"] = _redact(params)
            out.update(replayable=False, problem=str(exc),
                       entry={k: v for k, v in raw.items() if v not in (None, "")})
            return out
        params = _redact(e.params)
        out.update(replayable=True, entry={
            "kind": e.kind, "receivedAt": _iso(e.received_at_ms), "account": e.account,
            "cid": e.cid, "params": params, "query": e.query,
        })
        return {k: v for k, v in out.items() if v is not None}


def _redact(params: dict) -> dict:
    return {k: (f"[{len(str(v))} chars]" if k in REDACTED_PARAMS else v) for k, v in params.items()}


def _iso(ms: int) -> str | None:
    if not ms:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def _decode(raw: builtins.list) -> builtins.list[DeadLetter]:
    return [DeadLetter(as_str(i), {as_str(k): as_str(v) for k, v in f.items()}) for i, f in raw]


def list(redis, count: int = 50, start: str | None = None) -> tuple[builtins.list[DeadLetter], str | None]:  # noqa: A001
    """Up to ``count`` dead letters, oldest first, after id ``start`` (exclusive).

    Returns the page and the cursor of the next one (None on the last page).
    """
    count = max(1, min(int(count), 1000))
    lo = f"({start}" if start else "-"
    raw = redis.xrange(keys.DEAD_LETTERS, min=lo, max="+", count=count + 1)
    page = _decode(raw)
    if len(page) > count:
        return page[:count], page[count - 1].id
    return page, None


def get(redis, dead_id: str) -> DeadLetter | None:
    if not valid_id(dead_id):
        return None
    raw = redis.xrange(keys.DEAD_LETTERS, min=dead_id, max=dead_id, count=1)
    page = _decode(raw)
    return page[0] if page else None


def count(redis) -> int:
    return int(redis.xlen(keys.DEAD_LETTERS))


def valid_id(dead_id: str) -> bool:
    ms, sep, seq = dead_id.partition("-")
    return bool(sep) and ms.isdigit() and seq.isdigit()


class NotReplayable(Permanent):
    """The dead letter's entry never decoded; replaying it would only dead-letter it again."""

    reason = "not_replayable"


@dataclass(frozen=True)
class Replayed:
    dead_id: str
    shard: int
    entry_id: str
    drain_enqueued: bool


def replay(redis, dead_id: str, settings: Settings) -> Replayed | None:
    """Put dead letter ``dead_id`` back into its shard's log; None when there is no such letter.

    ``redis`` is a synchronous client (RQ enqueues are synchronous). The append (ingress's
    Lua script, dedupe bypassed, counted as ``webhooks|<kind>|replayed``) comes first, then the
    XDEL from ``tl:dead``: a crash between the two leaves the letter in place, and replaying it
    again only repeats an event, which the engine absorbs (communications upsert by
    ``resourceId``, status updates never move backwards). The shard is recomputed with the
    current ``THREADLINE_SHARDS``, as ingress would place the webhook today. When the append
    newly set the shard's drain flag, the drain is enqueued, as ingress does.
    """
    # A double click (two replays at once) must append once: the first claims the letter; the
    # claim outlives the append and the XDEL, and expires if this process dies in between.
    if not redis.set(keys.dead_letter_claim(dead_id), "1", nx=True, ex=CLAIM_TTL_S):
        return None
    try:
        return _replay(redis, dead_id, settings)
    except Exception:  # nothing appended for sure? let the operator try again at once
        redis.delete(keys.dead_letter_claim(dead_id))
        raise


def _replay(redis, dead_id: str, settings: Settings) -> Replayed | None:
    letter = get(redis, dead_id)
    if letter is None:
        return None
    try:
        entry = letter.entry()
    except MalformedEntry as exc:
        raise NotReplayable(f"dead letter {dead_id} holds an undecodable entry ({exc})") from None
    shard = shard_of(entry.kind, entry.params, settings.shards)
    appended = eventlog.append(redis, entry, None, shard, settings, outcome=REPLAYED)
    deleted = redis.xdel(keys.DEAD_LETTERS, dead_id)
    enqueued = False
    if appended.drain_needed:
        from rq import Queue

        Queue(keys.QUEUE, connection=redis).enqueue(
            eventlog.DRAIN_JOB, shard, result_ttl=0, job_timeout=eventlog.JOB_TIMEOUT_SECONDS,
            description=f"drain shard {shard}", at_front=True)
        enqueued = True
    logger.info("dead letter replayed", extra={"dead_id": dead_id, "shard": shard,
                                               "entry_id": appended.entry_id,
                                               "reason": letter.reason, "deleted": deleted})
    return Replayed(dead_id, shard, appended.entry_id, enqueued)


def describe(letter: DeadLetter) -> str:
    """One line for ``threadline dlq list``."""
    v = letter.view()
    e = v.get("entry", {})
    p = e.get("params", {}) if isinstance(e, dict) else {}
    sid = p.get("MessageSid") or p.get("TranscriptionSid") or p.get("CallSid") or ""
    return (f"{v['id']}  {v['reason']:<20} attempts={v['attempts']:<3} kind={e.get('kind')} "
            f"{sid}  {v.get('deadAt', '')}  {v['error']}")

