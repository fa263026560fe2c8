"""At start and on /readyz, the web process says what a 200 means, and refuses to start when
Redis cannot give the THREADLINE_ACK_DURABILITY asked for — with a message that names the
setting and the Redis option to change. Real ``threadline web`` processes, the shared Redis
(7.0, no persistence) and private Valkey servers (tests/valkey_fixtures.py)."""
from __future__ import annotations

import subprocess

import pytest

from tests.procs import Proc, free_port
from tests.web_fixtures import inbound_message, post_signed, web_env
from workers.foundations.settings import Settings, SettingsError, load_settings

MSG = "/webhooks/twilio/messaging"


def _refused(redis_url: str, **env: str) -> str:
    """Start ``threadline web``; it must exit (not serve): its output."""
    port = free_port()
    proc = Proc(["web", "--port", str(port)], web_env(redis_url, **env))
    try:
        code = proc.popen.wait(30)
    except subprocess.TimeoutExpired:
        proc.stop()
        pytest.fail(f"threadline web started although it should refuse:\n{proc.output()}")
    out = proc.output()
    proc.stop()
    assert code != 0, out
    return out


def test_the_production_default_is_local() -> None:
    assert Settings.model_fields["ack_durability"].default == "local"


def test_an_unknown_durability_stops_the_process_naming_the_variable(monkeypatch) -> None:
    monkeypatch.setenv("THREADLINE_ACK_DURABILITY", "fsync")
    with pytest.raises(SettingsError, match="THREADLINE_ACK_DURABILITY"):
        load_settings()
    monkeypatch.setenv("THREADLINE_ACK_DURABILITY", " Replica ")
    assert load_settings().ack_durability == "replica"
    monkeypatch.setenv("THREADLINE_ACK_TIMEOUT_SECONDS", "30")  # past the client's socket timeout
    with pytest.raises(SettingsError, match="THREADLINE_ACK_TIMEOUT_SECONDS"):
        load_settings()


def test_local_on_a_redis_without_waitaof_or_aof_refuses_to_start(redis_url) -> None:
    out = _refused(redis_url, THREADLINE_ACK_DURABILITY="local")  # the shared Redis: 7.0, no AOF
    assert "THREADLINE_ACK_DURABILITY=local needs WAITAOF" in out
    assert "appendonly yes" in out


def test_local_on_a_valkey_without_aof_refuses_naming_appendonly(start_valkey) -> None:
    server = start_valkey(aof=False)
    out = _refused(server.url, THREADLINE_ACK_DURABILITY="local")
    assert "THREADLINE_ACK_DURABILITY=local needs the append-only file: set appendonly yes" in out
    assert "needs WAITAOF" not in out  # Valkey has it


def test_local_on_a_valkey_that_never_fsyncs_refuses(start_valkey) -> None:
    server = start_valkey("--appendfsync", "no")
    assert "appendfsync no never does" in _refused(server.url, THREADLINE_ACK_DURABILITY="local")


def test_replica_without_a_replica_refuses_naming_replicaof(start_valkey) -> None:
    server = start_valkey()
    out = _refused(server.url, THREADLINE_ACK_DURABILITY="replica")
    assert "THREADLINE_ACK_DURABILITY=replica needs at least one replica" in out
    assert "replicaof" in out and "connected_slaves:0" in out


def test_local_on_the_embedded_redis_refuses() -> None:
    out = _refused("memory://", THREADLINE_ACK_DURABILITY="local")
    assert "memory://" in out and "THREADLINE_ACK_DURABILITY=none" in out


def test_readyz_reports_the_durability_and_warns_about_eviction(start_web, start_valkey) -> None:
    server = start_valkey("--maxmemory-policy", "allkeys-lru")
    web = start_web(REDIS_URL=server.url, THREADLINE_ACK_DURABILITY="local")
    assert "ack durability" in web.proc.output() and "maxmemory-policy is allkeys-lru" in web.proc.output()
    ready = web.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["checks"]["durability"] == "ok"
    assert body["durability"]["setting"] == "local"
    assert "WAITAOF 1 0" in body["durability"]["promise"]
    assert body["durability"]["server"].startswith("valkey ")
    assert any("maxmemory-policy is allkeys-lru" in w and "noeviction" in w for w in body["warnings"])
    assert post_signed(web, MSG, inbound_message("+14155550123", "+14155550100")).status_code == 200
    # AOF switched off under a running process: it can no longer keep its promise
    server.client().config_set("appendonly", "no")
    ready = web.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["durability"].startswith("failed: THREADLINE_ACK_DURABILITY=local needs")
    assert post_signed(web, MSG, inbound_message("+14155550123", "+14155550100")).status_code == 503


def test_readyz_on_a_redis_without_persistence_is_ready_with_a_warning(start_web) -> None:
    """Issue 12, item 7: ready on a Redis that keeps nothing — and it says so."""
    web = start_web()  # the shared Redis, THREADLINE_ACK_DURABILITY=none
    body = web.get("/readyz").json()
    assert body["ready"] is True
    assert body["durability"]["setting"] == "none"
    assert any("keeps nothing on disk" in w for w in body["warnings"]), body
    assert "Redis keeps nothing on disk" in web.proc.output()


def test_a_redis_down_at_start_does_not_stop_the_process(start_web) -> None:
    dead = free_port()
    web = start_web(REDIS_URL=f"redis://127.0.0.1:{dead}/0", THREADLINE_ACK_DURABILITY="local")
    assert "ack durability not verified at start" in web.proc.output()
    ready = web.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["durability"] == "unknown"
    assert post_signed(web, MSG, inbound_message("+14155550123", "+14155550100")).status_code == 503


def test_dev_acknowledges_on_none_unless_told_otherwise(monkeypatch, redis_url) -> None:
    """`threadline dev` runs on the embedded or a laptop's Redis, which keep nothing: it sets
    `none` itself (and says so), but an explicit setting wins."""
    from service.cli.dev import banner, prepare_environment

    for name in ("REDIS_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "THREADLINE_TWILIO_BASE_URL",
                 "THREADLINE_ADMIN_TOKEN", "THREADLINE_PUBLIC_URL", "THREADLINE_MINUTE_SECONDS",
                 "THREADLINE_ACK_DURABILITY"):
        monkeypatch.delenv(name, raising=False)  # restored at teardown, whatever dev sets
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings, info = prepare_environment(18000, 18787, False)
    assert settings.ack_durability == "none"
    assert any("THREADLINE_ACK_DURABILITY=none" in line for line in banner(settings, info, 18000, 18787))
    monkeypatch.setenv("THREADLINE_ACK_DURABILITY", "replica")
    settings, _ = prepare_environment(18000, 18787, False)
    assert settings.ack_durability == "replica"
