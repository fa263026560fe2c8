"""The soak's verdicts: every invariant checked against the twin's and Redis's state at the end,
printed as a table."""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from bench.soak_parts.sending import Sent
from bench.soak_parts.traffic import OPEN, STATUS_RANK, Traffic
from bench.soak_parts.watching import Monitor
from workers.foundations import keys


@dataclass
class Row:
    invariant: str
    expected: str
    seen: str
    verdict: str  # OK, FAIL, INFO


def check(soak: Any, traffic: Traffic, sent: Sent, monitor: Monitor, state_q: dict, state_end: dict,
          quiet: bool, now: float, inactive_s: float, closed_s: float) -> list[Row]:
    """Every invariant's row. ``soak`` is the run (bench/soak.py's ``Soak``): its arguments, its
    Redis (what is still logged, the dead letters) and its processes."""
    a = soak.args
    rows: list[Row] = []

    def row(name: str, expected: str, seen: str, ok: bool | None) -> None:
        rows.append(Row(name, expected, seen, "INFO" if ok is None else ("OK" if ok else "FAIL")))

    row("webhooks answered as expected", "all (200; 403/400 for forged/incomplete)",
        f"{sent.ok} x 200, {sent.refused_as_expected} refused as meant, "
        f"{sum(sent.unexpected.values())} otherwise {dict(sent.unexpected) or ''}, "
        f"{sent.unanswered} never answered",
        not sent.unexpected and not sent.unanswered)
    row("quiescence (every shard's log empty)", f"within {a.quiesce_timeout:g} s", "yes" if quiet else "no", quiet)

    # every accepted communication exactly once (by resourceId, across all conversations)
    found: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
    for conv in state_end["conversations"]:
        for comm in conv["communications"]:
            found[comm.get("resourceId")].append((conv, comm))
    expected = {rid: e for rid, e in traffic.expected.items() if rid not in sent.unanswered_rids}
    missing = [rid for rid in expected if not found.get(rid)]
    doubled = [rid for rid in expected if len(found.get(rid, ())) > 1]
    unexpected = [rid for rid in found if rid not in traffic.expected]
    waiting = soak.logged_ids()
    lost = [rid for rid in missing if rid not in waiting]
    row("answered 200, then neither in v2 nor in the log (lost)", "0",
        f"{len(lost)} ({len(missing) - len(lost)} of the missing still in the log)" + _sample(lost), not lost)
    row("communications in v2 exactly once", f"{len(expected)} once each",
        f"{len(expected) - len(missing) - len(doubled)} once, {len(missing)} missing, "
        f"{len(doubled)} doubled, {len(unexpected)} unexpected" + _sample(missing + doubled + unexpected),
        not missing and not doubled and not unexpected)
    wrong_cfg = [rid for rid, e in expected.items() for conv, _ in found.get(rid, ())
                 if (conv.get("metadata") or {}).get("threadlineConfiguration") != e.config]
    wrong_text = [rid for rid, e in expected.items() for _, comm in found.get(rid, ())
                  if not _text_in(comm, e.text)]
    row("each in its configuration, with its text", "0 wrong", f"{len(wrong_cfg)} wrong configuration, "
        f"{len(wrong_text)} wrong text" + _sample(wrong_cfg + wrong_text), not wrong_cfg and not wrong_text)
    backwards, after_close = [], []
    for rid, answers in sent.statuses.items():
        best = max((st for st, _ in answers), key=STATUS_RANK.get)
        for conv, comm in found.get(rid, ()):
            got = [r.get("deliveryStatus") for r in comm.get("recipients") or []]
            if got == [best]:
                continue
            if _answered_after_close(soak, conv, answers, got):
                after_close.append(rid)
                continue
            backwards.append(f"{rid}:{got}!={best}")
    row("deliveryStatus = best status answered before the close (out of order, repeated)",
        f"{len(sent.statuses)} messages", f"{len(sent.statuses) - len(backwards)} right, {len(backwards)} wrong"
        + _sample(backwards) + (f"; {len(after_close)} whose better status was answered only after its "
                                "conversation's close deadline (v2 takes no update of a CLOSED one)"
                                + _sample(after_close) if after_close else ""), not backwards)

    # one open conversation per grouping key (at quiescence, before the timeouts close them)
    for label, st in (("at quiescence", state_q), ("at the end", state_end)):
        keyed: dict[tuple, list[str]] = defaultdict(list)
        for conv in st["conversations"]:
            if conv["status"] in OPEN:
                md = conv.get("metadata") or {}
                keyed[(md.get("threadlineConfiguration"), md.get("threadlineGroupingKey"))].append(conv["id"])
        over = {k: v for k, v in keyed.items() if len(v) > 1}
        row(f"grouping keys with > 1 open conversation ({label})", "0",
            f"{len(over)} of {len(keyed)} keys ({sum(len(v) for v in over.values())} conversations)", not over)

    # lifecycle: nothing ACTIVE past its inactive timeout, nothing open past its closed timeout
    slack = a.lifecycle_slack
    late_active = [c["id"] for c in state_end["conversations"]
                   if c["status"] == "ACTIVE" and now > last_activity(c) + inactive_s + slack]
    late_open = [c["id"] for c in state_end["conversations"]
                 if c["status"] in OPEN and now > last_activity(c) + closed_s + slack]
    empty = sum(1 for c in state_end["conversations"] if not c["communications"])
    row(f"ACTIVE past inactive timeout ({inactive_s:g} s + {slack:g} s)", "0",
        f"{len(late_active)} of {len(state_end['conversations'])} ({empty} with no communication)"
        + _sample(late_active), not late_active)
    row(f"open past closed timeout ({closed_s:g} s + {slack:g} s)", "0", f"{len(late_open)}" + _sample(late_open),
        not late_open)

    # lifecycle timers: how late each transition was PATCHed after it could apply (the engine's
    # lifecycle_lag histogram: from the deadline, or for a close the event log held, from the last
    # time the log was found behind it — the promise of docs/operations.md); beside it, timer_lag,
    # from the deadline whatever held it
    totals = {k.decode(): int(v) for k, v in redis.Redis.from_url(soak.redis.url).hgetall(
        keys.STATS_TOTAL).items() if k.startswith((b"timer_lag|", b"lifecycle_lag|"))}

    def hist(name: str, kind: str = "") -> tuple[int, int, float]:
        def total(suffix: str) -> int:
            return sum(v for k, v in totals.items()
                       if k.startswith(f"{name}|{kind}") and k.endswith(suffix))
        n = total("|count")
        return n, total("|b:inf"), total("|sum") / max(1, n) / 1000

    lag_n, lag_late, lag_mean = hist("lifecycle_lag")
    _, closes_late, closes_mean = hist("timer_lag", "CLOSED")
    # a crash delays what was due meanwhile (a leader's lease passes in <= 5 s, a Redis
    # restart, a killed batch's timers come back after their claim): a few, not a share
    row("lifecycle transitions PATCHed > 10 s after they could apply", "<= 5% of them",
        f"{lag_late} of {lag_n} (mean lag {lag_mean:.1f} s; "
        f"{totals.get('lifecycle_lag|INACTIVE|count', 0)} to INACTIVE, "
        f"{totals.get('lifecycle_lag|CLOSED|count', 0)} to CLOSED); closes from their deadline, "
        f"waits for the log included: {closes_late} > 10 s, mean {closes_mean:.1f} s",
        lag_late <= 0.05 * lag_n)

    # shards: progress while they had entries
    shard, stall = monitor.worst()
    since = monitor.max_stall_from.get(shard)
    when = f" from {since - soak.t0:.1f} s" if since is not None else ""
    row("longest time a shard had entries and no progress", f"<= {a.stall_bound:g} s",
        f"{stall:.1f} s (shard {shard}{when}; {monitor.samples} samples, every {a.sample_every:g} s)",
        stall <= a.stall_bound)

    # dead letters: only for bad input, and every bad input dead-lettered
    letters = soak.dead_letters()
    matched: Counter = Counter()
    stray, wrong_reason = [], []
    for fields in letters:
        text = json.dumps(fields)
        marker = next((m for m in traffic.bad if m in text), None)
        if marker is None:
            stray.append(f"{fields.get('reason')}:{_ids(fields)}")
            continue
        matched[marker] += 1
        if fields.get("reason") != traffic.bad[marker]:
            wrong_reason.append(f"{marker}:{fields.get('reason')}!={traffic.bad[marker]}")
    unlettered = [m for m in traffic.bad if not matched[m]]
    reasons = Counter(f.get("reason") for f in letters)
    kinds = ", ".join(sorted(set(traffic.bad.values())))
    row("dead letters only where input was bad", f"{len(traffic.bad)} ({kinds})",
        f"{len(letters)} {dict(reasons)}; {len(stray)} for good input, {len(unlettered)} bad not lettered, "
        f"{len(wrong_reason)} wrong reason" + _sample(stray + unlettered + wrong_reason),
        not stray and not unlettered and not wrong_reason)

    row("processes that exited on their own", "0", f"{len(soak.unexpected_exits)} {soak.unexpected_exits or ''}",
        not soak.unexpected_exits)

    # memory after everything closed
    info = redis.Redis.from_url(soak.redis.url).info("memory")
    db = redis.Redis.from_url(soak.redis.url)
    closed = sum(1 for c in state_end["conversations"] if c["status"] == "CLOSED")
    retention = _retention_setting()
    row("Redis memory at the end", "informational" if retention is None else retention,
        f"{info['used_memory'] / 1e6:.1f} MB used, {db.dbsize()} keys, {closed} closed conversations "
        f"(retention sweep: {'not on this branch' if retention is None else 'days-scale, not run by the soak'})",
        None)
    return rows


