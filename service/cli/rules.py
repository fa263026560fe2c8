"""``threadline rules check FILE`` and ``threadline rules explain``.

``check`` validates and lints a configurations file (``workers.capture.lint``, with the sources of
calls this environment's settings and connected account give — passive voice): one line per finding,
``error: …`` / ``warning: …``, then a count. Exit 1 when there is an error, else 0.

``explain`` says what threadline would do with one event (``workers.delivery.explain``): against the
store in Redis (REDIS_URL, with the conversation it would join), or with ``--config FILE``
against a file alone (offline: no conversation lookup). ``--json`` prints the same JSON as
``POST /api/v1/rules/explain``. Exit 0 when a configuration matches, 1 when none does, 2 on
bad input.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any

from workers.capture.configuration import CHANNELS, Configuration


def call_sources() -> list[str] | None:
    """What tells threadline that a call started, from this environment's settings and what
    ``threadline connect`` recorded in Redis (passive voice): ``poll`` (the poll of in-progress
    calls) unless ``THREADLINE_CALL_POLL_SECONDS=0``; ``forwarding`` when ``connect --forward``
    pointed a number's VoiceUrl at threadline; ``event_streams`` when ``connect`` made an Event
    Streams sink (its subscription takes call events). None (unknown: no warning) when none of
    them is known and Redis cannot be asked."""
    from redis.exceptions import RedisError

    from workers.foundations import keys
    from workers.foundations.redis_conn import connect
    from workers.foundations.settings import load_settings
    from workers.twilio import upstreams

    settings = load_settings()
    sources = ["poll"] if settings.call_poll_seconds > 0 else []
    try:
        redis = connect(settings)
        try:
            if any(up.target(upstreams.VOICE) for up in upstreams.load(redis).values()):
                sources.append("forwarding")
            if redis.hget(keys.CONNECT_EVENT_STREAMS, "sink"):
                sources.append("event_streams")
        finally:
            redis.close()
    except (RedisError, OSError):
        return sources or None
    return sources


def run_check(args: argparse.Namespace) -> int:
    from workers.capture.lint import check_file

    findings = check_file(args.file, twilio_limits=args.twilio_limits, call_sources=call_sources())
    errors = [f for f in findings if f.level == "error"]
    warnings = [f for f in findings if f.level == "warning"]
    for finding in errors + warnings:
        print(finding)
    print(f"{args.file}: {len(errors)} error(s), {len(warnings)} warning(s)")
    return 1 if errors else 0


@dataclass(frozen=True)
class _FileVersion:
    config: Configuration
    version: int = 0


def _metadata(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"threadline rules explain: --metadata wants KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


async def _explain_live(channel: str, frm: str, to: str, metadata: dict, direction: str | None) -> dict:
    from workers.capture.store import AsyncConfigStore
    from workers.conversations.store import ConversationStore
    from workers.delivery.explain import explain
    from workers.foundations.redis_conn import connect_async
    from workers.foundations.settings import load_settings

    redis = connect_async(load_settings())
    try:
        configs = await AsyncConfigStore(redis).current()
        return await explain(configs, channel, frm, to, metadata, direction=direction,
                             redis=redis, conversations=ConversationStore(redis))
    finally:
        await redis.aclose()


def _print_text(result: dict) -> None:
    head = f"{result['channel']} from {result['from']} to {result['to']}"
    if "callType" in result:
        head += f" (callType {result['callType']})"
    print(head)
    if not result["matches"]:
        print(f"  ignored: {result['ignored']}")
    for m in result["matches"]:
        rules = ", ".join(f"[{r['index']}] {r['from']} -> {r['to']}" for r in m["rules"])
        version = f" v{m['version']}" if m["version"] else ""
        print(f"  {m['configurationId']}{version}: rules {rules}")
        print(f"    customer {m['customer']['address']} ({m['customer']['reason']}); "
              f"account {m['account']['address']} as {m['account']['participantType']}")
        if "profile" in m:
            print(f"    profile: {m['profile']['id'] or '-'} ({m['profile']['source']})")
        print(f"    {m['groupingType']} key: {m['groupingKey'] or '(decided at capture time)'}")
        conv = m.get("conversation")
        if conv and conv.get("action") == "join":
            print(f"    joins conversation {conv['id']} ({conv['status']}, pinned to "
                  f"v{conv['configurationVersion']})")
        elif conv:
            print(f"    conversation: {conv['action']}")


def run_explain(args: argparse.Namespace) -> int:
    from workers.delivery.explain import ExplainError, explain, parse_request

    body = {"channel": args.channel, "from": args.from_, "to": args.to,
            "metadata": _metadata(args.metadata or []), "direction": args.direction}
    try:
        channel, frm, to, metadata, direction = parse_request(body)
    except ExplainError as exc:
        print(f"threadline rules explain: {exc}", file=sys.stderr)
        return 2
    if args.config:
        from workers.capture.configuration import ConfigurationError, load_file

        try:
            configs = [_FileVersion(c) for c in load_file(args.config)]
        except ConfigurationError as exc:
            for line in exc.problems:
                print(f"error: {line}", file=sys.stderr)
            return 2
        result = asyncio.run(explain(configs, channel, frm, to, metadata, direction=direction))
    else:
        result = asyncio.run(_explain_live(channel, frm, to, metadata, direction))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_text(result)
    return 0 if result["matches"] else 1


def add_parser(sub: Any) -> None:
    rules = sub.add_parser("rules", help="check a configurations file; explain a match")
    rsub = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)

    check = rsub.add_parser("check", help="validate and lint a configurations file (YAML or JSON)")
    check.add_argument("file")
    check.add_argument("--twilio-limits", action="store_true",
                       help="also enforce Orchestrator's limits (10 configurations, 100 rules per channel)")
    check.set_defaults(handler=run_check)

    ex = rsub.add_parser("explain", help="which configurations and rules capture an event, and where it goes")
    ex.add_argument("--channel", required=True, type=str.upper, choices=CHANNELS)
    ex.add_argument("--from", dest="from_", required=True, metavar="ADDRESS")
    ex.add_argument("--to", required=True, metavar="ADDRESS")
    ex.add_argument("--metadata", action="append", metavar="KEY=VALUE", help="e.g. callType=CLIENT")
    ex.add_argument("--direction", choices=("inbound", "outbound"))
    ex.add_argument("--config", metavar="FILE", help="explain against this file instead of the store")
    ex.add_argument("--json", action="store_true", help="print the API's JSON")
    ex.set_defaults(handler=run_explain)
