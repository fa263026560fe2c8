"""What the twin saw: a JSONL record of every API request, and counts by route and status.

The record (``--record FILE``) is what the contract test reads at the end of the suite: each
line holds the method, path, query, headers (``Authorization`` left out: it is a secret), the
JSON body as received (``body_text`` when it was not JSON), the User-Agent, the status the
twin answered and, when the answer was an injected fault, ``fault`` (its kind, as in
:mod:`service.twin.faults`). Requests to the control API (``/_twin/…``) are not recorded or counted,
but for ``/_twin/simulate/…`` (traffic, counted by route and status so refusals show).
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, TextIO


class Recorder:
    """Appends one JSON line per request; flushed each time so a killed twin loses nothing."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: TextIO | None = path.open("a", encoding="utf-8") if path else None
        self._lock = threading.Lock()

    def write(self, *, method: str, path: str, query: str, headers: dict[str, str],
              body: bytes, status: int, fault: str | None = None) -> None:
        if self._file is None:
            return
        entry: dict[str, Any] = {
            "ts": round(time.time(), 3),
            "method": method,
            "path": path,
            "query": query,
            "headers": {k: v for k, v in headers.items() if k.lower() != "authorization"},
            "user_agent": headers.get("user-agent", ""),
            "status": status,
        }
        if fault:
            entry["fault"] = fault
        if body:
            try:
                entry["body"] = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                entry["body_text"] = body.decode("utf-8", "replace")
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class Counts:
    """Requests by ``"METHOD /route/template"`` and status (unknown routes count as ``?``), and
    the injected faults among them by kind (``max_concurrent``, ``rate_429``, …). The report
    has ``faults`` once any was injected."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, int]] = Counter()
        self._faults: Counter[str] = Counter()

    def add(self, route: str, status: int, fault: str | None = None) -> None:
        self._counts[(route, status)] += 1
        if fault:
            self._faults[fault] += 1

    def reset(self) -> None:
        self._counts.clear()
        self._faults.clear()

    def report(self) -> dict[str, Any]:
        routes: dict[str, dict[str, int]] = {}
        for (route, status), n in sorted(self._counts.items()):
            routes.setdefault(route, {})[str(status)] = n
        out: dict[str, Any] = {"total": sum(self._counts.values()), "routes": routes}
        if self._faults:
            out["faults"] = dict(sorted(self._faults.items()))
        return out
