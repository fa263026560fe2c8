"""Forwarding mode of `threadline connect --forward`: numbers pointed at threadline, and back.

Which numbers: those given with ``--numbers``, else every number of the account that a SMS or
VOICE capture rule names (:func:`rule_numbers`; a wildcard names none). For each one, in order:

1. its own ``SmsUrl``/``VoiceUrl``/``StatusCallback`` and their methods are recorded in Redis
   (:mod:`workers.twilio.upstreams`) — first, and :data:`~workers.twilio.upstreams.SETTLE_SECONDS`
   before step 2, so every web process knows where to relay before Twilio sends anything here;
2. each of those URLs the application has is pointed at threadline (``/webhooks/twilio/messaging``,
   ``/webhooks/twilio/voice``, ``/webhooks/twilio/voice/status``; methods POST). An empty one
   stays empty: threadline then sees exactly the webhooks the application saw, answers none Twilio
   would not have sent (an empty ``VoiceUrl`` is Twilio's own handling of a call, not
   threadline's ``<Response/>``), and `disconnect` never has to clear a field (the spec declares
   them ``format: uri``; an empty value is not one). A number with none of the three has nothing
   to forward and is left as it is — Event Streams sees its traffic.

A number already pointing at threadline (any of the three URLs: a manual wiring, or an earlier
connect) is left as it is. `disconnect` writes the recorded values back for every recorded number
that still points at threadline; one the operator has re-pointed since is left as they set it.
Either way the record is dropped afterwards.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from functools import partial
from typing import Any

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from workers.capture.store import ConfigStore, VersionedConfig
from workers.foundations.addresses import normalize
from workers.foundations.settings import Settings
from workers.twilio import upstreams
from workers.twilio.connect import (
    MESSAGING_PATH,
    VOICE_PATH,
    VOICE_STATUS_PATH,
    ConnectRefused,
    Report,
    points_at,
    public_url,
)
from workers.twilio.upstreams import Upstream

# API field name → the attribute twilio-python's IncomingPhoneNumberInstance gives it.
ATTRS = {"SmsUrl": "sms_url", "SmsMethod": "sms_method", "VoiceUrl": "voice_url",
         "VoiceMethod": "voice_method", "StatusCallback": "status_callback",
         "StatusCallbackMethod": "status_callback_method"}
_URL_FIELDS = ("SmsUrl", "VoiceUrl", "StatusCallback")
# Where each of the number's URLs points once it is forwarded, and the field of its method.
POINTED = {"SmsUrl": MESSAGING_PATH, "VoiceUrl": VOICE_PATH, "StatusCallback": VOICE_STATUS_PATH}
METHOD_OF = {"SmsUrl": "SmsMethod", "VoiceUrl": "VoiceMethod", "StatusCallback": "StatusCallbackMethod"}
_RULE_CHANNELS = ("SMS", "VOICE")


def rule_numbers(configs: Iterable[VersionedConfig]) -> set[str]:
    """E.164 numbers named by SMS and VOICE capture rules (either side; ``*`` names none). Pure."""
    out: set[str] = set()
    for versioned in configs:
        for channel, setting in versioned.config.channelSettings.items():
            if channel not in _RULE_CHANNELS:
                continue
            for rule in setting.captureRules:
                out.update(b for b in (rule.from_bare, rule.to_bare) if b.startswith("+"))
    return out


def _fields(number: Any) -> dict[str, str]:
    return {name: str(getattr(number, attr, None) or "") for name, attr in ATTRS.items()}


def _points_at_threadline(fields: dict[str, str], base: str) -> bool:
    return any(points_at(fields[f], base) for f in _URL_FIELDS)


def connect(twilio: Client, redis: Any, settings: Settings, report: Report,
            numbers: list[str] | None = None) -> None:
    base = public_url(settings)
    account_numbers = report.read("list the account's phone numbers",
                                  lambda: twilio.api.v2010.account.incoming_phone_numbers.list())
    owned = {n.phone_number: n for n in account_numbers}
    if numbers:
        wanted = [normalize(n) or n for n in numbers]
        strangers = [n for n in wanted if n not in owned]
        if strangers:
            raise ConnectRefused(f"not a phone number of this account: {', '.join(strangers)}", 2)
    else:
        named = rule_numbers(ConfigStore(redis).current())
        wanted = sorted(n for n in named if n in owned)
        for n in sorted(named - set(wanted)):
            report.note(f"{n}: named by a capture rule but not a number of this account, skipped")
        if not wanted:
            raise ConnectRefused("no capture rule names a phone number of this account: "
                                 "name the numbers with --numbers +1…,+1…", 2)
    todo = []
    for n in wanted:
        fields = _fields(owned[n])
        if _points_at_threadline(fields, base):
            report.note(f"{n}: already points at threadline, left as it is")
        elif not any(fields[f] for f in _URL_FIELDS):
            report.note(f"{n}: has no SmsUrl, VoiceUrl or StatusCallback to forward, left as it is")
        else:
            todo.append((owned[n], fields))
    for number, fields in todo:
        account = str(number.account_sid or settings.twilio_account_sid)
        up = Upstream(number.phone_number, number.sid, account, fields)
        report.change(f"record {number.phone_number}'s own webhooks", partial(upstreams.record, redis, up))
    if todo and not report.dry_run:
        time.sleep(upstreams.SETTLE_SECONDS)  # every web process has the records now
    for number, fields in todo:
        update: dict[str, str] = {}
        for name, path in POINTED.items():
            if fields[name]:
                update[ATTRS[name]] = base + path
                update[ATTRS[METHOD_OF[name]]] = "POST"
        names = ", ".join(n for n in POINTED if fields[n])
        handle = twilio.api.v2010.account.incoming_phone_numbers(number.sid)
        report.change(f"point {number.phone_number}'s {names} at threadline", partial(handle.update, **update))


def disconnect(twilio: Client, redis: Any, settings: Settings, report: Report) -> None:
    recorded = upstreams.load(redis)
    if not recorded:
        report.note("forwarding: no number recorded by connect")
        return
    base = public_url(settings)
    for n, up in sorted(recorded.items()):
        handle = twilio.api.v2010.account.incoming_phone_numbers(up.number_sid)
        try:
            current = _fields(handle.fetch())
        except TwilioRestException as exc:
            if exc.status != 404:
                report.read(f"fetch {n}", handle.fetch)  # raises ConnectRefused with Twilio's answer
            report.note(f"{n}: no longer a number of this account, record dropped")
            current = None
        if current is not None and not _points_at_threadline(current, base):
            report.note(f"{n}: re-pointed since connect, left as it is")
        elif current is not None:
            # The fields connect changed (the others were empty and stayed so), as they were.
            restore = {}
            for name in POINTED:
                if up.urls.get(name):
                    restore[ATTRS[name]] = up.urls[name]
                    restore[ATTRS[METHOD_OF[name]]] = up.urls.get(METHOD_OF[name]) or "POST"
            report.change(f"restore {n}'s own webhooks", partial(handle.update, **restore))
        if not report.dry_run:
            upstreams.forget(redis, n)
