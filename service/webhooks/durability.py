"""What a webhook's 200 waits for (``THREADLINE_ACK_DURABILITY``), and whether Redis can give it.

- ``none``: the append script answered — the webhook is in Redis' memory. A Redis restart
  without AOF, the loss of its machine, or a failover to a replica that had not received it yet
  loses it.
- ``local``: ``WAITAOF 1 0`` — fsynced to the primary's append-only file. Measured on Valkey
  9.1 (loopback, ``appendfsync everysec`` or ``always``): 1–3 ms, because the server fsyncs at
  once for a blocked WAITAOF instead of waiting for its once-a-second fsync.
- ``replica``: ``WAIT 1`` — received by at least one replica, so a failover to it keeps the
  webhook. Not ``WAITAOF 0 1``: that waits for the replica to *report* an fsync, which replicas
  do in their once-a-second cron — measured ~990 ms median whether the replica runs
  ``appendfsync always`` or ``everysec`` — against 1.5 ms for ``WAIT 1``; a second per group
  commit would bound a web process to a few hundred webhooks/s. The replica itself should run
  AOF (docs/operations.md) so that it also survives its own restart.

The wait runs once per group commit (:mod:`.appender`), in the same write as the append script
on the same connection. A wait that falls short within ``THREADLINE_ACK_TIMEOUT_SECONDS``
raises :class:`NotDurable`: the webhooks of that commit are answered 503 and counted
``not_durable``; they are in Redis, so Twilio's retry is a duplicate — and the duplicate's 200
waits too (the script's counter write moves the connection's offset past the first copy's).

At start (:func:`verify`) the web process refuses a setting the server cannot give, naming the
setting and the Redis option to change; ``/readyz`` repeats the inspection (:func:`report`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from redis.exceptions import RedisError, ResponseError

from workers.foundations import log
from workers.foundations.errors import Permanent, Transient
from workers.foundations.settings import Settings

logger = log.get_logger("threadline.durability")

SETTING = "THREADLINE_ACK_DURABILITY"


class NotDurable(Transient, RedisError):
    """The durability wait fell short: the webhooks are in Redis, not yet as durable as promised."""


class DurabilityRefused(Permanent, RuntimeError):
    """The server cannot give the durability the setting asks for: the web process does not start."""

    reason = "durability_refused"


@dataclass(frozen=True)
class WaitAOF:
    """``WAITAOF 1 0``: fsynced to the primary's AOF."""

    timeout_ms: int

    @property
    def command(self) -> list:
        return ["WAITAOF", 1, 0, self.timeout_ms]

    def check(self, reply: object) -> None:
        if isinstance(reply, ResponseError):
            raise NotDurable(f"WAITAOF refused: {reply}")
        if not isinstance(reply, list) or not reply or int(reply[0]) < 1:
            raise NotDurable(f"not fsynced to the AOF within {self.timeout_ms} ms")


@dataclass(frozen=True)
class WaitReplica:
    """``WAIT 1``: received by at least one replica."""

    timeout_ms: int

    @property
    def command(self) -> list:
        return ["WAIT", 1, self.timeout_ms]

    def check(self, reply: object) -> None:
        if isinstance(reply, ResponseError):
            raise NotDurable(f"WAIT refused: {reply}")
        if not isinstance(reply, int) or reply < 1:
            raise NotDurable(f"no replica acknowledged within {self.timeout_ms} ms")


def wait_for(settings: Settings) -> WaitAOF | WaitReplica | None:
    """The wait each group commit sends for this process's setting (None for ``none``)."""
    timeout_ms = max(1, round(settings.ack_timeout * 1000))
    if settings.ack_durability == "local":
        return WaitAOF(timeout_ms)
    if settings.ack_durability == "replica":
        return WaitReplica(timeout_ms)
    return None


def describe(settings: Settings) -> str:
    wait = wait_for(settings)
    if wait is None:
        return "none: a 200 means the webhook is in Redis' memory"
    what = "fsynced to the primary's AOF" if isinstance(wait, WaitAOF) else "received by a replica"
    return (f"{settings.ack_durability}: a 200 waits until the webhook is {what} "
            f"({' '.join(map(str, wait.command[:-1]))}, timeout {wait.timeout_ms} ms, once per group commit)")


@dataclass
class Server:
    """What the Redis at ``REDIS_URL`` says about itself (None: it would not tell)."""

    version: str = "?"
    role: str = "?"
    replicas: int = 0
    aof: bool = False
    appendfsync: str | None = None
    save: str | None = None
    maxmemory_policy: str | None = None
    waitaof: bool = False
    notes: list[str] = field(default_factory=list)


async def inspect(redis) -> Server:
    """Read the server's persistence, replication, eviction and WAITAOF support.

    INFO answers on managed Redis too; CONFIG GET may be disabled there (then ``appendfsync``
    and ``save`` stay None and the checks that need them say so).
    """
    info = await redis.info()
    server = Server(
        version=_version(info), role=str(info.get("role", "?")),
        replicas=int(info.get("connected_slaves", 0) or 0), aof=bool(int(info.get("aof_enabled", 0) or 0)),
        maxmemory_policy=info.get("maxmemory_policy"))
    try:
        server.appendfsync = _config(await redis.config_get("appendfsync"), "appendfsync")
        server.save = _config(await redis.config_get("save"), "save")
    except ResponseError:
        server.notes.append("CONFIG GET is disabled: appendfsync and save not checked")
    try:
        await redis.execute_command("WAITAOF", 0, 0, 0)  # asks for nothing: answers at once
        server.waitaof = True
    except ResponseError as exc:
        server.waitaof = "unknown command" not in str(exc).lower()
    return server


