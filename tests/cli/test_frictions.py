"""Small things a newcomer met on a fresh clone (issue 18), each as they met it: the README's
``rules explain`` example answers against the demo's configuration; output piped into ``head``
ends every command quietly; ``configs sync`` without credentials says so in a sentence;
``threadline dev`` labels its two uvicorn servers and prints the twin's credentials, with which
``configs sync`` against the twin works."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

from service.cli import demo
from service.cli.configs import NO_CREDENTIALS
from service.cli.main import EXIT_READER_GONE
from tests.cli.test_dev_demo import CLEAN_ENV
from tests.procs import THREADLINE, Proc, free_port
from workers.capture.configuration import parse_configuration
from workers.capture.store import ConfigStore

README = Path(__file__).resolve().parents[2] / "README.md"
NO_CREDS = {"TWILIO_ACCOUNT_SID": "", "TWILIO_AUTH_TOKEN": "", "TWILIO_API_KEY": "",
            "TWILIO_API_SECRET": "", "THREADLINE_TWILIO_BASE_URL": ""}


def _run(args: list[str], env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([THREADLINE, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, **kw)


def _demo_file(tmp_path: Path) -> str:
    path = tmp_path / "demo.json"
    path.write_text(json.dumps([demo.CONFIG]))
    return str(path)


def _readme_explain() -> list[str]:
    (line,) = [ln for ln in README.read_text().splitlines() if ln.startswith("threadline rules explain")]
    return shlex.split(line.split("#")[0])[1:]


def test_the_readme_explain_example_matches_the_demo(tmp_path) -> None:
    args = _readme_explain()
    assert shlex.join(["threadline", *args]) == demo.EXPLAIN  # the one dev's banner prints
    r = _run([*args, "--config", _demo_file(tmp_path), "--json"])
    assert r.returncode == 0, r.stdout + r.stderr
    (match,) = json.loads(r.stdout)["matches"]
    assert match["configurationId"] == demo.CONFIG["id"]
    assert match["customer"]["address"] in demo.CUSTOMERS_SMS and match["account"]["address"] == demo.BUSINESS


def test_a_reader_that_stops_early_ends_every_command_quietly(tmp_path, redis_url) -> None:
    commands = [["stats", "--json"], ["rules", "check", _demo_file(tmp_path)],
                [*_readme_explain(), "--config", _demo_file(tmp_path)]]
    for args in commands:
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader has gone before the first byte: `| head -0`
        try:
            r = subprocess.run([THREADLINE, *args], stdout=write_end, stderr=subprocess.PIPE, text=True,
                               timeout=60, env={**os.environ, "REDIS_URL": redis_url})
        finally:
            os.close(write_end)
        assert r.returncode == EXIT_READER_GONE, (args, r.stderr)
        assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, (args, r.stderr)


def test_configs_sync_without_credentials_says_so_in_a_sentence(redis_client, redis_url) -> None:
    ConfigStore(redis_client).put(parse_configuration(demo.CONFIG))
    r = _run(["configs", "sync"], {**NO_CREDS, "REDIS_URL": redis_url})
    assert r.returncode == 1
    assert r.stderr.strip() == NO_CREDENTIALS and r.stdout == ""
    assert NO_CREDENTIALS.startswith("threadline configs sync: no Twilio credentials, so nothing was sent.")


def test_dev_labels_web_and_twin_and_prints_the_twin_credentials(redis_client, redis_url) -> None:
    port, twin_port = free_port(), free_port()
    env = {**CLEAN_ENV, "REDIS_URL": redis_url}
    with Proc(["dev", "--port", str(port), "--twin-port", str(twin_port)], env,
              ready_url=f"http://127.0.0.1:{port}/healthz") as dev:
        deadline = time.monotonic() + 30
        while "twin: Uvicorn running" not in dev.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        out = dev.output()
        logged = [json.loads(ln)["msg"] for ln in out.splitlines() if ln.startswith("{")]
        running = [m for m in logged if "Uvicorn running on" in m]
        assert sorted(running) == [f"twin: Uvicorn running on http://127.0.0.1:{twin_port} (Press CTRL+C to quit)",
                                   f"web: Uvicorn running on http://127.0.0.1:{port} (Press CTRL+C to quit)"]
        complete = [m for m in logged if m.endswith("Application startup complete.")]
        assert sorted(complete) == ["twin: Application startup complete.", "web: Application startup complete."]
        (export,) = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("export TWILIO_ACCOUNT_SID=")]
        creds = dict(pair.split("=", 1) for pair in shlex.split(export)[1:])
        assert creds["THREADLINE_TWILIO_BASE_URL"] == f"http://127.0.0.1:{twin_port}"
        # With them, `configs sync` against the dev twin binds a configuration (it got 401 before).
        ConfigStore(redis_client).put(parse_configuration(demo.CONFIG))
        r = _run(["configs", "sync"], {**NO_CREDS, **creds, "REDIS_URL": redis_url})
        assert r.returncode == 0, r.stdout + r.stderr
        assert re.fullmatch(r"demo: created conv_configuration_\w+ \(operation \S+ COMPLETED\)\n", r.stdout), r.stdout
