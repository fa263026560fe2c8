"""``threadline dlq list`` and ``threadline dlq replay ID…``: the dead-letter stream from a shell.

They talk to Redis directly (REDIS_URL), like the workers, so they work while the web tier is
down. ``list`` prints one line per dead letter (``--json``: the admin API's objects, one per
line); ``replay ID…`` (or ``--all``, or ``--reason REASON`` once the cause is fixed) prints one
line per id and exits 1 when any could not be replayed.
"""
from __future__ import annotations

import argparse
import json
import sys

from workers.eventlog import deadletters
from workers.foundations.redis_conn import connect
from workers.foundations.settings import load_settings


def run_list(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.after and not deadletters.valid_id(args.after):
        print(f"--after {args.after!r} is not a dead-letter id (such as 1700000000000-0)",
              file=sys.stderr)
        return 2
    redis = connect(settings)
    try:
        page, cursor = deadletters.list(redis, args.count, args.after)
        total = deadletters.count(redis)
    finally:
        redis.close()
    for letter in page:
        print(json.dumps(letter.view(), ensure_ascii=False) if args.json
              else deadletters.describe(letter))
    if not args.json:
        print(f"{len(page)} shown, {total} in {deadletters.keys.DEAD_LETTERS}"
              + (f"; next page: --after {cursor}" if cursor else ""), file=sys.stderr)
    return 0


def _selected(redis, reason: str | None) -> list[str]:
    """Ids of every dead letter (of ``reason`` when given), oldest first."""
    out: list[str] = []
    cursor: str | None = None
    while True:
        page, cursor = deadletters.list(redis, 1000, cursor)
        out += [d.id for d in page if reason is None or d.reason == reason]
        if cursor is None:
            return out


def run_replay(args: argparse.Namespace) -> int:
    settings = load_settings()
    if bool(args.ids) == bool(args.all or args.reason):
        print("give dead-letter ids, or --all / --reason REASON (not both)", file=sys.stderr)
        return 2
    redis = connect(settings)
    failed = 0
    try:
        ids = args.ids or _selected(redis, args.reason)
        if not ids:
            print("no dead letters to replay", file=sys.stderr)
        for dead_id in ids:
            try:
                done = deadletters.replay(redis, dead_id, settings)
            except deadletters.NotReplayable as exc:
                print(f"{dead_id}: not replayed: {exc}")
                failed += 1
                continue
            if done is None:
                print(f"{dead_id}: not replayed: no such dead letter (already replayed?)")
                failed += 1
            else:
                print(f"{dead_id}: replayed to shard {done.shard} as {done.entry_id}"
                      + (" (drain enqueued)" if done.drain_enqueued else ""))
    finally:
        redis.close()
    return 1 if failed else 0


def add_parser(sub) -> None:
    """Register ``dlq list`` and ``dlq replay`` on the top-level subparsers."""
    dlq = sub.add_parser("dlq", help="list and replay dead letters")
    dsub = dlq.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    lst = dsub.add_parser("list", help="dead letters, oldest first")
    lst.add_argument("--count", type=int, default=50, choices=range(1, 1001), metavar="N",
                     help="at most N (1-1000; default 50)")
    lst.add_argument("--after", default=None, help="start after this id (paging)")
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    lst.set_defaults(handler=run_list)
    rep = dsub.add_parser("replay", help="put dead letters back into the event log")
    rep.add_argument("ids", nargs="*", metavar="ID")
    rep.add_argument("--all", action="store_true", help="every dead letter, oldest first")
    rep.add_argument("--reason", default=None, help="every dead letter with this reason")
    rep.set_defaults(handler=run_replay)
