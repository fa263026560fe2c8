"""The calls threadline has seen: one Redis hash per call leg (``tl:call:{CallSid}``), with a TTL.

Why: a transcription callback names only its CallSid. Who spoke, which rules apply and which
conversation the words belong to all come from the call — its parties (from its status
callbacks), its parent leg (a dialled child belongs to its parent's conversation), the
conversations it already feeds, and whether it was routed actively (the double-billing guard:
a call routed by ``conversationId``/``conversationConfiguration`` is never also captured by
passive voice rules).

Fields: ``f``/``t`` parties (raw), ``d`` Twilio Direction, ``p`` parent CallSid, ``ct`` callType,
``st``/``sq`` latest call status and its SequenceNumber, ``eng`` the transcription engine
(named only on ``transcription-started``), ``act`` the active route, ``c:{configuration}`` the
conversation the call feeds there; passive voice's own transcription of the call
(``workers.delivery.transcribe``): ``rts`` its state (starting, started, stopped), ``rtsid`` its
TranscriptionSid, and ``ext`` the SID of another transcription seen on the call (not ours).
Every write renews the TTL (THREADLINE_CALL_TTL_SECONDS).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from workers.foundations import keys
from workers.foundations.text import as_str
from workers.parse.voice import TERMINAL_STATUSES, VoiceEvent

# Parties and direction are set once (the first status callback of the leg says them all);
# the status moves forward only: a terminal status is never replaced by a progress one, and a
# lower SequenceNumber never replaces a higher one (callbacks arrive out of order).
_RECORD = """
local k = KEYS[1]
if redis.call('HEXISTS', k, 'f') == 0 then
  redis.call('HSET', k, 'f', ARGV[1], 't', ARGV[2], 'd', ARGV[3], 'ct', ARGV[5])
  if ARGV[4] ~= '' then redis.call('HSET', k, 'p', ARGV[4]) end
end
local st = redis.call('HGET', k, 'st')
local sq = tonumber(redis.call('HGET', k, 'sq') or '-1')
local new_sq = tonumber(ARGV[7])
local terminal = {}
for w in string.gmatch(ARGV[9], '[^,]+') do terminal[w] = true end
local take = true
if st and terminal[st] and not terminal[ARGV[6]] then take = false end
if new_sq >= 0 and sq >= 0 and new_sq < sq and st and not terminal[ARGV[6]] then take = false end
if take then
  redis.call('HSET', k, 'st', ARGV[6])
  if new_sq >= 0 then redis.call('HSET', k, 'sq', ARGV[7]) end
end
redis.call('EXPIRE', k, ARGV[8])
return take and 1 or 0
"""


@dataclass
class CallRecord:
    sid: str
    from_addr: str
    to_addr: str
    direction: str | None
    parent: str | None
    call_type: str
    status: str | None = None
    sequence: int | None = None
    engine: str | None = None
    active: str | None = None            # "conversation:<id>" | "configuration:<id>"
    rest_state: str | None = None        # threadline's own transcription: starting|started|stopped
    rest_sid: str | None = None
    foreign: str | None = None           # another transcription running on the call (not ours)
    conversations: dict[str, str] = field(default_factory=dict)  # configuration id → conversation id



def _record(sid: str, raw: dict) -> CallRecord | None:
    h = {as_str(k): as_str(v) for k, v in raw.items()}
    if "f" not in h:
        return None
    sq = h.get("sq")
    return CallRecord(
        sid=sid, from_addr=h["f"], to_addr=h.get("t", ""), direction=h.get("d") or None,
        parent=h.get("p") or None, call_type=h.get("ct") or "PSTN", status=h.get("st") or None,
        sequence=int(sq) if sq and sq.lstrip("-").isdigit() else None, engine=h.get("eng") or None,
        active=h.get("act") or None, rest_state=h.get("rts") or None,
        rest_sid=h.get("rtsid") or None, foreign=h.get("ext") or None,
        conversations={k[2:]: v for k, v in h.items() if k.startswith("c:")},
    )


class CallRegistry:
    """Call records over an asyncio Redis client."""

    def __init__(self, redis, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl = ttl_seconds
        self._record = redis.register_script(_RECORD)

    async def record_status(self, event: VoiceEvent) -> bool:
        """Remember a status callback's leg; True when its status became the leg's current one."""
        v = event.voice
        assert v is not None
        seq = v.sequence if v.sequence is not None else -1
        took = await self._record(
            keys=[keys.call(v.call_sid)],
            args=[event.from_addr, event.to_addr, v.call_direction or "", v.parent_call_sid or "",
                  event.metadata.get("callType", "PSTN"), v.call_status or "", seq, self.ttl,
                  ",".join(sorted(TERMINAL_STATUSES))])
        return bool(took)

    async def get(self, sid: str) -> CallRecord | None:
        return _record(sid, await self.redis.hgetall(keys.call(sid)))

    async def leg_and_root(self, sid: str) -> tuple[CallRecord | None, CallRecord | None]:
        """The leg itself and the call it belongs to (its parent when it is a dialled child and
        the parent is known; else itself)."""
        leg = await self.get(sid)
        if leg is None or not leg.parent:
            return leg, leg
        root = await self.get(leg.parent)
        return leg, root or leg

    async def set_fields(self, sid: str, mapping: dict[str, str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(keys.call(sid), mapping=mapping)
        pipe.expire(keys.call(sid), self.ttl)
        await pipe.execute()

    async def mark_active(self, sid: str, route: str) -> None:
        """The double-billing guard: from now on passive rules leave this call alone."""
        await self.set_fields(sid, {"act": route})

    async def claim_transcription(self, sid: str) -> bool:
        """Take the right to start the call's one transcription (False: already taken)."""
        took = await self.redis.hsetnx(keys.call(sid), "rts", "starting")
        return bool(took)

    async def release_transcription(self, sid: str) -> None:
        await self.redis.hdel(keys.call(sid), "rts")

    async def bind(self, sid: str, configuration_id: str, conversation_id: str) -> None:
        await self.set_fields(sid, {f"c:{configuration_id}": conversation_id})
