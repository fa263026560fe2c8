"""Configurations in Redis: every change a new immutable version, a cheap generation counter.

Why versions: a conversation keeps the configuration version it was created with (DESIGN §4),
so an old version must stay readable after a PUT or a DELETE — ``get(id, version)`` never
loses one. Why a generation: workers hold a rule index built from ``current()`` and rebuild it
only when ``generation()`` moves (one GET per batch instead of a reload).

All writes go through one Lua script, so concurrent writers (several web processes loading
the same file at start, an admin PUT during a SIGHUP reload) cannot interleave: an unchanged
configuration keeps its version, a changed one gets exactly one new version, and a grouping
type change is refused for every configuration of the write or for none.

The THREADLINE_CONFIG file is authoritative for the ids it lists: loading it creates or
replaces those (an admin change to one of them lasts until the next load), and removes the
configurations an earlier load of the file created that it no longer lists. Configurations
created through the admin API and absent from the file are left alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.capture.configuration import Configuration, ConfigurationError, GroupingType, parse_configuration
from workers.foundations import keys
from workers.foundations.errors import Permanent
from workers.foundations.log import get_logger

log = get_logger(__name__)

SOURCE_API = "api"
SOURCE_FILE = "file"

# KEYS: current, grouping, source, generation
# ARGV: mode (create|replace|upsert|file), source, keys.CONFIG_VERSIONS, then
#       per configuration: id, json, grouping, version-counter key, version-key prefix, the classic
#       service it bridges ('' for none).
# Returns {"ok", changed, id, version, …, "-", removed ids…} or {error, id, detail}.
#
# One configuration per classic service, atomically: a configuration of the write that bridges a
# service is refused ({'bridge', id, "service holder"}) when another live configuration — one
# this write neither replaces nor (a file load) removes — bridges it already; the live ones are
# read here (their current version's JSON), so two concurrent writes cannot both pass.
_APPLY = """
local mode, source, root = ARGV[1], ARGV[2], ARGV[3]
local S = 6
local n = (#ARGV - 3) / S
local ids, wanted, any = {}, {}, false
for i = 0, n - 1 do
  local id, g, svc = ARGV[4 + S * i], ARGV[6 + S * i], ARGV[9 + S * i]
  local cur = redis.call('HGET', KEYS[1], id)
  if cur then
    if mode == 'create' then return {'exists', id, cur} end
    local old = redis.call('HGET', KEYS[2], id)
    if old and old ~= g then return {'grouping', id, old} end
  elseif mode == 'replace' then
    return {'missing', id, ''}
  end
  ids[id] = true
  if svc ~= '' then
    if wanted[svc] and wanted[svc] ~= id then return {'bridge', id, svc .. ' ' .. wanted[svc]} end
    wanted[svc] = id
    any = true
  end
end
if any then
  local live = redis.call('HGETALL', KEYS[1])
  for j = 1, #live, 2 do
    local other = live[j]
    local leaving = mode == 'file' and redis.call('HGET', KEYS[3], other) == 'file'
    if not ids[other] and not leaving then
      local raw = redis.call('GET', root .. other .. ':' .. live[j + 1])
      if raw then
        local ok, doc = pcall(cjson.decode, raw)
        local bridge = ok and type(doc) == 'table' and doc['conversationsV1Bridge']
        local svc = type(bridge) == 'table' and bridge['serviceId']
        if type(svc) == 'string' and wanted[svc] then
          return {'bridge', wanted[svc], svc .. ' ' .. other}
        end
      end
    end
  end
end
local changed = 0
local out = {'ok', 0}
local listed = {}
for i = 0, n - 1 do
  local b = 4 + S * i
  local id, json, g, seq, pfx = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  listed[id] = true
  local v = redis.call('HGET', KEYS[1], id)
  if not v or redis.call('GET', pfx .. v) ~= json then
    v = tostring(redis.call('INCR', seq))
    redis.call('SET', pfx .. v, json)
    redis.call('HSET', KEYS[1], id, v)
    redis.call('HSET', KEYS[2], id, g)
    changed = changed + 1
  end
  redis.call('HSET', KEYS[3], id, source)
  table.insert(out, id)
  table.insert(out, v)
end
table.insert(out, '-')
if mode == 'file' then
  local src = redis.call('HGETALL', KEYS[3])
  for j = 1, #src, 2 do
    if src[j + 1] == 'file' and not listed[src[j]] then
      redis.call('HDEL', KEYS[1], src[j])
      redis.call('HDEL', KEYS[2], src[j])
      redis.call('HDEL', KEYS[3], src[j])
      changed = changed + 1
      table.insert(out, src[j])
    end
  end
end
if changed > 0 then redis.call('INCR', KEYS[4]) end
out[2] = changed
return out
"""

_DELETE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('INCR', KEYS[4])
return 1
"""

_KEYS = [keys.CONFIG_CURRENT, keys.CONFIG_GROUPING, keys.CONFIG_SOURCE, keys.CONFIG_GENERATION]


class GroupingTypeChanged(Permanent):
    """``conversationGroupingType`` is immutable (Orchestrator's rule): the admin API answers 409."""

    def __init__(self, config_id: str, current: str, requested: str) -> None:
        super().__init__(
            f"configuration {config_id!r}: conversationGroupingType is immutable "
            f"(it is {current}, the change asks for {requested}); create a new configuration instead"
        )
        self.config_id, self.current, self.requested = config_id, current, requested


class BridgeTaken(ConfigurationError):
    """Another live configuration bridges the classic service already (one per service): a
    configuration error, so every caller that reports invalid input reports it (admin API: 422)."""

    def __init__(self, config_id: str, service: str, holder: str) -> None:
        super().__init__([f"conversationsV1Bridge.serviceId: {service} is already bridged by "
                          f"configuration {holder!r}; {config_id!r} cannot bridge it too "
                          f"(one configuration per classic service)"])
        self.config_id, self.service, self.holder = config_id, service, holder


class AlreadyExists(Permanent):
    def __init__(self, config_id: str) -> None:
        super().__init__(f"configuration {config_id!r} already exists (PUT replaces it)")
        self.config_id = config_id


class NotFound(Permanent, LookupError):
    def __init__(self, config_id: str) -> None:
        super().__init__(f"no configuration {config_id!r}")
        self.config_id = config_id


@dataclass(frozen=True)
class VersionedConfig:
    config: Configuration
    version: int
    source: str = SOURCE_API

    @property
    def id(self) -> str:
        return self.config.id


@dataclass(frozen=True)
class ApplyResult:
    changed: int  # versions written + configurations removed (0: nothing moved)
    versions: dict[str, int]
    removed: list[str]


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _args(mode: str, source: str, configs: list[Configuration]) -> list[str]:
    args = [mode, source, keys.CONFIG_VERSIONS]
    for c in configs:
        bridge = c.conversationsV1Bridge
        args += [c.id, c.canonical(), GroupingType(c.conversationGroupingType).value,
                 keys.config_version_counter(c.id), keys.config_version_prefix(c.id),
                 bridge.serviceId if bridge is not None else ""]
    return args


def _result(reply: list[Any], configs: list[Configuration]) -> ApplyResult:
    head = _text(reply[0])
    if head != "ok":
        config_id, detail = _text(reply[1]), _text(reply[2])
        if head == "exists":
            raise AlreadyExists(config_id)
        if head == "missing":
            raise NotFound(config_id)
        if head == "bridge":
            service, holder = detail.split(" ", 1)
            raise BridgeTaken(config_id, service, holder)
        requested = next(GroupingType(c.conversationGroupingType).value for c in configs if c.id == config_id)
        raise GroupingTypeChanged(config_id, detail, requested)
    items = [_text(x) for x in reply[2:]]
    split = items.index("-")
    pairs = items[:split]
    versions = {pairs[i]: int(pairs[i + 1]) for i in range(0, len(pairs), 2)}
    return ApplyResult(int(reply[1]), versions, items[split + 1:])


class _Cache:
    """Parsed versions by (id, version): versions are immutable, so a cached one never goes stale."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.items: dict[tuple[str, int], Configuration] = {}

    def parse(self, config_id: str, version: int, raw: Any) -> Configuration | None:
        key = (config_id, version)
        if key in self.items:
            return self.items[key]
        if raw is None:
            return None
        import json

        try:
            config = parse_configuration(json.loads(_text(raw)))
        except (ConfigurationError, ValueError) as exc:
            # Only a version written by an older threadline with looser checks can get here.
            # It stays in Redis untouched; it is skipped (not half-read) and the log says why.
            problems = exc.problems if isinstance(exc, ConfigurationError) else [str(exc)]
            log.error("stored configuration version no longer validates; skipped",
                      extra={"configuration": config_id, "version": version, "problems": problems})
            return None
        if len(self.items) >= self.size:
            self.items.clear()
        self.items[key] = config
        return config


class ConfigStore:
    """Configurations over a synchronous Redis client (web admin via a thread, CLI, workers)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._apply = redis.register_script(_APPLY)
        self._delete = redis.register_script(_DELETE)
        self._cache = _Cache()

    def generation(self) -> int:
        return int(self.redis.get(keys.CONFIG_GENERATION) or 0)

    def current(self) -> list[VersionedConfig]:
        """Every live configuration at its current version, sorted by id."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(keys.CONFIG_CURRENT)
        pipe.hgetall(keys.CONFIG_SOURCE)
        current, sources = pipe.execute()
        ids = sorted((_text(k), int(v)) for k, v in current.items())
        raws = self.redis.mget([keys.config_version(i, v) for i, v in ids]) if ids else []
        out = []
        for (config_id, version), raw in zip(ids, raws):
            config = self._cache.parse(config_id, version, raw)
            if config is not None:
                src = _text(sources.get(config_id.encode(), sources.get(config_id, SOURCE_API)))
                out.append(VersionedConfig(config, version, src))
        return out

    def get(self, config_id: str, version: int | None = None) -> VersionedConfig | None:
        """A version of a configuration (None: the current one; deleted ids keep old versions)."""
        if version is None:
            cur = self.redis.hget(keys.CONFIG_CURRENT, config_id)
            if cur is None:
                return None
            version = int(cur)
        cached = (config_id, version) in self._cache.items
        raw = None if cached else self.redis.get(keys.config_version(config_id, version))
        config = self._cache.parse(config_id, version, raw)
        return VersionedConfig(config, version) if config is not None else None

    def put(self, config: Configuration, *, mode: str = "upsert", source: str = SOURCE_API) -> int:
        """Store ``config``; returns its version (unchanged content keeps the current one).

        ``mode``: ``create`` (AlreadyExists if live), ``replace`` (NotFound if not), ``upsert``.
        Raises GroupingTypeChanged when the live configuration has another grouping type."""
        reply = self._apply(keys=_KEYS, args=_args(mode, source, [config]))
        return _result(reply, [config]).versions[config.id]

    def apply_file(self, configs: list[Configuration]) -> ApplyResult:
        """Make the file's configurations current, all or none (see the module docstring)."""
        return _result(self._apply(keys=_KEYS, args=_args("file", SOURCE_FILE, configs)), configs)

    def delete(self, config_id: str) -> bool:
        """Retire a configuration (its versions stay readable); False when it was not live."""
        return bool(self._delete(keys=_KEYS, args=[config_id]))


class AsyncConfigStore:
    """The same store over an asyncio Redis client (drains, the web tier's request handlers)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._apply = redis.register_script(_APPLY)
        self._delete = redis.register_script(_DELETE)
        self._cache = _Cache()

    async def generation(self) -> int:
        return int(await self.redis.get(keys.CONFIG_GENERATION) or 0)

    async def current(self) -> list[VersionedConfig]:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(keys.CONFIG_CURRENT)
        pipe.hgetall(keys.CONFIG_SOURCE)
        current, sources = await pipe.execute()
        ids = sorted((_text(k), int(v)) for k, v in current.items())
        raws = await self.redis.mget([keys.config_version(i, v) for i, v in ids]) if ids else []
        out = []
        for (config_id, version), raw in zip(ids, raws):
            config = self._cache.parse(config_id, version, raw)
            if config is not None:
                src = _text(sources.get(config_id.encode(), sources.get(config_id, SOURCE_API)))
                out.append(VersionedConfig(config, version, src))
        return out

    async def get(self, config_id: str, version: int | None = None) -> VersionedConfig | None:
        if version is None:
            cur = await self.redis.hget(keys.CONFIG_CURRENT, config_id)
            if cur is None:
                return None
            version = int(cur)
        cached = (config_id, version) in self._cache.items
        raw = None if cached else await self.redis.get(keys.config_version(config_id, version))
        config = self._cache.parse(config_id, version, raw)
        return VersionedConfig(config, version) if config is not None else None

    async def put(self, config: Configuration, *, mode: str = "upsert", source: str = SOURCE_API) -> int:
        reply = await self._apply(keys=_KEYS, args=_args(mode, source, [config]))
        return _result(reply, [config]).versions[config.id]

    async def apply_file(self, configs: list[Configuration]) -> ApplyResult:
        return _result(await self._apply(keys=_KEYS, args=_args("file", SOURCE_FILE, configs)), configs)

    async def delete(self, config_id: str) -> bool:
        return bool(await self._delete(keys=_KEYS, args=[config_id]))
