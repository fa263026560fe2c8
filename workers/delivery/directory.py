"""The local profile directory: GROUP_BY_PROFILE for configurations without a Memory store.

Every bare address (``+14155550123``; WhatsApp and SMS of one number are one address) belongs to
exactly one local profile. An address seen for the first time gets a profile of its own; an
operator links a second address (the customer's other phone) to an existing profile through
``/api/v1/profiles``, and from then on both group into one conversation. Every change is one
Lua script, so the address → profile map and each profile's address set never disagree, even
with web and workers writing at once.

Local ids (``tlp_…``) are threadline's own: v2 does not know them, so they group conversations
and appear in the conversation record but are not sent to v2 as a participant's ``profileId``.
"""
from __future__ import annotations

import time
import uuid

from workers.foundations import keys
from workers.foundations.errors import InvalidInput
from workers.foundations.text import as_str

# KEYS: addr map, profile index; ARGV: address, new id, now, set-key prefix
_ENSURE = """
local pid = redis.call('HGET', KEYS[1], ARGV[1])
if pid then return {pid, 0} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', ARGV[4] .. ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
return {ARGV[2], 1}
"""

# KEYS: addr map, profile index; ARGV: id, set-key prefix, now, addresses...
# Returns {} on success, else the addresses already owned by another profile.
_CREATE = """
local taken = {}
for i = 4, #ARGV do
  local owner = redis.call('HGET', KEYS[1], ARGV[i])
  if owner and owner ~= ARGV[1] then table.insert(taken, ARGV[i]) end
end
if #taken > 0 then return taken end
for i = 4, #ARGV do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[1])
  redis.call('SADD', ARGV[2] .. ARGV[1], ARGV[i])
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return {}
"""

# KEYS: addr map, profile index; ARGV: id, address, set-key prefix
# Returns -1 (no such profile), or the previous owner ('' if none). An emptied auto profile goes.
_LINK = """
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return -1 end
local old = redis.call('HGET', KEYS[1], ARGV[2])
if old == ARGV[1] then return ARGV[1] end
if old then
  redis.call('SREM', ARGV[3] .. old, ARGV[2])
  if redis.call('SCARD', ARGV[3] .. old) == 0 then redis.call('ZREM', KEYS[2], old) end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[1])
redis.call('SADD', ARGV[3] .. ARGV[1], ARGV[2])
return old or ''
"""

# KEYS: addr map; ARGV: id, address, set-key prefix. 1 = unlinked, 0 = not linked to that profile.
_UNLINK = """
if redis.call('HGET', KEYS[1], ARGV[2]) ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('SREM', ARGV[3] .. ARGV[1], ARGV[2])
return 1
"""

# KEYS: addr map, profile index; ARGV: id, set-key prefix. 1 = deleted.
_DELETE = """
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
for _, a in ipairs(redis.call('SMEMBERS', ARGV[2] .. ARGV[1])) do
  if redis.call('HGET', KEYS[1], a) == ARGV[1] then redis.call('HDEL', KEYS[1], a) end
end
redis.call('DEL', ARGV[2] .. ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


class AddressTaken(InvalidInput):
    """Creating a profile with addresses that already belong to other profiles."""

    reason = "address_taken"

    def __init__(self, addresses: list[str]) -> None:
        super().__init__("addresses already linked to another profile")
        self.addresses = addresses


def new_id() -> str:
    return "tlp_" + uuid.uuid4().hex[:26]



class LocalDirectory:
    """The directory over an asyncio Redis client."""

    def __init__(self, redis) -> None:
        self.redis = redis
        self._ensure = redis.register_script(_ENSURE)
        self._create = redis.register_script(_CREATE)
        self._link = redis.register_script(_LINK)
        self._unlink = redis.register_script(_UNLINK)
        self._delete = redis.register_script(_DELETE)
        self._k = [keys.PROFILE_ADDRESSES, keys.PROFILES]

    async def profile_of(self, bare: str) -> str | None:
        pid = await self.redis.hget(keys.PROFILE_ADDRESSES, bare)
        return as_str(pid) if pid else None

    async def ensure(self, bare: str) -> str:
        """The address's profile, created (holding just this address) on first sight."""
        pid = await self.redis.hget(keys.PROFILE_ADDRESSES, bare)
        if pid:
            return as_str(pid)
        got, _created = await self._ensure(keys=self._k, args=[bare, new_id(), time.time(),
                                                              keys.PROFILE_SET_PREFIX])
        return as_str(got)

    async def create(self, addresses: list[str]) -> str:
        pid = new_id()
        taken = await self._create(keys=self._k, args=[pid, keys.PROFILE_SET_PREFIX, time.time(),
                                                        *addresses])
        if taken:
            raise AddressTaken([as_str(a) for a in taken])
        return pid

    async def link(self, pid: str, bare: str) -> str | None:
        """Link ``bare`` to ``pid``; returns the profile it belonged to before ('' if none).
        Raises KeyError when ``pid`` does not exist."""
        old = await self._link(keys=self._k, args=[pid, bare, keys.PROFILE_SET_PREFIX])
        if old == -1:
            raise KeyError(pid)
        return as_str(old)

    async def unlink(self, pid: str, bare: str) -> bool:
        return bool(await self._unlink(keys=self._k[:1], args=[pid, bare, keys.PROFILE_SET_PREFIX]))

    async def delete(self, pid: str) -> bool:
        return bool(await self._delete(keys=self._k, args=[pid, keys.PROFILE_SET_PREFIX]))

    async def get(self, pid: str) -> dict | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.zscore(keys.PROFILES, pid)
        pipe.smembers(keys.PROFILE_SET_PREFIX + pid)
        created, members = await pipe.execute()
        if created is None:
            return None
        return _view(pid, created, members)

    async def list(self, *, offset: int = 0, limit: int = 100) -> tuple[list[dict], int]:
        """Newest first, with the total count."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrevrange(keys.PROFILES, offset, offset + limit - 1, withscores=True)
        pipe.zcard(keys.PROFILES)
        page, total = await pipe.execute()
        pipe = self.redis.pipeline(transaction=False)
        for pid, _ in page:
            pipe.smembers(keys.PROFILE_SET_PREFIX + as_str(pid))
        members = await pipe.execute() if page else []
        return [_view(as_str(pid), created, m) for (pid, created), m in zip(page, members)], int(total)


def _view(pid: str, created: float, members) -> dict:
    return {
        "id": pid,
        "addresses": sorted(as_str(m) for m in members),
        "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(created))),
    }
