"""The THREADLINE_CONFIG file: loaded into the store at start and again on SIGHUP.

A reload is all or nothing: the whole file is validated first, and one invalid field or one
grouping-type change keeps every current configuration as it was (the log line and the
``config_changes|file|…`` counter say why). ``kill -HUP <web pid>`` is the operator's
"apply the file now"; any process that installed the handler can be signalled, since they all
write the same Redis.
"""
from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workers import stats
from workers.capture.configuration import ConfigurationError, load_file
from workers.capture.store import ApplyResult, ConfigStore, GroupingTypeChanged
from workers.foundations.errors import Permanent
from workers.foundations.log import get_logger

log = get_logger(__name__)


def load_into(store: ConfigStore, path: Path | str) -> ApplyResult:
    """Validate the file and make it current; raises ConfigurationError or GroupingTypeChanged."""
    return store.apply_file(load_file(path))


def _count(store: ConfigStore, outcome: str, retention_minutes: int) -> None:
    try:
        pipe = store.redis.pipeline(transaction=False)
        stats.add(pipe, {stats.field("config_changes", "file", outcome): 1},
                  retention_minutes=retention_minutes)
        pipe.execute()
    except Exception:  # a counter must never turn a reload's answer into a crash
        log.warning("config reload counter not written")


def reload(store: ConfigStore, path: Path | str, *, retention_minutes: int = 1440) -> bool:
    """Load the file, log the outcome, never raise for bad input; True when it was applied."""
    try:
        result = load_into(store, path)
    except ConfigurationError as exc:
        log.error("configuration file refused; current configurations kept",
                  extra={"path": str(path), "problems": exc.problems})
        _count(store, "invalid", retention_minutes)
        return False
    except GroupingTypeChanged as exc:
        log.error("configuration file refused; current configurations kept",
                  extra={"path": str(path), "problems": [str(exc)]})
        _count(store, "refused", retention_minutes)
        return False
    log.info("configuration file loaded", extra={
        "path": str(path), "versions": result.versions, "removed": result.removed,
        "changed": result.changed,
    })
    _count(store, "applied" if result.changed else "unchanged", retention_minutes)
    return True


def install_sighup(on_hup: Callable[[], Any]) -> Callable[[], None]:
    """Run ``on_hup`` on every SIGHUP; returns a function that removes the handler.

    Inside a running asyncio loop (the web app's lifespan) the handler is the loop's, and
    ``on_hup`` runs in a thread so a slow Redis never stalls requests; elsewhere it is a plain
    signal handler.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    try:
        if loop is not None:
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, on_hup))
            def remove_loop_handler() -> None:
                loop.remove_signal_handler(signal.SIGHUP)

            return remove_loop_handler
        previous = signal.signal(signal.SIGHUP, lambda signum, frame: on_hup())
    except (RuntimeError, ValueError):
        # Signals reach only the main thread: an app served from another thread (an embedding,
        # a test harness) keeps working, without reload-on-SIGHUP, and says so.
        log.warning("SIGHUP reload not installed: not the main thread of the process")
        return lambda: None

    def restore_previous() -> None:
        signal.signal(signal.SIGHUP, previous)

    return restore_previous


class ConfigFileRefused(Permanent):
    """The file is invalid at start: the process stops, with every problem logged before."""


async def start(settings: Any, redis_sync: Any) -> Callable[[], None]:
    """At web start: load THREADLINE_CONFIG (if set) and reload it on SIGHUP.

    An invalid file stops the start (an operator sees the problems at once, rather than a
    service running without its rules); Redis unreachable does not — the web tier must keep
    taking webhooks — and the load is retried every two seconds until it succeeds.
    Returns the function that removes the handler (and the retry) at shutdown.
    """
    path = settings.config_path
    if path is None:
        # SIGHUP's default action ends the process: an operator "reloading" a service that has
        # no file must get a log line, not an outage.
        return install_sighup(lambda: log.warning("SIGHUP: no THREADLINE_CONFIG to reload"))
    import redis as redis_lib

    store = ConfigStore(redis_sync)
    retention = settings.stats_retention_minutes
    loop = asyncio.get_running_loop()
    retry: asyncio.Task | None = None
    try:
        result = await loop.run_in_executor(None, load_into, store, path)
        log.info("configuration file loaded", extra={
            "path": str(path), "versions": result.versions, "removed": result.removed})
    except ConfigurationError as exc:
        log.error("configuration file refused", extra={"path": str(path), "problems": exc.problems})
        raise ConfigFileRefused(f"THREADLINE_CONFIG {path}: {len(exc.problems)} problem(s), "
                                "see the log line before") from None
    except GroupingTypeChanged as exc:
        log.error("configuration file refused", extra={"path": str(path), "problems": [str(exc)]})
        raise ConfigFileRefused(f"THREADLINE_CONFIG {path}: {exc}") from None
    except redis_lib.RedisError:
        log.warning("configuration file not loaded yet: Redis unavailable; retrying",
                    extra={"path": str(path)})

        async def again() -> None:
            while await loop.run_in_executor(None, _try_reload, store, path, retention) is None:
                await asyncio.sleep(2.0)

        retry = loop.create_task(again())
    remove = install_sighup(lambda: _try_reload(store, path, retention))

    def stop() -> None:
        remove()
        if retry is not None:
            retry.cancel()

    return stop


def _try_reload(store: ConfigStore, path: Path | str, retention: int) -> bool | None:
    """reload(), with Redis failures logged instead of raised (None): a handler must not raise."""
    import redis as redis_lib

    try:
        return reload(store, path, retention_minutes=retention)
    except redis_lib.RedisError:
        log.warning("configuration file not loaded: Redis unavailable", extra={"path": str(path)})
        return None
