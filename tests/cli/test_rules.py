"""``threadline rules check`` and ``threadline rules explain`` as an operator runs them: the real
command in a subprocess, judged by its output and exit code."""
from __future__ import annotations

import json
import os
import subprocess

from tests.procs import THREADLINE
from workers.capture.configuration import parse_configuration
from workers.capture.store import ConfigStore

US, US2, KIRAN = "+15550000001", "+15550000002", "+15551234567"


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([THREADLINE, "rules", *args], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **(env or {})})


def config(id_: str, rules: list, **over) -> dict:
    return {"id": id_, "displayName": id_, "description": "", "memoryStoreId": "mem_1",
            "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES",
            "channelSettings": {"SMS": {"captureRules": rules}}, **over}


def write(tmp_path, data, name="configs.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_check_clean_file_exits_0(tmp_path):
    path = write(tmp_path, [config("a", [{"from": US, "to": "*"}, {"from": "*", "to": US}])])
    r = run("check", path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("0 error(s), 0 warning(s)")


def test_check_warnings_print_but_exit_0(tmp_path):
    path = write(tmp_path, [config("a", [{"from": US, "to": "*"}]), config("b", [{"from": "*", "to": "*"}])])
    r = run("check", path)
    assert r.returncode == 0
    assert "warning: b: channelSettings.SMS.captureRules[0]: both sides are '*'" in r.stdout
    assert "warning: a and b: both capture SMS traffic" in r.stdout
    assert "0 error(s), 2 warning(s)" in r.stdout


def test_check_invalid_file_exits_1_naming_the_field(tmp_path):
    path = tmp_path / "configs.yaml"
    path.write_text("- id: a\n  displayName: A\n  description: ''\n"
                    "  conversationGroupingType: GROUP_BY_PROFILE\n"
                    "  channelSettings:\n    SMS:\n      captureRules:\n        - {from: '555-0100', to: '*'}\n")
    r = run("check", str(path))
    assert r.returncode == 1
    assert "error: [0] (a) channelSettings.SMS.captureRules[0].from: '555-0100' looks like a local number" in r.stdout
    missing = run("check", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1 and "cannot read" in missing.stdout


def test_check_twilio_limits_only_when_asked(tmp_path):
    data = [config(f"c{i}", [{"from": f"+1555000{i:04d}", "to": "*"}]) for i in range(11)]
    path = write(tmp_path, data)
    assert run("check", path).returncode == 0
    r = run("check", path, "--twilio-limits")
    assert r.returncode == 1 and "error: 11 configurations; Orchestrator allows 10 per account" in r.stdout


def test_usage_errors_exit_2(tmp_path):
    assert run("check").returncode == 2
    assert run("explain", "--channel", "FAX", "--from", KIRAN, "--to", US).returncode == 2
    r = run("explain", "--channel", "SMS", "--from", "nobody", "--to", US, "--config",
            write(tmp_path, [config("a", [{"from": "*", "to": US}])]))
    assert r.returncode == 2 and "from: must be an address" in r.stderr


def test_explain_against_a_file(tmp_path):
    path = write(tmp_path, [config("a", [{"from": US, "to": "*"}, {"from": "*", "to": US}]),
                            config("b", [{"from": "*", "to": US2}])])
    r = run("explain", "--channel", "sms", "--from", KIRAN, "--to", US, "--config", path)
    assert r.returncode == 0, r.stderr
    assert "a: rules [1] * -> +15550000001" in r.stdout
    assert f"customer {KIRAN} (to is an account address)" in r.stdout
    assert f"key: addr|{US}|{KIRAN}" in r.stdout
    r = run("explain", "--channel", "SMS", "--from", KIRAN, "--to", US, "--config", path, "--json")
    out = json.loads(r.stdout)
    assert [m["configurationId"] for m in out["matches"]] == ["a"]
    none = run("explain", "--channel", "WHATSAPP", "--from", KIRAN, "--to", US, "--config", path)
    assert none.returncode == 1 and "ignored: no WHATSAPP capture rule" in none.stdout


def test_explain_against_the_store_in_redis(redis_client, redis_url):
    store = ConfigStore(redis_client)
    store.put(parse_configuration(config("live", [{"from": "*", "to": US}])))
    store.put(parse_configuration({**config("live", [{"from": "*", "to": US}, {"from": US, "to": "*"}])}))
    voice = config("voice", [])
    voice["channelSettings"] = {"VOICE": {"captureRules": [
        {"from": "client:desk", "to": "*", "metadata": {"callType": "CLIENT"}}]}}
    store.put(parse_configuration(voice))
    r = run("explain", "--channel", "SMS", "--from", US, "--to", KIRAN, "--json", env={"REDIS_URL": redis_url})
    assert r.returncode == 0, r.stderr
    [m] = json.loads(r.stdout)["matches"]
    assert (m["configurationId"], m["version"], m["rules"][0]["index"]) == ("live", 2, 1)
    assert m["conversation"] == {"action": "create", "configurationVersion": 2}
    r = run("explain", "--channel", "VOICE", "--from", "client:desk", "--to", KIRAN,
            "--metadata", "callType=CLIENT", "--json", env={"REDIS_URL": redis_url})
    [m] = json.loads(r.stdout)["matches"]
    assert m["account"] == {"address": "client:desk", "participantType": "HUMAN_AGENT"}
    r = run("explain", "--channel", "VOICE", "--from", "client:desk", "--to", KIRAN,
            "--metadata", "callType=PSTN", env={"REDIS_URL": redis_url})
    assert r.returncode == 1


def test_check_warns_when_voice_rules_have_no_source_of_calls(tmp_path, redis_url):
    voice = config("calls", [], channelSettings={"VOICE": {"captureRules": [{"from": "*", "to": US}]}},
                   activeTwiml=True)
    path = write(tmp_path, [voice])
    off = run("check", path, env={"THREADLINE_CALL_POLL_SECONDS": "0", "REDIS_URL": redis_url})
    assert off.returncode == 0
    assert "nothing tells threadline a call started" in off.stdout
    assert "double STT billing" in off.stdout                 # the active-routing warning stays
    on = run("check", path, env={"THREADLINE_CALL_POLL_SECONDS": "3", "REDIS_URL": redis_url})
    assert "nothing tells threadline a call started" not in on.stdout
    assert "double STT billing" in on.stdout and "1 warning(s)" in on.stdout


def test_forwarding_or_an_event_streams_sink_is_a_source_of_calls(tmp_path, redis_client, redis_url):
    """What ``threadline connect`` recorded counts: a number whose VoiceUrl it points at threadline
    (forwarding), or its Event Streams sink (call events)."""
    from workers.foundations import keys
    from workers.twilio import upstreams
    from workers.twilio.upstreams import Upstream

    path = write(tmp_path, [config("calls", [], channelSettings={"VOICE": {"captureRules": [{"from": "*", "to": US}]}})])
    env = {"THREADLINE_CALL_POLL_SECONDS": "0", "REDIS_URL": redis_url}
    assert "nothing tells threadline a call started" in run("check", path, env=env).stdout
    urls = {"SmsUrl": "https://app/sms", "SmsMethod": "POST", "VoiceUrl": "", "VoiceMethod": "POST",
            "StatusCallback": "", "StatusCallbackMethod": "POST"}
    upstreams.record(redis_client, Upstream(US, "PN" + "1" * 32, "AC" + "1" * 32, urls))
    assert "nothing tells threadline a call started" in run("check", path, env=env).stdout  # SMS only
    upstreams.record(redis_client, Upstream(US, "PN" + "1" * 32, "AC" + "1" * 32,
                                            {**urls, "VoiceUrl": "https://app/voice"}))
    forwarded = run("check", path, env=env)
    assert forwarded.returncode == 0 and "nothing tells threadline a call started" not in forwarded.stdout
    upstreams.forget(redis_client, US)
    redis_client.hset(keys.CONNECT_EVENT_STREAMS, mapping={"sink": "DG" + "1" * 32, "subscription": "DF1"})
    streamed = run("check", path, env=env)
    assert streamed.returncode == 0 and "nothing tells threadline a call started" not in streamed.stdout
