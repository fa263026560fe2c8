"""Dedupe on the event a delivery reports, one entry for 50 simultaneous copies, the drain
flag and its RQ job, the consumer group, shards — over real HTTP on real Redis."""
from __future__ import annotations

import threading
import time

import httpx
from rq import Queue

from tests.web_fixtures import (
    call_status,
    counters,
    inbound_message,
    log_entries,
    message_status,
    new_sid,
    post_signed,
    transcription,
)
from workers.eventlog.entries import shard_of
from workers.foundations import keys

MSG = "/webhooks/twilio/messaging"
STATUS = "/webhooks/twilio/messaging/status"
VOICE = "/webhooks/twilio/voice/status"
TRANSCRIPTION = "/webhooks/twilio/voice/transcription"
CUSTOMER, US = "+14155550123", "+14155550100"


def test_dedupe_keys_follow_the_event_not_the_sid(module_web, redis_client):
    web = module_web
    sid = new_sid("SM")
    for status in ("queued", "sent", "delivered", "sent"):  # the last one repeats
        assert post_signed(web, STATUS, message_status(sid, status, US, CUSTOMER)).status_code == 200
    wa = new_sid("SM")
    wa_from, wa_to = "whatsapp:" + US, "whatsapp:" + CUSTOMER
    for event_type in ("DELIVERED", "READ", "READ"):
        post_signed(web, STATUS, message_status(wa, "read" if event_type == "READ" else "delivered",
                                                wa_from, wa_to, EventType=event_type))
    call = new_sid("CA")
    for seq, status in ((0, "initiated"), (1, "ringing"), (1, "ringing"), (2, "in-progress")):
        post_signed(web, VOICE, call_status(call, status, CUSTOMER, US, sequence=seq))
    gt = new_sid("GT")
    for seq, event in ((1, "transcription-started"), (2, "transcription-content"),
                       (3, "transcription-content"), (3, "transcription-content")):
        post_signed(web, TRANSCRIPTION, transcription(call, gt, event, seq, transcript="hi"))
    kinds = [e.kind for e in log_entries(redis_client)]
    assert kinds.count("message_status") == 3 + 2
    assert kinds.count("call_status") == 3
    assert kinds.count("transcription") == 3
    c = counters(redis_client)
    assert c["webhooks|message_status|duplicate"] == 2
    assert c["webhooks|call_status|duplicate"] == 1
    assert c["webhooks|transcription|duplicate"] == 1


def test_fifty_simultaneous_copies_store_one_entry(module_web, redis_client):
    params = inbound_message(CUSTOMER, US, "same delivery, fifty times")
    barrier = threading.Barrier(50)
    statuses: list[int] = []
    lock = threading.Lock()

    def send() -> None:
        with httpx.Client(base_url=module_web.url, timeout=10) as client:
            from tests.web_fixtures import Web

            w = Web(url=module_web.url, proc=module_web.proc, env=module_web.env, client=client)
            barrier.wait()
            status = post_signed(w, MSG, params).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=send) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [200] * 50
    entries = log_entries(redis_client)
    assert len(entries) == 1 and entries[0].params == params
    c = counters(redis_client)
    assert c["webhooks|message|accepted"] == 1
    assert c["webhooks|message|duplicate"] == 49


def test_a_repeat_after_the_window_is_stored_again(start_web, redis_client):
    web = start_web(THREADLINE_DEDUPE_WINDOW_SECONDS="1")
    params = inbound_message(CUSTOMER, US)
    post_signed(web, MSG, params)
    post_signed(web, MSG, params)
    assert len(log_entries(redis_client)) == 1
    ttl = redis_client.ttl(keys.dedupe(f"m:{params['MessageSid']}"))
    assert 0 < ttl <= 1
    time.sleep(1.6)
    post_signed(web, MSG, params)
    assert len(log_entries(redis_client)) == 2


def test_the_first_append_to_an_idle_shard_enqueues_one_drain(module_web, redis_client):
    params = inbound_message(CUSTOMER, US)
    shard = shard_of("message", params, 16)
    assert post_signed(module_web, MSG, params).status_code == 200
    # the reply: same pair, other direction, same shard; the flag is still set
    reply = message_status(new_sid("SM"), "queued", US, CUSTOMER)
    assert shard_of("message_status", reply, 16) == shard
    assert post_signed(module_web, STATUS, reply).status_code == 200
    assert redis_client.exists(keys.drain_flag(shard))
    assert 0 < redis_client.ttl(keys.drain_flag(shard)) <= 300
    queue = Queue(keys.QUEUE, connection=redis_client)
    deadline = time.monotonic() + 5
    while queue.count < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # give a wrong second enqueue the chance to show
    jobs = queue.jobs
    assert len(jobs) == 1
    assert jobs[0].func_name == "workers.jobs.drain_shard"
    assert jobs[0].args == (shard,)
    # once the drain has cleared the flag, the next append enqueues again
    redis_client.delete(keys.drain_flag(shard))
    post_signed(module_web, MSG, inbound_message(CUSTOMER, US))
    deadline = time.monotonic() + 5
    while queue.count < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert queue.count == 2


def test_entries_are_readable_through_the_consumer_group(module_web, redis_client):
    params = inbound_message(CUSTOMER, US, "read me")
    before = int(time.time() * 1000)
    post_signed(module_web, MSG, params, query={"tenant": "t1"})
    shard = shard_of("message", params, 16)
    groups = redis_client.xinfo_groups(keys.events(shard))
    assert [g["name"] for g in groups] == [keys.CONSUMER_GROUP.encode()]
    got = redis_client.xreadgroup(keys.CONSUMER_GROUP, keys.consumer(shard),
                                  {keys.events(shard): ">"}, count=10)
    [(_stream, [(_id, fields)])] = got
    from workers.eventlog.entries import LogEntry

    entry = LogEntry.from_fields(fields)
    assert entry.kind == "message" and entry.params == params
    assert entry.query == {"tenant": "t1"}
    assert entry.account == params["AccountSid"]
    assert before <= entry.received_at_ms <= int(time.time() * 1000)
    assert entry.cid


def test_voice_legs_share_their_parent_calls_shard(module_web, redis_client):
    parent = new_sid("CA")
    child = call_status(new_sid("CA"), "ringing", US, "+14155550199", ParentCallSid=parent,
                        direction="outbound-dial")
    post_signed(module_web, VOICE, call_status(parent, "ringing", CUSTOMER, US))
    post_signed(module_web, VOICE, child)
    shard = shard_of("call_status", {"CallSid": parent}, 16)
    assert redis_client.xlen(keys.events(shard)) == 2
