"""workers.eventlog.wire: the append call's RESP bytes are exactly the call's arguments encoded,
for every shape of batch (pure: no Redis), and the entry JSON is json.dumps' own."""
from __future__ import annotations

import json

import pytest

from workers.eventlog import wire
from workers.eventlog.entries import LogEntry, compact_json
from workers.foundations.settings import Settings

SETTINGS = Settings(dedupe_window=3600, stats_retention_minutes=10)
NOW = 1_800_000_000.123


def _entry(sid: str = "SM1", kind: str = "message", query: dict | None = None, cid: str = "c1",
           account: str = "AC1", **extra: str) -> LogEntry:
    params = {"MessageSid": sid, "From": "+14155550123", "To": "+14155550100", **extra}
    return LogEntry(kind, 1_700_000_000_000, account, params, query or {}, cid)


BATCHES = {
    "one": [(_entry(), "m:SM1", 3)],
    "several shards and kinds": [(_entry("SM1"), "m:SM1", 3), (_entry("SM2"), "m:SM2", 3),
                                 (_entry("CA1", kind="call_status"), "cs:CA1:ringing:", 15)],
    "a copy and no dedupe key": [(_entry("SM7"), "m:SM7", 1), (_entry("SM7"), "m:SM7", 1),
                                 (_entry("SM8"), None, 0)],
    "query, unicode, empty values": [
        (_entry("SM9", query={"tenant": "t1", "é": "ü"}, Body="hé 😀 \"q\" \\ \n\t\x01", Empty=""),
         "m:SM9", 11)],
    "empty account and cid": [(_entry(account="", cid=""), "m:SM1", 0)],
}


@pytest.mark.parametrize("outcome", ["accepted", "spooled"])
@pytest.mark.parametrize("name", list(BATCHES))
def test_packed_is_the_command_in_resp(name, outcome):
    items = BATCHES[name]
    assert wire.packed(items, SETTINGS, outcome, NOW) == wire.resp(wire.command(items, SETTINGS, outcome, NOW))


def test_resp_encodes_each_argument():
    assert wire.resp(["SET", "k", 5, "é"]) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n5\r\n$2\r\n\xc3\xa9\r\n"


@pytest.mark.parametrize("value", [
    {}, {"a": "b"}, {"Body": "hé 😀 \"q\" \\ / \n\r\t\b\f\x00\x1f\x7f\u2028"}, {"n": 1, "x": [1.5, None, True]},
])
def test_compact_json_is_json_dumps(value):
    assert compact_json(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_field_items_use_the_same_json():
    entry = _entry(query={"q": "1"}, Body="hé")
    items = entry.field_items()
    assert items[items.index("p") + 1] == entry.params_json() == compact_json(entry.params)
    assert items[items.index("q") + 1] == entry.query_json() == '{"q":"1"}'
    assert _entry().query_json() == "{}"
    assert LogEntry.from_fields(entry.to_fields()) == entry
