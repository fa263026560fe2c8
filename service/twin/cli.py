"""``threadline twin``: its flags, and starting it under uvicorn.

Fault flags set the faults in force at start (and after ``POST /_twin/reset``); the control API
changes them at run time. A rate outside 0…1, or rates summing past 1, is a usage error (exit 2).
"""
from __future__ import annotations

import argparse
from pathlib import Path


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a share between 0 and 1")
    return value


def _non_negative(text: str, kind: type = float) -> float:
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _non_negative_int(text: str) -> int:
    return int(_non_negative(text, int))


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser],
               handler: object) -> argparse.ArgumentParser:
    twin = sub.add_parser("twin", help="a local stand-in for the Twilio APIs threadline calls")
    twin.add_argument("--host", default="127.0.0.1")
    twin.add_argument("--port", type=int, default=8787)
    twin.add_argument("--operation-delay", type=_non_negative, default=0.2, metavar="SECONDS",
                      help="how long configuration writes stay PENDING (default 0.2)")
    twin.add_argument("--record", type=Path, default=None, metavar="FILE",
                      help="append every API request received to FILE as JSON lines")
    twin.add_argument("--memory-store", action="append", default=[], metavar="ID",
                      help="a Memory store that exists from the start (repeatable)")
    faults = twin.add_argument_group("fault injection (also: POST /_twin/faults)")
    faults.add_argument("--latency-ms", type=_non_negative, default=0.0)
    faults.add_argument("--jitter-ms", type=_non_negative, default=0.0)
    faults.add_argument("--rate-429", type=_rate, default=0.0, metavar="SHARE")
    faults.add_argument("--retry-after", type=int, default=1, metavar="SECONDS",
                        help="Retry-After on injected 429s (default 1)")
    faults.add_argument("--rate-500", type=_rate, default=0.0, metavar="SHARE")
    faults.add_argument("--rate-503", type=_rate, default=0.0, metavar="SHARE")
    faults.add_argument("--rate-timeout", type=_rate, default=0.0, metavar="SHARE",
                        help="share of requests processed but answered after --hold-seconds")
    faults.add_argument("--hold-seconds", type=_non_negative, default=15.0)
    faults.add_argument("--max-concurrent", type=_non_negative_int, default=0, metavar="N",
                        help="answer 429 (code 20429) to a request arriving while N are being "
                             "served, like Twilio's per-account concurrency limit (0 = none)")
    faults.add_argument("--fault-path", default="", metavar="REGEX",
                        help="inject faults only on paths matching REGEX")
    faults.add_argument("--fault-seed", type=int, default=None)
    twin.set_defaults(handler=handler)
    return twin


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from service.twin.app import TwinOptions, create_twin_app
    from service.twin.faults import from_args
    from workers.foundations import log
    from workers.foundations.settings import load_settings

    settings = load_settings()
    log.configure(settings.log_level)
    spec = from_args(args)
    if spec.rate_429 + spec.rate_500 + spec.rate_503 + spec.rate_timeout > 1:
        raise SystemExit("threadline twin: the --rate-* shares add up to more than 1")
    options = TwinOptions(operation_delay=args.operation_delay, faults=spec,
                          record=args.record, memory_stores=list(args.memory_store))
    app = create_twin_app(settings, options)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)
    return 0
