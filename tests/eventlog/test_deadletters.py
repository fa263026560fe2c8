"""Dead letters on a real Redis: write, list, view without message text, replay through the
event log's append path (dedupe bypassed), over the admin API (real HTTP) and the CLI."""
from __future__ import annotations

import json
import subprocess

import pytest
import redis as redis_lib
from rq import Queue

from tests.conftest import ADMIN_TOKEN
from tests.procs import THREADLINE
from tests.web_fixtures import inbound_message, new_sid
from workers import eventlog
from workers.eventlog import deadletters
from workers.eventlog.entries import MESSAGE, LogEntry, dedupe_key, shard_of
from workers.foundations import keys
from workers.foundations.settings import load_settings

SECRET = "my card number is 4111 1111"


def _entry(body: str = SECRET) -> LogEntry:
    params = inbound_message("+14155550100", "+14155550199", body, sid=new_sid("SM"))
    return LogEntry(MESSAGE, 1_700_000_000_123, params["AccountSid"], params, {}, "cid-1")


def _settings(redis_url: str):
    return load_settings(REDIS_URL=redis_url, THREADLINE_SHARDS=4)


def _dead(client, entry: LogEntry, reason: str = "v2_rejected", error: str = "POST /v2/Conversations/{id}/Communications: 400 code 20001: Invalid author (attempts 1)") -> str:
    pipe = client.pipeline(transaction=True)
    deadletters.dead_letter(pipe, entry, reason, 1, error, "1700000000123-0",
                            source_stream=keys.events(2))
    return pipe.execute()[0].decode()


def test_dead_letter_is_stored_counted_and_shown_without_the_body(redis_client) -> None:
    entry = _entry()
    dead_id = _dead(redis_client, entry)
    assert redis_client.xlen(keys.DEAD_LETTERS) == 1
    assert redis_client.hget(keys.STATS_TOTAL, "dead_letters|v2_rejected") == b"1"
    letter = deadletters.get(redis_client, dead_id)
    assert letter is not None and letter.entry() == entry  # the full entry is kept for replay
    view = letter.view()
    assert view["reason"] == "v2_rejected" and view["attempts"] == 1
    assert view["sourceId"] == "1700000000123-0" and view["replayable"] is True
    assert view["entry"]["params"]["MessageSid"] == entry.params["MessageSid"]
    assert view["entry"]["params"]["Body"] == f"[{len(SECRET)} chars]"
    assert SECRET not in json.dumps(view)
    assert SECRET not in deadletters.describe(letter)


def test_list_pages_oldest_first(redis_client) -> None:
    ids = [_dead(redis_client, _entry()) for _ in range(5)]
    page, cursor = deadletters.list(redis_client, 2)
    assert [d.id for d in page] == ids[:2] and cursor == ids[1]
    page, cursor = deadletters.list(redis_client, 2, cursor)
    assert [d.id for d in page] == ids[2:4]
    page, cursor = deadletters.list(redis_client, 2, cursor)
    assert [d.id for d in page] == ids[4:] and cursor is None
    assert deadletters.get(redis_client, "not-an-id") is None
    assert deadletters.get(redis_client, "1-0") is None


def test_replay_appends_to_the_shard_bypassing_dedupe_and_enqueues_the_drain(redis_client, redis_url) -> None:
    settings = _settings(redis_url)
    entry = _entry()
    shard = shard_of(entry.kind, entry.params, settings.shards)
    # The webhook was taken once through ingress (its dedupe marker is set) and consumed.
    first = eventlog.append(redis_client, entry, dedupe_key(entry.kind, entry.params), shard, settings)
    assert first.stored
    redis_client.delete(keys.drain_flag(shard))
    dead_id = _dead(redis_client, entry)

    done = deadletters.replay(redis_client, dead_id, settings)
    assert done is not None and done.shard == shard and done.drain_enqueued
    stream = redis_client.xrange(keys.events(shard))
    assert len(stream) == 2  # the original and the replay: dedupe did not swallow it
    replayed_id, fields = stream[-1]
    assert replayed_id.decode() == done.entry_id
    assert LogEntry.from_fields(fields) == entry
    assert redis_client.xlen(keys.DEAD_LETTERS) == 0
    assert redis_client.hget(keys.STATS_TOTAL, "webhooks|message|replayed") == b"1"
    jobs = Queue(keys.QUEUE, connection=redis_client).jobs
    assert [(j.func_name, j.args) for j in jobs] == [(eventlog.DRAIN_JOB, (shard,))]
    # A second replay of the same id finds nothing (the letter left the stream).
    assert deadletters.replay(redis_client, dead_id, settings) is None


