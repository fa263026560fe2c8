"""``threadline dev [--port 8000] [--twin-port 8787] [--demo]``: everything in one process.

Web (uvicorn), one RQ worker (non-forking, in a thread), the scheduler (a thread) and —
without Twilio credentials — the twin (a second uvicorn server on the same event loop). On
the Redis at ``REDIS_URL`` when one answers, else on the embedded one (``memory://``); the
first line printed says which, with the URLs of the dashboard and the admin API (and an admin
token, generated when none is set). ``--demo`` also makes traffic happen on the twin until
stopped (service/cli/demo.py).

Acknowledgements: unless ``THREADLINE_ACK_DURABILITY`` is set, dev acknowledges on ``none``
(the production default ``local`` needs a Redis with AOF and WAITAOF; the embedded one and a
laptop's default Redis keep nothing on disk), and the banner says so.

Why one process: a newcomer runs one command and sees the whole flow; the embedded Redis
lives in this process, so every part must share it. The choices made here (Redis URL, the
twin's base URL and demo credentials, a generated admin token, the demo's minute scale) are
exported to this process's environment *before* anything loads settings, so every part —
including code that calls ``load_settings()`` itself, like RQ jobs — reads the same values
through ``workers.foundations.settings`` (which stays the only reader of the environment).
"""
from __future__ import annotations

import asyncio
import os
import secrets
import threading

import redis as redis_lib

from workers.foundations.settings import Settings, load_settings
from workers.scheduler import Scheduler

DEMO_ACCOUNT_SID = "AC" + "d" * 32
DEMO_AUTH_TOKEN = "devtoken" + "0" * 24


def _redis_answers(url: str) -> bool:
    if url.startswith("memory://"):
        return False
    try:
        client = redis_lib.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        ok = bool(client.ping())
        client.close()
        return ok
    except Exception:
        return False


