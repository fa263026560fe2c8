"""Appending to the event log: dedupe, XADD, counters and the drain flag in one round trip.

Every writer of ``tl:events:{n}`` goes through :func:`append_many` (sync) or
:func:`append_many_async` (or their one-delivery forms): the web tier for each webhook, the
spool replay, and ``dlq replay``. The work is one Lua script (``append.lua``) that takes a
batch of deliveries, so a delivery costs one round trip — shared with whatever else is in its
batch — and the steps cannot interleave with a copy of the same delivery arriving at another
web process: 50 simultaneous copies store one entry. One script call per batch, not one per
delivery, is also what keeps Redis's own CPU per webhook low: the counters are summed and
written once per batch, and the script's set-up is paid once.

The script also sets the shard's drain flag (``SET NX EX``). When it was newly set the caller
must make sure ``workers.jobs.drain_shard(shard)`` gets enqueued (:data:`DRAIN_JOB`); while it
stays set, further appends to the shard enqueue nothing. The drain clears the flag when it
ends; the flag's TTL and the scheduler's stalled-shard check are the safety net for a lost
enqueue.

A caller that promises more than "in Redis' memory" passes a :class:`Wait` (the web tier's
``THREADLINE_ACK_DURABILITY``): its command (WAITAOF or WAIT) goes in the same write, on the same
connection, right after the batch — both commands wait for *this connection's* writes, so the
wait must follow them there — and its check raises when the reply falls short. One wait per
call, after the last script call, however many deliveries the call holds.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from redis.exceptions import NoScriptError, ResponseError

from workers.eventlog.entries import LogEntry
from workers.eventlog.wire import DRAIN_FLAG_TTL_SECONDS, SOURCE, packed, resp
from workers.eventlog.wire import command as command_of
from workers.foundations.settings import Settings

__all__ = ["DRAIN_JOB", "DRAIN_FLAG_TTL_SECONDS", "ACCEPTED", "DUPLICATE", "SPOOLED", "FORGED", "BAD_REQUEST",
           "TOO_LARGE", "UNSUPPORTED_MEDIA", "UNAVAILABLE", "NOT_FOUND", "METHOD_NOT_ALLOWED", "IGNORED", "POLLED",
           "NOT_DURABLE", "OUTCOMES", "Appended", "Wait", "MAX_BATCH", "parse_result", "append", "append_many",
           "append_async", "append_many_async", "JOB_TIMEOUT_SECONDS", "UNCONFIGURED", "TIMEOUT"]

from workers.foundations.constants import DRAIN_JOB

# RQ's job_timeout for every drain and lifecycle job: a drain ends on its own within its time
# budget (30 s) plus the stall bound, so RQ's timeout is only a last resort, never RQ's 180 s
# default firing inside a running event loop (workers.jobs.Runtime.run cleans up after it).
JOB_TIMEOUT_SECONDS = 120

# The outcomes the ``webhooks|<kind>|<outcome>`` counter takes (DESIGN §6).
ACCEPTED = "accepted"          # stored in the log
DUPLICATE = "duplicate"        # a repeat inside the dedupe window: 200, not stored again
SPOOLED = "spooled"            # taken into the spool while Redis was away, stored on replay
FORGED = "forged"              # missing or wrong signature: 403
BAD_REQUEST = "bad_request"    # undecodable, repeated or missing parameters: 400
TOO_LARGE = "too_large"        # body over MAX_WEBHOOK_BODY: 413
UNSUPPORTED_MEDIA = "unsupported_media"  # wrong Content-Type: 415
UNAVAILABLE = "unavailable"    # Redis unreachable and no spool (or the spool full): 503
NOT_DURABLE = "not_durable"    # stored, but the durability wait fell short (timeout): 503
NOT_FOUND = "not_found"        # unknown path under /webhooks/: 404
METHOD_NOT_ALLOWED = "method_not_allowed"  # 405
IGNORED = "ignored"            # an Event Streams event type threadline does not capture
UNCONFIGURED = "unconfigured"  # no THREADLINE_PUBLIC_URL nor THREADLINE_TRUSTED_PROXIES: 503
TIMEOUT = "timeout"            # the body did not arrive within the read bound: 408
POLLED = "polled"              # a live call found by passive voice's poll (no webhook: the Calls API)
OUTCOMES = (ACCEPTED, DUPLICATE, SPOOLED, FORGED, BAD_REQUEST, TOO_LARGE, UNSUPPORTED_MEDIA,
            UNAVAILABLE, NOT_DURABLE, NOT_FOUND, METHOD_NOT_ALLOWED, IGNORED, UNCONFIGURED, TIMEOUT, POLLED)



class Appended(NamedTuple):
    """What the script did: ``stored`` (False = a duplicate), the entry id (of the earlier
    entry for a duplicate), and whether the caller must enqueue the shard's drain.
    (A NamedTuple: one is made per webhook, at a fraction of a frozen dataclass's cost.)"""

    stored: bool
    entry_id: str
    drain_needed: bool


class Wait(Protocol):
    """A durability wait sent after a batch (``service.webhooks.durability`` builds them)."""

    @property
    def command(self) -> list:
        """The command, as arguments (``["WAITAOF", 1, 0, 2000]``)."""

    def check(self, reply: object) -> None:
        """Raise (a ``RedisError``) unless ``reply`` — the command's answer, or the
        ``ResponseError`` it got — shows the batch as durable as promised."""


# A batch is one script call; this many deliveries at most, so one call keeps Redis busy for
# a few milliseconds at most (a script blocks every other client while it runs).
MAX_BATCH = 128


def parse_result(raw: list) -> Appended:
    """The script's reply as an :class:`Appended` (also for replies read from a pipeline)."""
    stored, eid, flag = raw
    return Appended(stored == 1, eid.decode() if isinstance(eid, bytes) else str(eid), flag == 1)


def append(redis, entry: LogEntry, dedupe_key: str | None, shard: int, settings: Settings, *,
           outcome: str = ACCEPTED, now: float | None = None) -> Appended:
    """Append ``entry`` to shard ``shard`` unless ``dedupe_key`` was seen inside the window.

    ``dedupe_key=None`` skips the dedupe (dead-letter replay). ``outcome`` names the counter
    a stored entry increments (``accepted``; ``spooled`` for the spool replay).
    """
    return append_many(redis, [(entry, dedupe_key, shard)], settings, outcome=outcome, now=now)[0]


def append_many(redis, items: list[tuple[LogEntry, str | None, int]], settings: Settings, *,
                outcome: str = ACCEPTED, now: float | None = None,
                wait: Wait | None = None) -> list[Appended]:
    """:func:`append` for several ``(entry, dedupe_key, shard)``: one script call per
    :data:`MAX_BATCH` (an Event Streams batch, the spool replay).

    If a call fails, the error is raised for the whole batch: the caller treats every
    delivery in it as not taken, and a retry is safe because those that were stored are now
    duplicates. ``wait`` follows the last call on its connection (a pipeline).
    """
    out: list[Appended] = []
    for i in range(0, len(items), MAX_BATCH):
        command = command_of(items[i:i + MAX_BATCH], settings, outcome, now)
        then = wait if i + MAX_BATCH >= len(items) else None
        try:
            raw = _call_waiting(redis, command, then) if then else redis.execute_command(*command)
        except NoScriptError:  # Redis restarted (or SCRIPT FLUSH): load it and run it again
            redis.script_load(SOURCE)
            raw = _call_waiting(redis, command, then) if then else redis.execute_command(*command)
        out += map(parse_result, raw)
    return out


def _call_waiting(redis, command: list, wait: Wait) -> list:
    """The script call and the wait in one pipeline (one connection); the script's reply."""
    pipe = redis.pipeline(transaction=False)
    pipe.execute_command(*command)
    pipe.execute_command(*wait.command)
    raw, waited = pipe.execute(raise_on_error=False)
    if isinstance(raw, Exception):
        raise raw
    wait.check(waited)
    return raw


async def append_many_async(redis, items: list[tuple[LogEntry, str | None, int]],
                            settings: Settings, *, outcome: str = ACCEPTED,
                            now: float | None = None, wait: Wait | None = None,
                            conn=None) -> list[Appended]:
    """:func:`append_many` on an asyncio client: the web tier's hot path.

    It talks to one connection directly (one RESP write, one reply) instead of through
    ``execute_command``, whose per-argument encoding and per-call set-up cost more than the
    rest of a webhook's Python: a pooled one, or ``conn``, a connection of ``redis``'s pool
    the caller holds for itself (the group commit's: taking one from the pool and giving it
    back costs more than the round trip's own Python).
    """
    out: list[Appended] = []
    for i in range(0, len(items), MAX_BATCH):
        call = packed(items[i:i + MAX_BATCH], settings, outcome, now)
        then = wait if i + MAX_BATCH >= len(items) else None
        try:
            raw = await _call(redis, call, then, conn)
        except NoScriptError:  # Redis restarted (or SCRIPT FLUSH): load it and run it again
            await _load_script(redis, conn)
            raw = await _call(redis, call, then, conn)
        out += map(parse_result, raw)
    return out


async def append_async(redis, entry: LogEntry, dedupe_key: str | None, shard: int,
                       settings: Settings, *, outcome: str = ACCEPTED,
                       now: float | None = None) -> Appended:
    """:func:`append` on an asyncio client."""
    return (await append_many_async(redis, [(entry, dedupe_key, shard)], settings,
                                    outcome=outcome, now=now))[0]


async def _load_script(redis, conn) -> None:
    """SCRIPT LOAD on ``conn`` when the caller holds one: the pool's idle connections may be
    the ones a Redis restart closed (the restart is what lost the script)."""
    if conn is None:
        await redis.script_load(SOURCE)
    else:
        await _call_on(conn, resp(["SCRIPT", "LOAD", SOURCE]), None)


async def _call(redis, call: bytes, wait: Wait | None = None, conn=None) -> list:
    """One command written in RESP on ``conn`` (or a pooled connection), and its reply."""
    if conn is not None:
        return await _call_on(conn, call, wait)
    pool = redis.connection_pool
    conn = await pool.get_connection()
    try:
        return await _call_on(conn, call, wait)
    finally:
        await pool.release(conn)


async def _call_on(conn, call: bytes, wait: Wait | None) -> list:
    """The call on one connection; with ``wait``, the wait's command in the same write and its
    reply checked (both replies are always read, so the connection stays clean whatever the
    wait says). A connection error or a cancellation mid-call disconnects it (its reply is
    unread): its next send connects again."""
    try:
        if wait is None:
            await conn.send_packed_command(call)
            return await conn.read_response()
        await conn.send_packed_command(call + resp(wait.command))
        raw = await _reply(conn)
        waited = await _reply(conn)
    except ResponseError:
        raise  # the reply was read: the connection is fine
    except BaseException:
        await conn.disconnect()
        raise
    if isinstance(raw, ResponseError):
        raise raw
    wait.check(waited)
    return raw


async def _reply(conn) -> Any:
    """The next reply, or the ``ResponseError`` it was (so the replies after it are still read)."""
    try:
        return await conn.read_response()
    except ResponseError as exc:
        return exc
