"""``threadline configs sync``: bind configurations to v2 Configurations (workers.twilio.sync).

When THREADLINE_CONFIG is set, the file is loaded into the store first, exactly as the web
tier does at start and on SIGHUP, so the command syncs what the service will use. An invalid
file stops the command (exit 1) with the problems, before anything is sent to Twilio; so do
missing Twilio credentials, said in one sentence that names the variables to set.
"""
from __future__ import annotations

import argparse
import sys

from workers.settings import load_settings
from workers.twilio import sync as configsync

NO_CREDENTIALS = (
    "threadline configs sync: no Twilio credentials, so nothing was sent. Set TWILIO_ACCOUNT_SID "
    "and TWILIO_AUTH_TOKEN (or TWILIO_API_KEY and TWILIO_API_SECRET) and run it again; against "
    "`threadline dev`'s twin, export the credentials its start-up lines print.")


def run_sync(args: argparse.Namespace) -> int:
    settings = load_settings()
    if settings.api_credentials is None:
        print(NO_CREDENTIALS, file=sys.stderr)
        return 1
    if settings.config_path is not None:
        from workers.capture.configuration import ConfigurationError
        from workers.capture.file import load_into
        from workers.capture.store import ConfigStore, GroupingTypeChanged
        from workers.redis_conn import connect

        redis = connect(settings)
        try:
            load_into(ConfigStore(redis), settings.config_path)
        except ConfigurationError as exc:
            print(f"{settings.config_path}: not loaded, nothing synced:", file=sys.stderr)
            for line in exc.problems:
                print(f"  {line}", file=sys.stderr)
            return 1
        except GroupingTypeChanged as exc:
            print(f"{settings.config_path}: not loaded, nothing synced: {exc}", file=sys.stderr)
            return 1
        finally:
            redis.close()
    return configsync.run(settings, only=args.ids or None, timeout=args.timeout,
                          out=sys.stdout, err=sys.stderr)


def add_parser(sub) -> None:
    configs = sub.add_parser("configs", help="manage the v2 Configurations behind threadline's")
    csub = configs.add_subparsers(dest="configs_command", metavar="ACTION", required=True)
    sync = csub.add_parser(
        "sync", help="create or update each configuration's v2 Configuration (never with "
        "capture rules) and record its id")
    sync.add_argument("ids", nargs="*", metavar="ID", help="only these configurations")
    sync.add_argument("--timeout", type=float, default=60.0,
                      help="seconds to wait for each 202 operation (default 60)")
    sync.set_defaults(handler=run_sync)
