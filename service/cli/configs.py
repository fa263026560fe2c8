"""``threadline configs sync``: bind configurations to v2 Configurations (workers.twilio.sync),
and point bridged classic services' webhooks at threadline; ``configs unsync`` puts those back.

When THREADLINE_CONFIG is set, the file is loaded into the store first, exactly as the web
tier does at start and on SIGHUP, so the command syncs what the service will use. An invalid
file stops the command (exit 1) with the problems, before anything is sent to Twilio; so do
missing Twilio credentials, said in one sentence that names the variables to set.
"""
from __future__ import annotations

import argparse
import sys

from workers.foundations.settings import load_settings
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
        from workers.foundations.redis_conn import connect

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


def run_unsync(args: argparse.Namespace) -> int:
    """Put every bridged classic service's webhook configuration back as sync found it."""
    from workers.twilio import classic

    restored = classic.restore_all_blocking(load_settings())
    if not restored:
        print("no classic service webhook configuration recorded: nothing to restore", file=sys.stderr)
    for service, outcome in restored.items():
        print(f"classic service {service}: {outcome}")
    return 0


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
    unsync = csub.add_parser(
        "unsync", help="restore each bridged classic service's webhook configuration as sync "
        "found it (what `threadline disconnect` does for the classic bridge)")
    unsync.set_defaults(handler=run_unsync)