def _version(info: dict) -> str:
    name = info.get("server_name") or ("valkey" if "valkey_version" in info else "redis")
    return f"{name} {info.get('valkey_version') or info.get('redis_version', '?')}"


def _config(reply: dict, name: str) -> str | None:
    value = reply.get(name, reply.get(name.encode())) if isinstance(reply, dict) else None
    return value.decode() if isinstance(value, bytes) else value


def refusals(settings: Settings, server: Server) -> list[str]:
    """Why ``server`` cannot give ``settings.ack_durability`` (empty: it can)."""
    mode = settings.ack_durability
    if mode == "none":
        return []
    out = []
    if mode == "local":
        if not server.waitaof:
            out.append(f"{SETTING}=local needs WAITAOF (Redis 7.2+ or Valkey); {server.version} at REDIS_URL "
                       f"has none: upgrade the server, or set {SETTING}=none")
        if not server.aof:
            out.append(f"{SETTING}=local needs the append-only file: set appendonly yes on the Redis "
                       f"(redis.conf, or CONFIG SET appendonly yes), or set {SETTING}=none")
        elif server.appendfsync == "no":
            out.append(f"{SETTING}=local needs a server that fsyncs: appendfsync no never does, so every "
                       f"WAITAOF would time out; set appendfsync everysec (or always) on the Redis")
    if mode == "replica" and server.replicas < 1:
        out.append(f"{SETTING}=replica needs at least one replica connected to the primary at REDIS_URL "
                   f"(INFO replication: connected_slaves:{server.replicas}, role:{server.role}): "
                   f"start one with replicaof <primary host> <port>, or set {SETTING}=local")
    return out


def warnings(settings: Settings, server: Server) -> list[str]:
    """What the operator should know although the setting is satisfied."""
    out = list(server.notes)
    if server.maxmemory_policy not in (None, "noeviction"):
        out.append(f"maxmemory-policy is {server.maxmemory_policy}: under memory pressure Redis evicts "
                   f"keys, event-log entries included; set maxmemory-policy noeviction")
    if not server.aof and server.save == "":
        out.append("Redis keeps nothing on disk (appendonly no, save \"\"): a Redis restart loses every "
                   f"webhook not yet delivered; set appendonly yes and {SETTING}=local")
    elif not server.aof:
        out.append("Redis runs without the append-only file: a restart loses what changed since its "
                   "last snapshot; set appendonly yes")
    if settings.ack_durability == "none":
        out.append(f"{SETTING}=none: a 200 does not wait for the disk or a replica")
    return out


async def verify(settings: Settings, redis) -> Server | None:
    """At start: log the durability in force and any warning; raise :class:`DurabilityRefused`
    when the server cannot give it. Redis unreachable: log it and go on (the spool or 503s take
    over; /readyz reports the durability once Redis answers)."""
    if settings.redis_url.startswith("memory://"):
        if settings.ack_durability != "none":
            message = (f"{SETTING}={settings.ack_durability} cannot be given by the embedded Redis "
                       f"(REDIS_URL=memory:// keeps nothing on disk and has no replica): set {SETTING}=none "
                       f"or point REDIS_URL at a Redis configured for it")
            logger.error("refusing to start", extra={"reason": message})
            raise DurabilityRefused(message)
        logger.info("ack durability", extra={"durability": describe(settings)})
        return None
    try:
        server = await inspect(redis)
    except (RedisError, OSError) as exc:
        logger.warning("ack durability not verified at start: Redis unreachable",
                       extra={"durability": describe(settings), "error": type(exc).__name__})
        return None
    problems = refusals(settings, server)
    if problems:
        message = "; ".join(problems)
        logger.error("refusing to start", extra={"reason": message, "server": server.version})
        raise DurabilityRefused(message)
    logger.info("ack durability", extra={"durability": describe(settings), "server": server.version})
    for warning in warnings(settings, server):
        logger.warning("Redis durability warning", extra={"warning": warning})
    return server


async def report(settings: Settings, redis) -> tuple[str, dict]:
    """For /readyz: ("ok" | "failed: …" | "unknown: …", the durability's description)."""
    body: dict = {"setting": settings.ack_durability, "promise": describe(settings)}
    if settings.redis_url.startswith("memory://"):
        body["warnings"] = ["REDIS_URL=memory:// is the embedded Redis of `threadline dev`: it keeps nothing"]
        return ("ok" if settings.ack_durability == "none" else "failed: memory://"), body
    try:
        server = await inspect(redis)
    except (RedisError, OSError) as exc:
        body["warnings"] = []
        return f"unknown: {type(exc).__name__}", body
    body["server"] = server.version
    body["warnings"] = warnings(settings, server)
    problems = refusals(settings, server)
    return ("failed: " + "; ".join(problems) if problems else "ok"), body