def _answered_after_close(soak: Any, conv: dict, answers: list[tuple[str, float]], got: list) -> bool:
    """Whether ``got`` is the best status answered before the conversation's close deadline, the
    better ones having been answered 200 only after it (a status callback that waits out a
    Redis restart's 503s, say): v2 refuses updates of a CLOSED conversation, so those cannot
    show, and the watermark only holds a close for what was appended before its deadline.

    The deadline is threadline's own: the record's last activity per channel (events' times,
    status callbacks included) plus the closed timeout (the soak configures one for every
    channel), read from Redis for the few communications this is asked about."""
    if conv.get("status") != "CLOSED" or len(got) != 1 or got[0] not in STATUS_RANK:
        return False
    r = redis.Redis.from_url(soak.redis.url)
    try:
        cid = r.hget(keys.CONVERSATION_TWILIO_IDS, conv["id"])
        raw = r.hgetall(keys.conversation(cid.decode())) if cid else {}
    finally:
        r.close()
    activity = [int(v) / 1000 for k, v in raw.items() if k.startswith(b"a")]
    if not activity:
        return False
    return shown_before_close(answers, max(activity) + soak.args.closed * soak.args.minute_seconds, got[0])


def shown_before_close(answers: list[tuple[str, float]], deadline: float, shown: str) -> bool:
    """Whether ``shown`` is right for a message whose status callbacks were ``answers``
    (status, answered at) and whose conversation's close deadline was ``deadline``: no worse
    than the best answered before the deadline, and one of those answered (after it, a better
    one may show if the close came later, or not)."""
    due = [st for st, at in answers if at < deadline]
    floor = max(due, key=STATUS_RANK.get) if due else None
    later = {st for st, at in answers if at >= deadline}
    return (shown in later or shown == floor) and (
        floor is None or STATUS_RANK[shown] >= STATUS_RANK[floor])