def test_replay_while_a_drain_is_pending_enqueues_nothing_more(redis_client, redis_url) -> None:
    settings = _settings(redis_url)
    entry = _entry()
    shard = shard_of(entry.kind, entry.params, settings.shards)
    redis_client.set(keys.drain_flag(shard), "x")
    done = deadletters.replay(redis_client, _dead(redis_client, entry), settings)
    assert done is not None and not done.drain_enqueued
    assert Queue(keys.QUEUE, connection=redis_client).count == 0
    assert redis_client.xlen(keys.events(shard)) == 1


def test_malformed_entry_is_kept_but_not_replayable(redis_client, redis_url) -> None:
    pipe = redis_client.pipeline()
    deadletters.dead_letter(pipe, {b"k": b"message", b"t": b"x", b"p": b"{not json"},
                            "malformed_entry", 0, "undecodable entry: JSONDecodeError", "5-0")
    dead_id = pipe.execute()[0].decode()
    view = deadletters.get(redis_client, dead_id).view()
    assert view["replayable"] is False and view["reason"] == "malformed_entry"
    with pytest.raises(deadletters.NotReplayable):
        deadletters.replay(redis_client, dead_id, _settings(redis_url))
    assert redis_client.xlen(keys.DEAD_LETTERS) == 1  # still there for the operator


