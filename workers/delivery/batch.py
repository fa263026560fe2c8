"""A drain's batch: its entries sorted into lanes, and what its lanes decided.

:func:`route` parses and matches a batch's entries and sorts the deliverable ones into lanes —
by address pair, by call for voice, by classic conversation for the bridge — deciding at once
the entries that need no delivery (ignored: acknowledged) or cannot have one (malformed,
unparseable, retried too often, unbridged: dead-lettered), so that they never block the shard.
:class:`Batch` collects the lanes' decisions (acks, dead letters, retries, counters) for the
drain's fenced commit (:mod:`.commit`), which may take them in parts while slower lanes run.
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from workers import stats
from workers.delivery import classic
from workers.eventlog.entries import LogEntry, MalformedEntry
from workers.foundations.errors import Permanent
from workers.foundations.text import as_str
from workers.parse import ParseError, parse


@dataclass
class Report:
    shard: int
    leased: bool = False
    read: int = 0
    acked: int = 0
    dead: int = 0
    retry: int = 0
    requeued: bool = False
    adopted: list[int] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)



class Progress:
    """When the drain last decided an event (monotonic): the lease is renewed only while it moves."""

    def __init__(self) -> None:
        self._at = time.monotonic()

    def mark(self) -> None:
        self._at = time.monotonic()

    def at(self) -> float:
        return self._at


@dataclass
class Batch:
    progress: Progress = field(default_factory=Progress)
    acks: list[str] = field(default_factory=list)
    dead: list[tuple[str, LogEntry | Mapping[str, Any], str, int, str]] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    def take_decided(self) -> Batch | None:
        """What the lanes decided so far, taken out of this batch for an early commit."""
        if not self.acks and not self.dead:
            return None
        part = Batch(self.progress, self.acks, self.dead, [], self.counts)
        self.acks, self.dead, self.counts = [], [], Counter()
        return part

    def put_back(self, part: Batch) -> None:
        """An early commit that failed: its entries go with the batch's own commit."""
        self.acks[:0], self.dead[:0] = part.acks, part.dead
        self.counts.update(part.counts)


async def route(rt, entries: list, deliveries: dict[str, int], index, configs: dict,
                batch: Batch) -> dict[str, list]:
    """The batch's deliverable entries by lane, in log order: ``lane → [(id, entry, event,
    matches)]``; every other entry is decided into ``batch`` here."""
    lanes: dict[str, list] = defaultdict(list)
    for raw_id, fields in entries:
        eid = as_str(raw_id)
        if not fields:  # deleted while pending
            batch.acks.append(eid)
            continue
        try:
            entry = LogEntry.from_fields(fields)
        except MalformedEntry as exc:
            batch.dead.append((eid, fields, "malformed_entry", 1, str(exc)))
            continue
        if deliveries.get(eid, 0) > rt.settings.max_attempts:
            batch.dead.append((eid, entry, "retries_exhausted", deliveries[eid],
                               "transient failures on every drain"))
            continue
        try:
            event = parse(entry)
        except ParseError as exc:
            batch.dead.append((eid, entry, exc.reason, 1, str(exc)))
            continue
        if event is None:
            batch.counts[stats.field("events", "-", entry.kind, "ignored")] += 1
            batch.acks.append(eid)
            continue
        if event.channel == classic.CHAT:  # the classic bridge: the service names the configuration
            try:
                bridged = await rt.classic.route(event, configs)
            except Permanent as exc:
                batch.dead.append((eid, entry, exc.reason, getattr(exc, "attempts", 1), str(exc)))
                continue
            if bridged is None:
                batch.counts[stats.field("events", "-", classic.CHAT, "unbridged")] += 1
                if "CloudEventId" in entry.params:  # account-wide Event Streams: another service's
                    batch.acks.append(eid)
                else:  # the service asked for it: replayable once a configuration bridges it
                    batch.dead.append((eid, entry, "classic_unbridged", 1,
                                       "no configuration bridges this classic service"))
                continue
            lanes["classic|" + event.to_bare].append(
                (eid, entry, event, [classic.match_for(bridged, event)]))
            continue
        if event.channel == "VOICE":  # calls and transcriptions: workers.delivery.voice decides
            try:
                prepared = await rt.voice.prepare(event, index, configs, batch.counts)
            except ParseError as exc:
                batch.dead.append((eid, entry, exc.reason, 1, str(exc)))
                continue
            if prepared is None:
                batch.acks.append(eid)
                continue
            event, live = prepared
            lanes[event.metadata.get("callSid") or event.resource_id].append((eid, entry, event, live))
            continue
        matches = index.match(event.channel, event.from_bare, event.to_bare, event.metadata,
                              direction=event.direction)
        live = [m for m in matches if m.config_id in configs]
        if not live:
            batch.counts[stats.field("events", "-", event.channel, "ignored")] += 1
            batch.acks.append(eid)
            continue
        lane = event.metadata.get("callSid") or "|".join(sorted((event.from_bare, event.to_bare)))
        lanes[lane].append((eid, entry, event, live))
    return lanes