def prepare_environment(port: int, twin_port: int, demo: bool) -> tuple[Settings, dict]:
    """Decide Redis, twin and tokens; export them so every part (and load_settings) agrees."""
    base = load_settings()
    info: dict = {}
    if _redis_answers(base.redis_url):
        info["redis"] = f"real Redis at {base.redis_url}"
    else:
        os.environ["REDIS_URL"] = "memory://"
        info["redis"] = f"embedded Redis (memory://; nothing answered at {base.redis_url})"
    info["twin"] = False
    if base.api_credentials is None:
        info["twin"] = True
        os.environ["TWILIO_ACCOUNT_SID"] = DEMO_ACCOUNT_SID
        os.environ["TWILIO_AUTH_TOKEN"] = DEMO_AUTH_TOKEN
        os.environ["THREADLINE_TWILIO_BASE_URL"] = f"http://127.0.0.1:{twin_port}"
    if "ack_durability" not in base.model_fields_set:
        os.environ["THREADLINE_ACK_DURABILITY"] = "none"
    if not base.admin_token:
        os.environ["THREADLINE_ADMIN_TOKEN"] = secrets.token_urlsafe(18)
        info["token_generated"] = True
    if not base.public_url:
        os.environ["THREADLINE_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    if demo and base.minute_seconds == 60.0:
        # The demo's configuration says inactive 1 / closed 2 minutes; 10 s minutes make
        # conversations go INACTIVE after 10 s and CLOSE after 20 s.
        os.environ["THREADLINE_MINUTE_SECONDS"] = "10"
    return load_settings(), info


def banner(settings: Settings, info: dict, port: int, twin_port: int, demo: bool = False) -> list[str]:
    web = f"http://127.0.0.1:{port}"
    first = (f"threadline dev: {info['redis']}; dashboard {web}/dashboard; "
             f"admin API {web}/api/v1/conversations")
    lines = [first]
    if info.get("token_generated"):
        lines.append(f"  admin token (generated): {settings.admin_token}")
    else:
        lines.append("  admin token: THREADLINE_ADMIN_TOKEN from the environment")
    if info["twin"]:
        lines.append(f"  Twilio: the twin at http://127.0.0.1:{twin_port} (no Twilio credentials set)")
    else:
        lines.append("  Twilio: the real APIs (credentials set)")
    lines.append(f"  one configured minute lasts {settings.minute_seconds:g} s")
    lines.append(f"  acknowledgements: THREADLINE_ACK_DURABILITY={settings.ack_durability}"
                 + (" (dev's choice; production's default is local)" if settings.ack_durability == "none" else ""))
    if demo:
        from service.cli import demo as demo_mod

        lines.extend(demo_mod.banner_lines())
    return lines


def twin_lines(settings: Settings, info: dict) -> list[str]:
    """The twin's credentials, ready to paste: without them `configs sync` (or any client of
    the twin) gets 401. They are the dev twin's fixed demo values, not a real account's."""
    if not info["twin"]:
        return []
    return ["  twin credentials (for `threadline configs sync` and other clients of the twin):",
            f"    export TWILIO_ACCOUNT_SID={settings.twilio_account_sid} "
            f"TWILIO_AUTH_TOKEN={settings.twilio_auth_token} "
            f"THREADLINE_TWILIO_BASE_URL={settings.twilio_base_url}"]


def _start_worker(settings: Settings, stop: threading.Event) -> threading.Thread:
    from rq import Queue, SimpleWorker
    from rq.timeouts import TimerDeathPenalty
    from rq.worker import DequeueStrategy

    from workers.foundations import keys
    from workers.foundations.redis_conn import connect

    class ThreadWorker(SimpleWorker):
        death_penalty_class = TimerDeathPenalty  # SIGALRM works only in the main thread

        def _install_signal_handlers(self) -> None:  # signals belong to the main thread
            pass

    from workers.jobs import runtime, sweep_shards

    rt = runtime(settings)
    rt.start_lifecycle()  # the lifecycle applier, as `threadline worker` runs it
    sweep_shards(rt)  # the engine's start-up sweep, as `threadline worker` does
    conn = connect(settings)
    worker = ThreadWorker([Queue(q, connection=conn) for q in (keys.QUEUE, keys.LIFECYCLE_QUEUE)],
                          connection=conn)

    def run() -> None:
        worker.work(burst=False, with_scheduler=False, logging_level="WARNING",
                    dequeue_strategy=DequeueStrategy.ROUND_ROBIN)

    t = threading.Thread(target=run, name="worker", daemon=True)
    t.start()
    return t


def _start_scheduler(settings: Settings) -> tuple[threading.Thread, Scheduler]:
    from workers.foundations.redis_conn import connect

    sched = Scheduler(settings, connect(settings), name="dev")
    t = threading.Thread(target=sched.run, name="scheduler", daemon=True)
    t.start()
    return t, sched


async def _serve(settings: Settings, info: dict, port: int, twin_port: int, demo: bool,
                 stop: threading.Event) -> None:
    import uvicorn

    from service.app import create_app

    servers = [uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                             log_config=None, access_log=False))]
    if info["twin"]:
        from service.twin.app import create_twin_app

        servers.append(uvicorn.Server(uvicorn.Config(create_twin_app(settings), host="127.0.0.1",
                                                     port=twin_port, log_config=None,
                                                     access_log=False)))
    from service.cli import serverlog

    serverlog.install()
    tasks = [asyncio.create_task(serverlog.serve(s, label)) for s, label in zip(servers, ("web", "twin"))]
    if demo:
        from service.cli import demo as demo_mod

        async def play() -> None:
            while not all(s.started for s in servers):
                await asyncio.sleep(0.05)
            await asyncio.to_thread(demo_mod.run, settings, f"http://127.0.0.1:{port}", stop)

        tasks.append(asyncio.create_task(play()))
    try:
        await asyncio.gather(*tasks[: len(servers)])
    finally:
        stop.set()  # the demo's thread ends before asyncio.run waits for its executor


def run(port: int, twin_port: int, demo: bool) -> int:
    settings, info = prepare_environment(port, twin_port, demo)
    for line in banner(settings, info, port, twin_port, demo) + twin_lines(settings, info):
        print(line, flush=True)
    from workers.foundations import log

    log.configure(settings.log_level)
    stop = threading.Event()
    _start_worker(settings, stop)
    _, sched = _start_scheduler(settings)
    try:
        asyncio.run(_serve(settings, info, port, twin_port, demo, stop))
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        sched.stop()
    return 0
