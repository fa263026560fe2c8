"""The soak's traffic: seeded scenarios of signed webhooks and what each should leave in v2."""
from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN
from tests.web_fixtures import call_status, inbound_message, message_status, transcription

OURS_A = "+14155550100"   # configuration soak-ch: grouped by addresses and channel type
OURS_B = "+14155550200"   # configuration soak-addr: grouped by addresses, across channels
FORM = "application/x-www-form-urlencoded"
OPEN = ("ACTIVE", "INACTIVE")


@dataclass
class Step:
    """One webhook delivery: where, what, and what the soak expects back."""

    path: str
    params: list[tuple[str, str]] | None = None      # form deliveries
    body: str | None = None                          # Event Streams (JSON)
    query: dict[str, str] = field(default_factory=dict)
    token: str = AUTH_TOKEN
    expect: int = 200
    gap: float = 0.0                                 # seconds to wait before sending it
    idem: str = ""                                   # I-Twilio-Idempotency-Token (same on a retry)
    same: Step | None = None                         # a repeat of this earlier delivery, byte for byte
    sealed: bool = False                             # timestamps filled in (at the first send)
    on_ok: list[tuple[str, Any]] = field(default_factory=list)   # expectations it makes true


@dataclass
class Expected:
    """What the soak expects in v2 for one resourceId."""

    config: str
    text: str
    statuses: list[str] = field(default_factory=list)   # deliveryStatus of the callbacks answered 200


STATUS_RANK = {"INITIATED": 1, "IN_PROGRESS": 2, "FAILED": 3, "DELIVERED": 4, "READ": 5}
DELIVERY = {"queued": "INITIATED", "sent": "IN_PROGRESS", "delivered": "DELIVERED",
            "undelivered": "FAILED", "read": "READ"}


# Twilio stamps a callback when it sends it; the scenarios are drawn before the run, so their
# timestamps are placeholders the sender fills in at the first send (a retry repeats them).
NOW_ISO, NOW_RFC = "@@now-iso@@", "@@now-rfc2822@@"


def now_rfc2822() -> str:
    return format_datetime(datetime.now(UTC).replace(microsecond=0), usegmt=False).replace("-0000", "+0000")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stamp(text: str) -> str:
    if "@@now-" not in text:
        return text
    return text.replace(NOW_ISO, now_iso()).replace(NOW_RFC, now_rfc2822())


