"""The soak of issue 12, small: a few hundred webhooks through web, workers, two schedulers and the
twin with faults, one worker SIGKILLed and Redis restarted, then every invariant checked.

``bench/soak.py`` does the work (its docstring says what it starts and checks); this test runs it
as an operator would, in a subprocess, and asserts its exit status and every row of its table.
The large run (≥ 20,000 webhooks, ≥ 10 kills) is run by hand: BENCHMARKS.md, "Soak".
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

ROWS = {
    "webhooks answered as expected",
    "quiescence (every shard's log empty)",
    "answered 200, then neither in v2 nor in the log (lost)",
    "communications in v2 exactly once",
    "each in its configuration, with its text",
    "deliveryStatus = best status answered before the close (out of order, repeated)",
    "grouping keys with > 1 open conversation (at quiescence)",
    "grouping keys with > 1 open conversation (at the end)",
    "ACTIVE past inactive timeout (4 s + 8 s)",
    "open past closed timeout (15 s + 8 s)",
    "lifecycle transitions PATCHed > 10 s after they could apply",
    "longest time a shard had entries and no progress",
    "dead letters only where input was bad",
    "processes that exited on their own",
    "Redis memory at the end",
}


@pytest.mark.slow
def test_small_soak_holds_every_invariant(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--webhooks", "300", "--workers", "2",
         "--kills", "1", "--seed", "7", "--rate", "15", "--quiesce-timeout", "60", "--quiet",
         "--json", str(out)],
        capture_output=True, text=True, timeout=240)
    report = run.stdout[-6000:] + run.stderr[-4000:]
    assert out.exists(), report
    result = json.loads(out.read_text())
    rows = {r["invariant"]: r for r in result["rows"]}
    assert set(rows) == ROWS, report
    failed = [f"{r['invariant']}: {r['seen']}" for r in rows.values() if r["verdict"] == "FAIL"]
    assert not failed, "\n".join(failed) + "\n" + report
    assert {r["verdict"] for r in rows.values()} == {"OK", "INFO"}
    assert rows["Redis memory at the end"]["verdict"] == "INFO"
    assert run.returncode == 0, report
    figures = result["figures"]
    # the run did what it says: every kind of traffic and bad input, one kill, one Redis restart
    kinds = figures["kinds"]
    for kind in ("inbound message", "message status callback", "call status callback",
                 "transcription callback", "Event Streams batch", "bad: unknown_message",
                 "bad: unknown_call", "bad: broken_batch", "bad: forged", "bad: incomplete"):
        assert kinds.get(kind), (kind, kinds)
    assert figures["kills"] == {"worker": 1} and figures["redis_restarts"] == 1
    assert figures["webhooks"] >= 300 and figures["quiescence_s"] is not None
    assert figures["communications"] >= 100 and figures["twin_faults"].get("rate_500")