def test_admin_api_lists_shows_and_replays(start_web, redis_client) -> None:
    web = start_web(THREADLINE_SHARDS="4")
    ids = [_dead(redis_client, _entry()) for _ in range(3)]
    auth = web.admin_headers()

    assert web.get("/api/v1/dead-letters").status_code == 401
    assert web.get("/api/v1/dead-letters", headers={"Authorization": "Bearer nope"}).status_code == 401
    r = web.get("/api/v1/dead-letters", params={"count": 2}, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [d["id"] for d in body["deadLetters"]] == ids[:2]
    assert body["meta"] == {"count": 2, "total": 3, "nextCursor": ids[1]}
    assert SECRET not in r.text
    r = web.get("/api/v1/dead-letters", params={"after": ids[1]}, headers=auth).json()
    assert [d["id"] for d in r["deadLetters"]] == ids[2:] and "nextCursor" not in r["meta"]
    assert web.get("/api/v1/dead-letters", params={"count": "lots"}, headers=auth).status_code == 400
    assert web.get("/api/v1/dead-letters", params={"after": "x"}, headers=auth).status_code == 400

    one = web.get(f"/api/v1/dead-letters/{ids[0]}", headers=auth)
    assert one.status_code == 200 and one.json()["id"] == ids[0]
    assert web.get("/api/v1/dead-letters/1-0", headers=auth).status_code == 404

    assert web.post(f"/api/v1/dead-letters/{ids[0]}/replay").status_code == 401
    r = web.post(f"/api/v1/dead-letters/{ids[0]}/replay", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["replayed"] == ids[0]
    assert redis_client.xlen(keys.events(r.json()["shard"])) == 1
    assert web.post(f"/api/v1/dead-letters/{ids[0]}/replay", headers=auth).status_code == 404
    assert redis_client.xlen(keys.DEAD_LETTERS) == 2


def test_admin_api_refuses_without_a_configured_token(start_web) -> None:
    web = start_web(THREADLINE_ADMIN_TOKEN=None)
    r = web.get("/api/v1/dead-letters", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 503


def _cli(redis_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {"REDIS_URL": redis_url, "THREADLINE_SHARDS": "4", "PATH": "/usr/bin:/bin"}
    return subprocess.run([THREADLINE, "dlq", *args], env=env, capture_output=True, text=True,
                          timeout=30)


def test_cli_list_and_replay(redis_client, redis_url) -> None:
    ids = [_dead(redis_client, _entry()), _dead(redis_client, _entry(), reason="retries_exhausted")]
    out = _cli(redis_url, "list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ids
    assert "v2_rejected" in lines[0] and "retries_exhausted" in lines[1]
    assert SECRET not in out.stdout + out.stderr
    js = _cli(redis_url, "list", "--json", "--count", "1")
    assert [json.loads(x)["id"] for x in js.stdout.splitlines()] == ids[:1]

    rep = _cli(redis_url, "replay", ids[0])
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert f"{ids[0]}: replayed to shard" in rep.stdout
    again = _cli(redis_url, "replay", ids[0], ids[1])
    assert again.returncode == 1  # one of the two was gone
    assert "no such dead letter" in again.stdout and f"{ids[1]}: replayed" in again.stdout
    assert redis_client.xlen(keys.DEAD_LETTERS) == 0
    bad = _cli(redis_url, "list", "--after", "zzz")
    assert bad.returncode == 2


def test_cli_replays_by_reason_or_all(redis_client, redis_url) -> None:
    rejected = [_dead(redis_client, _entry()) for _ in range(3)]
    exhausted = _dead(redis_client, _entry(), reason="retries_exhausted")
    assert _cli(redis_url, "replay").returncode == 2  # nothing named
    assert _cli(redis_url, "replay", rejected[0], "--all").returncode == 2  # both
    out = _cli(redis_url, "replay", "--reason", "v2_rejected")
    assert out.returncode == 0, out.stdout + out.stderr
    assert [line.split(":")[0] for line in out.stdout.splitlines()] == rejected
    assert [d.id for d in deadletters.list(redis_client)[0]] == [exhausted]
    out = _cli(redis_url, "replay", "--all")
    assert out.returncode == 0 and out.stdout.startswith(f"{exhausted}: replayed")
    assert redis_client.xlen(keys.DEAD_LETTERS) == 0
    assert sum(redis_client.xlen(keys.events(n)) for n in range(4)) == 4


def test_replay_when_redis_is_down_is_a_clear_failure() -> None:
    settings = load_settings(REDIS_URL="redis://127.0.0.1:1/0")
    client = redis_lib.Redis.from_url(settings.redis_url, socket_connect_timeout=0.5)
    with pytest.raises(redis_lib.exceptions.ConnectionError):
        deadletters.replay(client, "1-0", settings)


def test_a_non_event_letter_is_listed_with_its_params_but_not_replayable(redis_client) -> None:
    pipe = redis_client.pipeline()
    deadletters.dead_letter(pipe, {"k": "lifecycle_patch", "t": "1700000000000", "a": "",
                                   "p": json.dumps({"conversation": "c1", "Body": SECRET}),
                                   "q": "{}", "c": ""},
                            "v2_rejected", 1, "PATCH refused", "")
    dead_id = pipe.execute()[0].decode()
    view = deadletters.get(redis_client, dead_id).view()
    assert view["replayable"] is False and "lifecycle_patch" in view["problem"]
    assert view["entry"]["params"]["conversation"] == "c1"
    assert SECRET not in json.dumps(view)


def test_a_double_click_on_replay_appends_once(redis_client, redis_url) -> None:
    """Twenty replays of one dead letter at once (a double click, two operators): one append."""
    from concurrent.futures import ThreadPoolExecutor

    dead_id = _dead(redis_client, _entry())
    settings = _settings(redis_url)
    clients = [redis_lib.Redis.from_url(redis_url) for _ in range(20)]
    with ThreadPoolExecutor(20) as pool:
        done = list(pool.map(lambda c: deadletters.replay(c, dead_id, settings), clients))
    assert sum(d is not None for d in done) == 1
    appended = sum(redis_client.xlen(keys.events(n)) for n in range(4))
    assert appended == 1
    assert redis_client.xlen(keys.DEAD_LETTERS) == 0
