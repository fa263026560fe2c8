"""A failover: with THREADLINE_ACK_DURABILITY=replica no webhook answered 200 is lost; with
``none`` some are, and the test prints how many.

A primary and one replica, both real Valkey servers with AOF (tests/valkey_fixtures.py). The
replica is paused (SIGSTOP) and its link held (the :class:`Relay`), so it falls behind, while
several threads send signed webhooks; then the primary is killed (``kill -9``, and the relay
cut: the primary's machine is gone), the replica resumed and promoted (``REPLICAOF NO ONE``, as
Sentinel or an operator would), and threadline pointed at it by a new ``REDIS_URL`` — threadline
follows no Sentinel itself: a restart with the new address, or an address (a Kubernetes Service,
a managed endpoint) that moves to the new primary. The promoted server's log must hold every
webhook that got a 200.
"""
from __future__ import annotations

import threading
import time

import pytest

from tests.valkey_fixtures import Relay
from tests.web_fixtures import inbound_message, log_entries, post_signed

pytestmark = pytest.mark.slow

MSG = "/webhooks/twilio/messaging"
THREADS = 4


def _failover(start_web, start_valkey, durability: str):
    """Run the scenario: (status by MessageSid, params by MessageSid, the statuses answered
    while the replica was paused, the promoted server)."""
    primary = start_valkey()
    replica = start_valkey()
    relay = Relay(primary.port)
    replica.replicate(primary, via=relay)
    web = start_web(REDIS_URL=primary.url, THREADLINE_ACK_DURABILITY=durability,
                    THREADLINE_ACK_TIMEOUT_SECONDS="0.4")
    sent: dict[str, int] = {}
    params: dict[str, dict] = {}
    phase = {"paused": False}
    paused_statuses: list[int] = []
    stop = threading.Event()
    lock = threading.Lock()

    def sender(k: int) -> None:
        i = 0
        while not stop.is_set():
            p = inbound_message(f"+1415{k:03d}{i:04d}", "+14155550100", f"thread {k} #{i}")
            was_paused = phase["paused"]
            try:
                status = post_signed(web, MSG, p).status_code
            except Exception:  # the primary is gone mid-request: not acknowledged
                status = 0
            with lock:
                sent[p["MessageSid"]], params[p["MessageSid"]] = status, p
                if was_paused and phase["paused"]:
                    paused_statuses.append(status)
            i += 1

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    time.sleep(1.0)                     # in sync: the replica follows
    replica.pause()                     # SIGSTOP: it falls behind
    relay.hold()
    phase["paused"] = True
    time.sleep(2.0)
    phase["paused"] = False             # (answers after this are not counted as paused-time ones)
    primary.kill()                      # kill -9; with the relay cut, its machine is gone
    relay.cut()
    stop.set()
    for t in threads:
        t.join(30)
    web.stop()
    replica.resume()
    replica.promote()
    return sent, params, paused_statuses, replica


def test_with_replica_every_200_survives_the_failover(start_web, start_valkey) -> None:
    sent, params, paused, promoted = _failover(start_web, start_valkey, "replica")
    acknowledged = {sid for sid, status in sent.items() if status == 200}
    assert len(acknowledged) > 20, sent
    assert paused and set(paused) <= {503}, f"while the replica was paused: {sorted(set(paused))}"
    logged = {e.params["MessageSid"] for e in log_entries(promoted.client())}
    lost = acknowledged - logged
    print(f"\nreplica: {len(acknowledged)} acknowledged, {len(paused)} answered 503 while the replica "
          f"was paused, {len(lost)} acknowledged webhooks lost")
    assert not lost

    # threadline pointed at the promoted server, which gets a replica of its own again (as
    # Sentinel re-attaches the old primary): Twilio's retries of the 503s are taken now.
    start_valkey().replicate(promoted)
    web = start_web(REDIS_URL=promoted.url, THREADLINE_ACK_DURABILITY="replica")
    retried = [sid for sid, status in sent.items() if status != 200]
    assert retried
    assert {post_signed(web, MSG, params[sid]).status_code for sid in retried} == {200}
    logged = {e.params["MessageSid"] for e in log_entries(promoted.client())}
    assert set(sent) <= logged  # every delivery, acknowledged first time or on Twilio's retry


def test_with_none_acknowledged_webhooks_are_lost(start_web, start_valkey) -> None:
    sent, _, paused, promoted = _failover(start_web, start_valkey, "none")
    acknowledged = {sid for sid, status in sent.items() if status == 200}
    logged = {e.params["MessageSid"] for e in log_entries(promoted.client())}
    lost = acknowledged - logged
    print(f"\nnone: {len(acknowledged)} acknowledged, {len(paused)} sent while the replica was paused "
          f"(all answered 200), {len(lost)} acknowledged webhooks LOST in the failover")
    assert set(paused) == {200}
    assert lost, "with none, the webhooks taken while the replica lagged are gone"