class Traffic:
    """Scenarios of webhooks, drawn from a seeded RNG; each knows what v2 should end up holding."""

    def __init__(self, rng: random.Random, customers: int) -> None:
        self.rng = rng
        self.people = [f"+1628{3000000 + i:07d}" for i in range(customers)]
        self.expected: dict[str, Expected] = {}
        self.bad: dict[str, str] = {}          # marker (a SID or CloudEvent id) → dead-letter reason
        self.seeds: list[dict[str, str]] = []  # messages the twin's Messages API must know
        self.kinds: Counter = Counter()

    def sid(self, prefix: str) -> str:
        return prefix + f"{self.rng.getrandbits(128):032x}"

    def token(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def party(self) -> tuple[str, str, str]:
        """(customer, ours, configuration id)."""
        ours, config = self.rng.choice(((OURS_A, "soak-ch"), (OURS_B, "soak-addr")))
        return self.rng.choice(self.people), ours, config

    def scenario(self, force_bad: bool = False) -> list[Step]:
        roll = self.rng.random()
        if force_bad or roll < 0.02:
            return self.bad_input()
        if roll < 0.40:
            return self.inbound()
        if roll < 0.68:
            return self.outbound_statuses()
        if roll < 0.86:
            return self.call()
        return self.event_streams()

    def inbound(self) -> list[Step]:
        customer, ours, config = self.party()
        wa = self.rng.random() < 0.25
        pre = "whatsapp:" if wa else ""
        sid = self.sid("SM")
        text = f"inbound {sid[-6:]}"
        self.expected[sid] = Expected(config, text)
        step = Step("/webhooks/twilio/messaging",
                    list(inbound_message(pre + customer, pre + ours, text, sid=sid).items()),
                    idem=self.token())
        self.kinds["inbound message"] += 1
        steps = [step]
        if self.rng.random() < 0.15:  # Twilio retries the very same delivery
            steps.append(Step(step.path, same=step, gap=self.rng.uniform(0, 0.3)))
            self.kinds["inbound message (retry)"] += 1
        return steps

    def outbound_statuses(self) -> list[Step]:
        customer, ours, config = self.party()
        wa = self.rng.random() < 0.3
        pre = "whatsapp:" if wa else ""
        sid = self.sid("SM")
        text = f"outbound {sid[-6:]}"
        self.seeds.append({"sid": sid, "from": pre + ours, "to": pre + customer, "body": text})
        self.expected[sid] = Expected(config, text)
        statuses = ["queued", "sent", "delivered"] + (["read"] if wa else [])
        if not wa and self.rng.random() < 0.15:
            statuses[-1] = "undelivered"
        self.rng.shuffle(statuses)  # out of order
        if self.rng.random() < 0.4:  # and one repeated: a re-delivery with a new token
            statuses.insert(self.rng.randrange(len(statuses) + 1), self.rng.choice(statuses))
        steps = []
        for st in statuses:
            params = message_status(sid, st, pre + ours, pre + customer)
            steps.append(Step("/webhooks/twilio/messaging/status", list(params.items()),
                              query={"tl": "soak"} if self.rng.random() < 0.5 else {},
                              idem=self.token(), gap=self.rng.uniform(0, 0.2),
                              on_ok=[("status", (sid, DELIVERY[st]))]))
            self.kinds["message status callback"] += 1
        return steps

    def call(self) -> list[Step]:
        customer, ours, config = self.party()
        call_sid, tsid = self.sid("CA"), self.sid("GT")
        steps = []
        for seq, st in enumerate(("initiated", "ringing", "in-progress")):
            steps.append(Step("/webhooks/twilio/voice/status", list(call_status(
                call_sid, st, customer, ours, sequence=seq, Timestamp=NOW_RFC).items()),
                idem=self.token(), gap=self.rng.uniform(0, 0.1)))
        seq = 0
        steps.append(self._tr(call_sid, tsid, "transcription-started", seq))
        for i in range(self.rng.randint(2, 4)):
            track = "inbound_track" if i % 2 == 0 else "outbound_track"
            if self.rng.random() < 0.3:  # a partial result first: progress, not a communication
                seq += 1
                steps.append(self._tr(call_sid, tsid, "transcription-content", seq, f"partial {i}",
                                      track=track, final=False))
            seq += 1
            text = f"said {i} on {tsid[-6:]}"
            self.expected[f"{tsid}:{seq}"] = Expected(config, text)
            step = self._tr(call_sid, tsid, "transcription-content", seq, text, track=track)
            steps.append(step)
            if self.rng.random() < 0.1:  # Twilio retries a callback
                steps.append(Step(step.path, same=step, gap=0.05))
        steps.append(self._tr(call_sid, tsid, "transcription-stopped", seq + 1))
        steps.append(Step("/webhooks/twilio/voice/status", list(call_status(
            call_sid, "completed", customer, ours, sequence=3, Timestamp=NOW_RFC,
            CallDuration="42").items()), idem=self.token()))
        self.kinds["call status callback"] += 4
        self.kinds["transcription callback"] += len(steps) - 4
        return steps

    def _tr(self, call_sid: str, tsid: str, event: str, seq: int, text: str | None = None, *,
            track: str = "inbound_track", final: bool = True) -> Step:
        params = transcription(call_sid, tsid, event, seq, transcript=text, track=track,
                               final=final, Timestamp=NOW_ISO)
        return Step("/webhooks/twilio/voice/transcription", list(params.items()), idem=self.token(),
                    gap=self.rng.uniform(0, 0.1))

    def event_streams(self, broken: bool = False) -> list[Step]:
        events: list[tuple[dict, tuple[str, str] | None]] = []
        for _ in range(self.rng.randint(3, 8)):
            customer, ours, config = self.party()
            kind = self.rng.random()
            if kind < 0.5:
                sid = self.sid("SM")
                text = f"streamed {sid[-6:]}"
                self.expected[sid] = Expected(config, text)
                events.append(self._cloud("com.twilio.messaging.inbound-message.received", "Messages", sid, {
                    "messageSid": sid, "accountSid": ACCOUNT_SID, "from": customer, "to": ours,
                    "body": text, "numMedia": 0}))
            elif kind < 0.8:
                sid = self.sid("SM")
                text = f"streamed out {sid[-6:]}"
                self.seeds.append({"sid": sid, "from": ours, "to": customer, "body": text})
                self.expected[sid] = Expected(config, text)
                for st in self.rng.sample(["sent", "delivered"], 2):
                    events.append(self._cloud(f"com.twilio.messaging.message.{st}", "Messages", sid, {
                        "messageSid": sid, "accountSid": ACCOUNT_SID, "from": ours, "to": customer,
                        "messageStatus": st.upper()}, status=DELIVERY[st]))
            else:
                call_sid = self.sid("CA")
                events.append(self._cloud("com.twilio.voice.status-callback.call.completed", "Calls", call_sid, {
                    "sid": call_sid, "request": {"method": "POST", "parameters": {
                        "CallSid": call_sid, "AccountSid": ACCOUNT_SID, "CallStatus": "completed",
                        "Direction": "inbound", "From": customer, "To": ours, "CallDuration": "7",
                        "CallbackSource": "call-progress-events", "SequenceNumber": "0"}}}))
        if broken:  # a signed batch with one event that cannot be read: dead-lettered by the web tier
            eid = self.sid("EZ")
            self.bad[eid] = "malformed_event"
            events.insert(self.rng.randrange(len(events) + 1), ({
                "specversion": "1.0", "type": "com.twilio.messaging.inbound-message.received",
                "id": eid, "time": NOW_ISO, "data": {"accountSid": ACCOUNT_SID}}, None))
        body = json.dumps([e for e, _ in events], separators=(",", ":"))
        on_ok = [("status", st) for _, st in events if st]
        step = Step("/webhooks/twilio/events", body=body, on_ok=on_ok)  # bodySHA256 added when sealed
        self.kinds["Event Streams batch"] += 1
        steps = [step]
        if self.rng.random() < 0.15:  # Event Streams delivers at least once
            steps.append(Step(step.path, same=step, gap=self.rng.uniform(0, 0.5)))
            self.kinds["Event Streams batch (again)"] += 1
        return steps

    def _cloud(self, ev_type: str, resource: str, sid: str, data: dict,
               status: str | None = None) -> tuple[dict, tuple[str, str] | None]:
        ts = NOW_ISO
        event = {"specversion": "1.0", "type": ev_type, "id": self.sid("EZ"), "time": ts,
                 "source": f"/2010-04-01/Accounts/{ACCOUNT_SID}/{resource}/{sid}.json",
                 "datacontenttype": "application/json",
                 "data": {"timestamp": ts, "accountSid": ACCOUNT_SID, "eventName": ev_type, **data}}
        return event, ((sid, status) if status else None)

    def bad_input(self) -> list[Step]:
        customer, ours, _ = self.party()
        kinds = ("unknown_message", "unknown_call", "broken_batch", "forged", "incomplete")
        kind = kinds[sum(v for k, v in self.kinds.items() if k.startswith("bad:")) % len(kinds)]  # each in turn
        self.kinds[f"bad: {kind}"] += 1
        if kind == "unknown_message":  # a status callback for a message the Messages API never had
            sid = self.sid("SM")
            self.bad[sid] = "message_not_found"
            return [Step("/webhooks/twilio/messaging/status",
                         list(message_status(sid, "delivered", ours, customer).items()), idem=self.token())]
        if kind == "unknown_call":  # words for a call threadline never saw
            tsid = self.sid("GT")
            self.bad[tsid] = "unknown_call"
            return [self._tr(self.sid("CA"), tsid, "transcription-content", 1, "who is this")]
        if kind == "broken_batch":
            return self.event_streams(broken=True)
        if kind == "forged":  # signed with another token: 403, nothing stored
            sid = self.sid("SM")
            return [Step("/webhooks/twilio/messaging", list(inbound_message(customer, ours, "forged", sid=sid).items()),
                         token="f" * 32, expect=403, idem=self.token())]
        params = inbound_message(customer, ours, "no sender")  # required From missing: 400
        params.pop("From")
        return [Step("/webhooks/twilio/messaging", list(params.items()), expect=400, idem=self.token())]


def build_traffic(seed: int, webhooks: int) -> tuple[Traffic, list[list[Step]]]:
    rng = random.Random(seed)
    traffic = Traffic(rng, customers=max(20, webhooks // 25))
    scenarios, total = [], 0
    every = max(8, webhooks // 20)  # a bad input at least this often: every kind of it in a small run
    while total < webhooks:
        steps = traffic.scenario(force_bad=len(scenarios) % every == every // 2)
        scenarios.append(steps)
        total += len(steps)
    return traffic, scenarios
