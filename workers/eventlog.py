"""Appending to the event log: dedupe, XADD, counters and the drain flag in one round trip.

Every writer of ``tl:events:{n}`` goes through :func:`append` (sync) or :func:`append_async`:
the web tier for each webhook, the spool replay, and ``dlq replay``. The work is one Lua
script (``eventlog.lua``), so a delivery costs one round trip and the steps cannot interleave
with a copy of the same delivery arriving at another web process: 50 simultaneous copies
store one entry.

The script also sets the shard's drain flag (``SET NX EX``). When it was newly set the caller
must make sure ``workers.jobs.drain_shard(shard)`` gets enqueued (:data:`DRAIN_JOB`); while it
stays set, further appends to the shard enqueue nothing. The drain clears the flag when it
ends; the flag's TTL and the scheduler's stalled-shard check are the safety net for a lost
enqueue.
"""
from __future__ import annotations

import hashlib
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from redis.commands.core import AsyncScript, Script
from redis.exceptions import NoScriptError, ResponseError

from workers import keys, stats
from workers.events import LogEntry
from workers.settings import Settings

DRAIN_JOB = "workers.jobs.drain_shard"
# Same TTL the scheduler uses when it re-queues a stalled shard (workers.scheduler).
DRAIN_FLAG_TTL_SECONDS = 300

# The outcomes the ``webhooks|<kind>|<outcome>`` counter takes (DESIGN §6).
ACCEPTED = "accepted"          # stored in the log
DUPLICATE = "duplicate"        # a repeat inside the dedupe window: 200, not stored again
SPOOLED = "spooled"            # taken into the spool while Redis was away, stored on replay
FORGED = "forged"              # missing or wrong signature: 403
BAD_REQUEST = "bad_request"    # undecodable, repeated or missing parameters: 400
TOO_LARGE = "too_large"        # body over MAX_WEBHOOK_BODY: 413
UNSUPPORTED_MEDIA = "unsupported_media"  # wrong Content-Type: 415
UNAVAILABLE = "unavailable"    # Redis unreachable and no spool: 503
NOT_FOUND = "not_found"        # unknown path under /webhooks/: 404
METHOD_NOT_ALLOWED = "method_not_allowed"  # 405
IGNORED = "ignored"            # an Event Streams event type threadline does not capture
OUTCOMES = (ACCEPTED, DUPLICATE, SPOOLED, FORGED, BAD_REQUEST, TOO_LARGE, UNSUPPORTED_MEDIA,
            UNAVAILABLE, NOT_FOUND, METHOD_NOT_ALLOWED, IGNORED)

_SOURCE = (Path(__file__).with_name("eventlog.lua")).read_text()
_SHA = hashlib.sha1(_SOURCE.encode()).hexdigest()
_scripts: "weakref.WeakKeyDictionary[object, Script | AsyncScript]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Appended:
    """What the script did: ``stored`` (False = a duplicate), the entry id (of the earlier
    entry for a duplicate), and whether the caller must enqueue the shard's drain."""

    stored: bool
    entry_id: str
    drain_needed: bool


def _args(entry: LogEntry, dedupe_key: str | None, shard: int, settings: Settings,
          outcome: str, now: float | None) -> tuple[list[str], list[object]]:
    now = time.time() if now is None else now
    keys_ = [
        keys.dedupe(dedupe_key or ""),
        keys.events(shard),
        keys.STATS_TOTAL,
        keys.stats_minute(stats.minute_of(now)),
        keys.drain_flag(shard),
    ]
    argv: list[object] = [
        settings.dedupe_window if dedupe_key else 0,
        keys.CONSUMER_GROUP,
        settings.stats_retention_minutes * 60 + 120,
        stats.field("webhooks", entry.kind, outcome),
        stats.field("webhooks", entry.kind, DUPLICATE),
        str(int(now * 1000)),
        DRAIN_FLAG_TTL_SECONDS,
    ]
    for name, value in entry.to_fields().items():
        argv.append(name)
        argv.append(value)
    return keys_, argv


def parse_result(raw: list) -> Appended:
    """The script's reply as an :class:`Appended` (also for replies read from a pipeline)."""
    eid = raw[1].decode() if isinstance(raw[1], bytes) else str(raw[1])
    return Appended(stored=int(raw[0]) == 1, entry_id=eid, drain_needed=int(raw[2]) == 1)


def _script(client, kind: type) -> Script | AsyncScript:
    # One Script object per client: it carries the SHA and reloads the source on NOSCRIPT.
    try:
        script = _scripts.get(client)
    except TypeError:  # a client that cannot be weakly referenced
        return kind(client, _SOURCE)
    if script is None:
        script = kind(client, _SOURCE)
        _scripts[client] = script
    return script


