"""The append script's call: as arguments (:func:`command`) and as RESP bytes (:func:`packed`).

:func:`command` is what the sync client sends through ``execute_command`` (the spool replay,
``dlq replay``). :func:`packed` is the same call as the bytes the web tier's asyncio path
writes on a connection — ``*<n>``, then ``$<len>`` + bytes per argument — built from fragments
encoded once (the script's head, each shard's two keys, each kind's counter fields, the names
of an entry's fields), so a delivery costs the encoding of what is its own (dedupe key, receive
time, account, parameters' JSON, query, correlation id) and one ``bytes %`` of them instead of a
type dispatch and a format per argument (redis-py's ``pack_command``), which cost more than the
rest of a webhook's Python. tests/eventlog/test_wire.py holds ``packed(...) == resp(command(...))``.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

from workers import stats
from workers.eventlog.entries import LogEntry
from workers.foundations import keys
from workers.foundations.resp import bulk
from workers.foundations.resp import resp as resp  # the writer and tests read it here
from workers.foundations.settings import Settings

SOURCE = (Path(__file__).with_name("append.lua")).read_text()
SHA = hashlib.sha1(SOURCE.encode()).hexdigest()
# Same TTL the scheduler uses when it re-queues a stalled shard (workers.scheduler).
DRAIN_FLAG_TTL_SECONDS = 300
DUPLICATE = "duplicate"  # the counter outcome of a repeat (workers.eventlog.writer.DUPLICATE)

Item = tuple[LogEntry, "str | None", int]


def counter(kind: str, outcome: str, _cache: dict[tuple[str, str], str] = {}) -> str:
    """``webhooks|<kind>|<outcome>``, made once per pair (it is built for every delivery)."""
    found = _cache.get((kind, outcome))
    if found is None:
        found = _cache[(kind, outcome)] = stats.field("webhooks", kind, outcome)
    return found


def command(items: list[Item], settings: Settings, outcome: str, now: float | None) -> list:
    """The EVALSHA of one batch: its keys and arguments as ``append.lua`` reads them."""
    now = time.time() if now is None else now
    keys_: list[str] = [keys.STATS_TOTAL, keys.stats_minute(stats.minute_of(now))]
    argv: list[object] = [keys.CONSUMER_GROUP, settings.stats_retention_minutes * 60 + 120,
                          str(int(now * 1000)), DRAIN_FLAG_TTL_SECONDS]
    for entry, dedupe_key, shard in items:
        keys_ += (keys.dedupe(dedupe_key or ""), keys.events(shard), keys.drain_flag(shard))
        fields = entry.field_items()
        argv += (settings.dedupe_window if dedupe_key else 0, counter(entry.kind, outcome),
                 counter(entry.kind, DUPLICATE), len(fields))
        argv += fields
    return ["EVALSHA", SHA, len(keys_), *keys_, *argv]


# An entry's arguments after its kind (LogEntry.field_items(): k, t, a, p, q, c and their values).
_ENTRY_TAIL = (b"$1\r\nt\r\n$%d\r\n%b\r\n$1\r\na\r\n$%d\r\n%b\r\n$1\r\np\r\n$%d\r\n%b\r\n"
               b"$1\r\nq\r\n$%d\r\n%b\r\n$1\r\nc\r\n$%d\r\n%b\r\n")
_ENTRY_ARGS = 4 + 12  # window, two counter fields, field count; six names and values
_HEAD = b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n" + SHA.encode() + b"\r\n"
_DEDUPE_PREFIX = keys.dedupe("").encode()
_shard_keys: dict[int, bytes] = {}
_item_heads: dict[tuple[str, str, int], bytes] = {}


def _keys_of(shard: int) -> bytes:
    found = _shard_keys.get(shard)
    if found is None:
        found = _shard_keys[shard] = bulk(keys.events(shard)) + bulk(keys.drain_flag(shard))
    return found


def _head_of(kind: str, outcome: str, window: int) -> bytes:
    """A delivery's window, counter fields, field count and the entry's first field (its kind)."""
    key = (kind, outcome, window)
    found = _item_heads.get(key)
    if found is None:
        found = _item_heads[key] = (bulk(window) + bulk(counter(kind, outcome))
                                    + bulk(counter(kind, DUPLICATE)) + bulk(12) + bulk("k") + bulk(kind))
    return found


def packed(items: list[Item], settings: Settings, outcome: str, now: float | None) -> bytes:
    """:func:`command` of the same batch, as RESP bytes."""
    now = time.time() if now is None else now
    key_parts = [bulk(2 + 3 * len(items)), bulk(keys.STATS_TOTAL),
                 bulk(keys.stats_minute(stats.minute_of(now)))]
    argv_parts = [bulk(keys.CONSUMER_GROUP), bulk(settings.stats_retention_minutes * 60 + 120),
                  bulk(str(int(now * 1000))), bulk(DRAIN_FLAG_TTL_SECONDS)]
    window = settings.dedupe_window
    for entry, dedupe_key, shard in items:
        dedupe = _DEDUPE_PREFIX + dedupe_key.encode() if dedupe_key else _DEDUPE_PREFIX
        key_parts.append(b"$%d\r\n%b\r\n%b" % (len(dedupe), dedupe, _keys_of(shard)))
        t = str(entry.received_at_ms).encode()
        a = entry.account.encode()
        p = entry.params_json().encode()
        q = entry.query_json().encode()
        c = entry.cid.encode()
        argv_parts.append(_head_of(entry.kind, outcome, window if dedupe_key else 0))
        argv_parts.append(_ENTRY_TAIL % (len(t), t, len(a), a, len(p), p, len(q), q, len(c), c))
    count = 3 + 2 + 3 * len(items) + 4 + _ENTRY_ARGS * len(items)
    return _HEAD % count + b"".join(key_parts) + b"".join(argv_parts)
