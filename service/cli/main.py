"""The ``threadline`` command: one entry point, one subcommand per process type or tool.

A subcommand is listed here only once it works. Unknown subcommands and flags print usage on
stderr and exit 2 (argparse's convention). Output piped into a reader that stops early
(``threadline stats --json | head``) ends the command quietly, as ``cat`` would, for every
subcommand: :func:`main` catches the BrokenPipeError once, here.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from workers.foundations.settings import load_settings

Handler = Callable[[argparse.Namespace], int]


def _web(args: argparse.Namespace) -> int:
    import uvicorn

    from service.app import create_app

    app = create_app(load_settings())
    # httptools (C parser) and uvloop are dependencies: uvicorn's "auto" picks them, and
    # bench/ingress.py measures them against h11 + asyncio (BENCHMARKS.md, "webhook ingress").
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False,
                http=args.http, loop=args.loop)
    return 0


def _scheduler(args: argparse.Namespace) -> int:
    from workers.foundations import log
    from workers.scheduler import run_forever

    settings = load_settings()
    log.configure(settings.log_level)
    return run_forever(settings)


def _stats(args: argparse.Namespace) -> int:
    from service.cli.stats import run

    return run(args)


def _twin(args: argparse.Namespace) -> int:
    from service.twin.cli import run

    return run(args)


def _dev(args: argparse.Namespace) -> int:
    from service.cli.dev import run

    return run(args.port, args.twin_port, args.demo)


def _worker(args: argparse.Namespace) -> int:
    from workers.worker import run

    return run(load_settings(), burst=args.burst)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="threadline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    web = sub.add_parser("web", help="serve webhooks, the admin API, /metrics and the dashboard")
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=8000)
    web.add_argument("--http", choices=("auto", "httptools", "h11"), default="auto",
                     help="uvicorn's HTTP parser (auto: httptools when installed)")
    web.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                     help="uvicorn's event loop (auto: uvloop when installed)")
    web.set_defaults(handler=_web)

    worker = sub.add_parser("worker", help="run capture jobs (drain_shard) from the threadline queue")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.set_defaults(handler=_worker)

    sched = sub.add_parser("scheduler", help="fire lifecycle timeouts and re-trigger stalled shards")
    sched.set_defaults(handler=_scheduler)

    dev = sub.add_parser("dev", help="web, a worker, the scheduler and the twin in one process")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--twin-port", type=int, default=8787)
    dev.add_argument("--demo", action="store_true", help="load a sample configuration and play traffic")
    dev.set_defaults(handler=_dev)

    stats = sub.add_parser("stats", help="counters, lag, backlog and dead letters as terminal tables")
    stats.add_argument("--window", default="1h", help="5m, 1h, 24h … (up to the stats retention)")
    stats.add_argument("--configuration", default=None, help="only this configuration's numbers")
    stats.add_argument("--json", action="store_true", help="print /api/v1/stats' JSON instead")
    stats.set_defaults(handler=_stats)

    from service.twin import cli as twincli

    twincli.add_parser(sub, _twin)

    from service.cli import configs as configscli
    from service.cli import dlq as dlqcli

    dlqcli.add_parser(sub)
    configscli.add_parser(sub)

    from service.cli import rules as rulescli

    rulescli.add_parser(sub)

    from service.cli import connect as connectcli

    connectcli.add_parser(sub)

    return parser


# What a shell reports for a writer its reader hung up on (128 + SIGPIPE).
EXIT_READER_GONE = 141


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        handler: Handler = args.handler
        code = handler(args)
        sys.stdout.flush()  # a pipe closed early fails here rather than at exit, where it'd print
        return code
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """stdout's reader went away: stop without a traceback. stdout now points at /dev/null, so
    the interpreter's own flush at exit cannot raise the same error again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_READER_GONE


if __name__ == "__main__":
    sys.exit(main())
