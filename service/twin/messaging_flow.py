"""A message happening on the twin's account: the webhooks Twilio sends for it, in order.

- Inbound: the Message is recorded (``received``, direction ``inbound``), the incoming-message
  webhook goes to the number's ``SmsUrl`` (``SmsMethod``), and
  ``com.twilio.messaging.inbound-message.received`` to subscribed sinks.
- Outbound (``Messages.create`` or ``/_twin/simulate/message`` with ``direction: outbound``):
  the status moves ``queued → sent → delivered`` (or ``→ undelivered`` with the error code
  asked for); each step goes to the message's ``StatusCallback`` when it has one (the issue
  asks for ``queued`` too, which Twilio sends when a message is queued through a Messaging
  Service or API) and as ``com.twilio.messaging.message.<status>`` to subscribed sinks.

Parameters are those of shared/reference/twilio-webhooks.md §2-3: inbound carries the body,
status callbacks carry none; WhatsApp adds ``ProfileName``/``WaId`` inbound and
``ChannelPrefix``/``ChannelInstallSid`` on status; SMS delivery reports add ``RawDlrDoneDate``.
"""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from service.twin import eventstreams
from service.twin.listing import rfc2822
from service.twin.store import Json, Store, now_iso
from service.twin.webhooks_out import Sender

STEP_SECONDS = 0.05  # between two status changes of one message
ERRORS = {"30003": "Unreachable destination handset", "30005": "Unknown destination handset",
          "30006": "Landline or unreachable carrier", "30007": "Message filtered",
          "30008": "Unknown error"}


def _prefix(address: str) -> str | None:
    head, sep, _ = address.partition(":")
    return head if sep and head in ("whatsapp", "rcs") else None


def inbound_params(msg: Json) -> dict[str, str]:
    params = {"ToCountry": "US", "SmsMessageSid": msg["sid"], "NumMedia": msg["num_media"],
              "SmsSid": msg["sid"], "SmsStatus": "received", "Body": msg["body"],
              "To": msg["to"], "NumSegments": msg["num_segments"], "MessageSid": msg["sid"],
              "AccountSid": msg["account_sid"], "From": msg["from"], "ApiVersion": "2010-04-01",
              "FromCountry": "US"}
    if _prefix(msg["from"]) == "whatsapp":
        params["ProfileName"] = "Twin Customer"
        params["WaId"] = msg["from"].split(":", 1)[1].lstrip("+")
    return params


def status_params(msg: Json) -> dict[str, str]:
    status = msg["status"]
    params = {"SmsSid": msg["sid"], "SmsStatus": status, "MessageStatus": status,
              "To": msg["to"], "MessageSid": msg["sid"], "AccountSid": msg["account_sid"],
              "From": msg["from"], "ApiVersion": "2010-04-01"}
    prefix = _prefix(msg["from"]) or _prefix(msg["to"])
    if prefix:
        params["ChannelPrefix"] = prefix
        params["ChannelInstallSid"] = "XE" + msg["sid"][2:]
    elif status in ("delivered", "undelivered"):
        params["RawDlrDoneDate"] = datetime.now(UTC).strftime("%y%m%d%H%M")
    if msg.get("error_code"):
        params["ErrorCode"] = str(msg["error_code"])
    return params


def _event_data(msg: Json, inbound: bool) -> Json:
    data: Json = {"messageSid": msg["sid"], "timestamp": now_iso(),
                  "accountSid": msg["account_sid"], "from": msg["from"], "to": msg["to"],
                  "body": msg["body"], "numMedia": int(msg["num_media"])}
    if inbound:
        data["eventName"] = eventstreams.INBOUND_TYPE
        return data
    data.update(eventName=f"com.twilio.messaging.message.{msg['status']}",
                apiVersion="2010-04-01", messageStatus=msg["status"].upper(),
                numberOfSegments=int(msg["num_segments"]))
    if msg.get("status_callback"):
        data["statusCallBackUrl"] = msg["status_callback"]
    if msg.get("error_code"):
        data["errorCode"] = int(msg["error_code"])
    return data


async def inbound(sender: Sender, st: Store, msg: Json, number: Json) -> None:
    if number.get("sms_url"):
        await sender.form("incoming_message", number["sms_url"], inbound_params(msg),
                          number.get("sms_method") or "POST")
    await eventstreams.publish(sender, st, eventstreams.INBOUND_TYPE, msg["uri"],
                               _event_data(msg, True))


async def outbound(sender: Sender, st: Store, msg: Json, fail: str | None = None) -> None:
    steps: list[tuple[str, Any]] = [("queued", None), ("sent", None)]
    steps.append(("undelivered", fail) if fail else ("delivered", None))
    for i, (status, code) in enumerate(steps):
        if i:
            await asyncio.sleep(STEP_SECONDS)
        msg["status"] = status
        msg["date_updated"] = rfc2822()
        if code:
            msg["error_code"] = int(code)
            msg["error_message"] = ERRORS.get(code, "Message delivery failed")
        if msg.get("status_callback"):
            await sender.form("message_status", msg["status_callback"], status_params(msg),
                              "POST")
        await eventstreams.publish(sender, st, f"com.twilio.messaging.message.{status}",
                                   msg["uri"], _event_data(msg, False))
