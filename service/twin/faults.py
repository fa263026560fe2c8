"""Fault injection: what a flaky Twilio does to a client, on demand.

A :class:`Faults` value is set at start (``threadline twin --latency-ms … --rate-500 …``) and
replaced at run time (``POST /_twin/faults``). For each API request whose path matches
``path`` (a regular expression, searched; empty = every path) the twin:

1. with ``max_concurrent`` = N > 0, refuses at once a request that arrives while N others
   are being served (their latency and held answers included): 429, code 20429, "Too Many
   Requests", no ``Retry-After`` — Twilio's answer when an account exceeds its allowed
   concurrency to the REST API. 0 = no limit;
2. waits ``latency_ms`` plus a uniform ``0…jitter_ms``;
3. draws once: with probability ``rate_429`` answers 429 with ``Retry-After: retry_after``;
   with ``rate_500`` a 500; with ``rate_503`` a 503 (these do not touch state); with
   ``rate_timeout`` the request is *processed* and its answer held for ``hold_seconds`` —
   past the client's timeout, so the client cannot know the write happened (the uncertain
   window threadline must count).

Every injected answer is counted by kind (``GET /_twin/counts`` → ``faults``: ``rate_429``,
``rate_500``, ``rate_503``, ``rate_timeout``, ``max_concurrent``) and marked in the record.

The control API (``/_twin/…``) is never faulted. ``seed`` makes the draws reproducible: one
``random()`` per request against the rates in the order 429, 500, 503, timeout (with jitter,
the jitter's ``uniform()`` is drawn first).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.twin.errors import INTERNAL, TOO_MANY_REQUESTS, UNAVAILABLE, TwinError

Rate = float


class FaultSpec(BaseModel):
    """The body of ``POST /_twin/faults`` (every field optional; omitted = no such fault)."""

    model_config = ConfigDict(extra="forbid")
    latency_ms: float = Field(0, ge=0)
    jitter_ms: float = Field(0, ge=0)
    rate_429: Rate = Field(0, ge=0, le=1)
    retry_after: int = Field(1, ge=0)
    rate_500: Rate = Field(0, ge=0, le=1)
    rate_503: Rate = Field(0, ge=0, le=1)
    rate_timeout: Rate = Field(0, ge=0, le=1)
    hold_seconds: float = Field(15, ge=0)
    max_concurrent: int = Field(0, ge=0)
    path: str = ""
    seed: int | None = None


@dataclass
class Faults:
    spec: FaultSpec = field(default_factory=FaultSpec)
    _pattern: re.Pattern[str] | None = None
    _random: random.Random = field(default_factory=random.Random)
    serving: int = 0  # requests the faults apply to, in the twin's hands now


    def __post_init__(self) -> None:
        self.set(self.spec)

    def set(self, spec: FaultSpec) -> None:
        if spec.rate_429 + spec.rate_500 + spec.rate_503 + spec.rate_timeout > 1:
            raise ValueError("rate_429 + rate_500 + rate_503 + rate_timeout must be at most 1")
        try:
            self._pattern = re.compile(spec.path) if spec.path else None
        except re.error as exc:
            raise ValueError(f"path: not a regular expression ({exc})") from None
        self.spec = spec
        self._random = random.Random(spec.seed)

    def applies(self, path: str) -> bool:
        return self._pattern is None or bool(self._pattern.search(path))

    def enter(self) -> bool:
        """A request (that the faults apply to) arrives: False when ``max_concurrent`` are
        already being served and it must be refused; else it is counted until :meth:`leave`."""
        if self.spec.max_concurrent and self.serving >= self.spec.max_concurrent:
            return False
        self.serving += 1
        return True

    def leave(self) -> None:
        self.serving -= 1

    def delay(self) -> float:
        """Seconds to wait before answering."""
        s = self.spec
        return (s.latency_ms + (self._random.uniform(0, s.jitter_ms) if s.jitter_ms else 0)) / 1000

    def draw(self) -> str | None:
        """``"429"``, ``"500"``, ``"503"``, ``"hold"`` or None (answer normally)."""
        s = self.spec
        roll = self._random.random()
        for outcome, rate in (("429", s.rate_429), ("500", s.rate_500),
                              ("503", s.rate_503), ("hold", s.rate_timeout)):
            if roll < rate:
                return outcome
            roll -= rate
        return None

    def error(self, outcome: str) -> TwinError:
        if outcome == "max_concurrent":
            return TwinError(429, TOO_MANY_REQUESTS, "Too Many Requests")
        if outcome == "429":
            return TwinError(429, TOO_MANY_REQUESTS, "Too Many Requests (twin fault injection)",
                             {"Retry-After": str(self.spec.retry_after)})
        if outcome == "500":
            return TwinError(500, INTERNAL, "Internal Server Error (twin fault injection)")
        return TwinError(503, UNAVAILABLE, "Service Unavailable (twin fault injection)")

    def describe(self) -> dict[str, Any]:
        return self.spec.model_dump()


def from_args(args: Any) -> FaultSpec:
    """The spec given by the ``threadline twin`` flags."""
    return FaultSpec(latency_ms=args.latency_ms, jitter_ms=args.jitter_ms,
                     rate_429=args.rate_429, retry_after=args.retry_after,
                     rate_500=args.rate_500, rate_503=args.rate_503,
                     rate_timeout=args.rate_timeout, hold_seconds=args.hold_seconds,
                     max_concurrent=args.max_concurrent, path=args.fault_path or "",
                     seed=args.fault_seed)