def append(redis, entry: LogEntry, dedupe_key: str | None, shard: int, settings: Settings, *,
           outcome: str = ACCEPTED, now: float | None = None) -> Appended:
    """Append ``entry`` to shard ``shard`` unless ``dedupe_key`` was seen inside the window.

    ``dedupe_key=None`` skips the dedupe (dead-letter replay). ``outcome`` names the counter
    a stored entry increments (``accepted``; ``spooled`` for the spool replay).
    """
    keys_, argv = _args(entry, dedupe_key, shard, settings, outcome, now)
    return parse_result(_script(redis, Script)(keys=keys_, args=argv, client=redis))


def append_many(redis, items: list[tuple[LogEntry, str | None, int]], settings: Settings, *,
                outcome: str = ACCEPTED, now: float | None = None) -> list[Appended]:
    """:func:`append` for several ``(entry, dedupe_key, shard)`` in one pipeline, one round
    trip (an Event Streams batch, the spool replay, concurrent webhooks).

    If any append fails, the error is raised for the whole batch: the caller treats every
    delivery in it as not taken, and a retry is safe because those that were stored are now
    duplicates.
    """
    if not items:
        return []
    argsets = [_args(e, d, s, settings, outcome, now) for e, d, s in items]
    raw = _pipeline(redis, argsets).execute(raise_on_error=False)
    missing = [i for i, r in enumerate(raw) if isinstance(r, NoScriptError)]
    if missing:  # Redis restarted (or SCRIPT FLUSH): load it and run what did not run
        redis.script_load(_SOURCE)
        for i, r in zip(missing, _pipeline(redis, [argsets[i] for i in missing]).execute(
                raise_on_error=False)):
            raw[i] = r
    return _results(raw)


async def append_many_async(redis, items: list[tuple[LogEntry, str | None, int]],
                            settings: Settings, *, outcome: str = ACCEPTED,
                            now: float | None = None) -> list[Appended]:
    """:func:`append_many` on an asyncio client: the web tier's hot path.

    It talks to one pooled connection directly (``pack_commands`` → one write →
    ``read_response`` per command) instead of through a redis-py pipeline object: the same
    bytes on the wire, a fraction of the client-side CPU, which is most of a webhook's cost.
    """
    if not items:
        return []
    argsets = [_args(e, d, s, settings, outcome, now) for e, d, s in items]
    raw = await _evalsha_batch(redis, argsets)
    missing = [i for i, r in enumerate(raw) if isinstance(r, NoScriptError)]
    if missing:  # Redis restarted (or SCRIPT FLUSH): load it and run what did not run
        await redis.script_load(_SOURCE)
        again = await _evalsha_batch(redis, [argsets[i] for i in missing])
        for i, r in zip(missing, again):
            raw[i] = r
    return _results(raw)


async def _evalsha_batch(redis, argsets: list[tuple[list[str], list[object]]]) -> list:
    """One write of every EVALSHA, then each reply (an error reply is returned, not raised)."""
    pool = redis.connection_pool
    conn = await pool.get_connection()
    try:
        await conn.send_packed_command(b"".join(
            _resp(("EVALSHA", _SHA, len(k), *k, *a)) for k, a in argsets))
        out: list = []
        for _ in argsets:
            try:
                out.append(await conn.read_response())
            except ResponseError as exc:
                out.append(exc)
        return out
    except BaseException:
        # A connection error (or a cancellation) mid-batch leaves replies unread: never reuse it.
        await conn.disconnect()
        raise
    finally:
        await pool.release(conn)


def _resp(argv: tuple) -> bytes:
    """One command in RESP, the wire format: ``*<n>`` then ``$<len>`` + bytes per argument.

    redis-py's ``pack_command`` does the same with per-argument type dispatch that costs more
    than the rest of a webhook's Python; every argument here is a str or an int.
    """
    out = [b"*%d\r\n" % len(argv)]
    for arg in argv:
        data = arg.encode() if isinstance(arg, str) else str(arg).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


def _pipeline(redis, argsets: list[tuple[list[str], list[object]]]):
    # Plain EVALSHA, not Script objects: redis-py would add a SCRIPT EXISTS round trip.
    pipe = redis.pipeline(transaction=False)
    for keys_, argv in argsets:
        pipe.evalsha(_SHA, len(keys_), *keys_, *argv)
    return pipe


def _results(raw: list) -> list[Appended]:
    for r in raw:
        if isinstance(r, Exception):
            raise r
    return [parse_result(r) for r in raw]


async def append_async(redis, entry: LogEntry, dedupe_key: str | None, shard: int,
                       settings: Settings, *, outcome: str = ACCEPTED,
                       now: float | None = None) -> Appended:
    """:func:`append` on an asyncio client (the web tier)."""
    keys_, argv = _args(entry, dedupe_key, shard, settings, outcome, now)
    return parse_result(await _script(redis, AsyncScript)(keys=keys_, args=argv, client=redis))