def last_activity(conv: dict) -> float:
    """Epoch seconds of the conversation's last communication write (its creation when empty)."""
    stamps = [c.get("updatedAt") or c.get("createdAt") for c in conv["communications"]] or [conv["createdAt"]]
    return max(datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() for s in stamps if s)


def _text_in(comm: dict, text: str) -> bool:
    return text in json.dumps(comm.get("content") or {})


def _ids(fields: dict[str, str]) -> str:
    try:
        p = json.loads(fields.get("p") or "{}")
    except ValueError:
        return "?"
    return p.get("MessageSid") or p.get("TranscriptionSid") or p.get("CallSid") or p.get("CloudEventId") or "?"


def _sample(items: list[str], n: int = 3) -> str:
    return f" e.g. {', '.join(map(str, items[:n]))}" if items else ""


def _retention_setting() -> str | None:
    from workers.foundations.settings import Settings

    for f in Settings.model_fields.values():
        if f.validation_alias == "THREADLINE_RETENTION_DAYS":
            return "THREADLINE_RETENTION_DAYS present"
    return None


def print_table(rows: list[Row]) -> None:
    w = [max(len(h), *(len(getattr(r, a)) for r in rows)) for h, a in
         (("invariant", "invariant"), ("expected", "expected"))]
    print(f"\n{'invariant':<{w[0]}}  {'expected':<{w[1]}}  {'verdict':<7}  seen")
    print(f"{'-' * w[0]}  {'-' * w[1]}  -------  ----")
    for r in rows:
        print(f"{r.invariant:<{w[0]}}  {r.expected:<{w[1]}}  {r.verdict:<7}  {r.seen}")
