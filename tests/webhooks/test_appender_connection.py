"""The group commit holds its own Redis connection (service.webhooks.appender): one the server
closed while it sat idle — a Redis restart, ``CLIENT KILL``, an idle ``timeout`` — must not cost
the next webhook a 503. The appender drops a closed connection before sending on it, as redis-py's
pool checks a connection before lending it."""
from __future__ import annotations

from tests.web_fixtures import counters, inbound_message, log_entries, post_signed

MSG = "/webhooks/twilio/messaging"


def test_a_connection_the_server_closed_is_replaced_before_the_next_batch(start_web, start_valkey):
    server = start_valkey(aof=False)
    web = start_web(REDIS_URL=server.url)
    client = server.client()
    assert post_signed(web, MSG, inbound_message("+14155550123", "+14155550100")).status_code == 200
    for _ in range(2):
        killed = client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        assert killed >= 1  # the web process's connections, the appender's among them
        answer = post_signed(web, MSG, inbound_message("+14155550123", "+14155550100"))
        assert answer.status_code == 200, answer.text
    c = counters(client)
    assert c["webhooks|message|accepted"] == 3 and "webhooks|message|unavailable" not in c
    assert len(log_entries(client)) == 3
