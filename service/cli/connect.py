"""``threadline connect [--dry-run] [--forward] [--numbers …]`` and ``threadline disconnect``.

Switches threadline on as a pure observer of a Twilio account, and off again (DESIGN §4
"Coexistence"): Event Streams by default (:mod:`workers.twilio.sinks`), forwarding with
``--forward`` (:mod:`workers.twilio.numbers`) — and, in both modes, every classic service a
configuration bridges (``conversationsV1Bridge``) gets its post-event webhook pointed at
threadline (:mod:`workers.twilio.classic`, as ``configs sync`` does), the Event Streams sink
subscribing to the classic ``com.twilio.conversations.*`` events as well. Each prints what it
did — or, with ``--dry-run``, what it would do — one line a step. A refusal (no THREADLINE_PUBLIC_URL, no credentials, a
request Twilio refused) prints one line that says why on stderr and exits non-zero: 2 when
nothing was sent, 1 when Twilio refused a request (the steps before it stay done, and running
the command again picks up from there: every step is idempotent).

``disconnect`` undoes what connect recorded in Redis, both modes, and nothing else — and gives
bridged classic services their own webhook configuration back (what ``configs sync`` recorded,
as ``configs unsync`` does).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from workers.foundations import keys
from workers.foundations.settings import Settings, load_settings
from workers.twilio import numbers, sinks
from workers.twilio.connect import ConnectRefused, Report, client, public_url
from workers.twilio.wire import V2Error


def _numbers(text: str) -> list[str]:
    found = [n.strip() for n in text.split(",") if n.strip()]
    if not found:
        raise argparse.ArgumentTypeError("give one or more numbers, separated by commas")
    return found


def _classic(settings: Settings, redis: Any, report: Report) -> None:
    """Bridged classic services get their own webhook configuration back, as ``configs sync``
    found it (:func:`workers.twilio.classic.restore_all`, also ``configs unsync``)."""
    from workers.twilio import classic

    prefix = keys.classic_webhooks_saved("")
    saved = sorted(_text(k)[len(prefix):] for k in redis.scan_iter(match=prefix + "*"))
    if report.dry_run:
        for sid in saved:
            report.change(f"restore classic service {sid}'s webhook configuration", lambda: None)
        return
    if not saved:
        return
    try:
        outcomes = classic.restore_all_blocking(settings)
    except V2Error as exc:
        raise ConnectRefused(f"Twilio refused to restore a classic service's webhooks: {exc}") from None
    for sid, outcome in outcomes.items():
        report.change(f"restore classic service {sid}'s webhook configuration ({outcome})", lambda: None)


def _bridged_services(redis: Any) -> list[str]:
    """The classic services the live configurations bridge (``conversationsV1Bridge``)."""
    from workers.capture.store import ConfigStore

    return sorted({vc.config.conversationsV1Bridge.serviceId for vc in ConfigStore(redis).current()
                   if vc.config.conversationsV1Bridge is not None})


def _connect_classic(settings: Settings, services: list[str], report: Report) -> None:
    """Point each bridged classic service's post-event webhook at threadline, recording what was
    there (:func:`workers.twilio.classic.connect_service`, as ``configs sync`` does)."""
    from workers.twilio import classic

    if not services:
        return
    url = public_url(settings).rstrip("/") + classic.PATH
    if report.dry_run:
        for sid in services:
            report.change(f"point classic service {sid}'s post-event webhook at {url}", lambda: None)
        return
    try:
        outcomes = classic.connect_all_blocking(settings, services, url)
    except V2Error as exc:
        raise ConnectRefused(f"Twilio refused to set a classic service's webhooks: {exc}") from None
    for sid, outcome in outcomes.items():
        if outcome == classic.UNCHANGED:
            report.note(f"classic service {sid}'s post-event webhook already points at threadline")
        else:
            report.change(f"point classic service {sid}'s post-event webhook at {url} ({outcome})",
                          lambda: None)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _run(args: argparse.Namespace, *, disconnecting: bool) -> int:
    from workers.foundations.redis_conn import connect as redis_connect

    settings = load_settings()
    report = Report(dry_run=args.dry_run)
    try:
        twilio = client(settings)
        redis = redis_connect(settings)
        try:
            if disconnecting:
                numbers.disconnect(twilio, redis, settings, report)
                sinks.disconnect(twilio, redis, report)
                _classic(settings, redis, report)
            else:
                bridged = _bridged_services(redis)
                if args.forward:
                    numbers.connect(twilio, redis, settings, report, args.numbers)
                else:
                    sinks.connect(twilio, redis, settings, report, bridged=bool(bridged))
                _connect_classic(settings, bridged, report)
        finally:
            redis.close()
    except ConnectRefused as refusal:
        for line in report.lines:
            print(line)
        print(f"threadline {'disconnect' if disconnecting else 'connect'}: {refusal}", file=sys.stderr)
        return refusal.exit_code
    for line in report.lines:
        print(line)
    if args.dry_run:
        print("dry run: nothing was changed")
    elif not report.changes:
        print("nothing to change")
    return 0


def run_connect(args: argparse.Namespace) -> int:
    if args.numbers and not args.forward:
        print("threadline connect: --numbers only applies with --forward", file=sys.stderr)
        return 2
    return _run(args, disconnecting=False)


def run_disconnect(args: argparse.Namespace) -> int:
    return _run(args, disconnecting=True)


def add_parser(sub) -> None:
    connect = sub.add_parser(
        "connect", help="observe a Twilio account without touching its application: an Event "
        "Streams sink (default) or, with --forward, numbers relayed through threadline")
    connect.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    connect.add_argument("--forward", action="store_true",
                         help="point the numbers capture rules name at threadline, which relays "
                              "every webhook to the application's own URL")
    connect.add_argument("--numbers", type=_numbers, default=None, metavar="+1…,+1…",
                         help="with --forward: these numbers instead of the ones rules name")
    connect.set_defaults(handler=run_connect)
    disconnect = sub.add_parser("disconnect", help="undo exactly what connect did")
    disconnect.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    disconnect.set_defaults(handler=run_disconnect)
