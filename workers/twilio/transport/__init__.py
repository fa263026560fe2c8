"""The engine's HTTP stack for Twilio: a lean HTTP/1.1 keep-alive client (:mod:`.http11`).

It answers with a :class:`.reply.Reply` and raises httpx's error classes, whose meaning the
V2Client's rules rely on: connect failures are *not sent*, anything after the write *maybe
processed*. ``bench/httpstack.py`` measures it side by side with the stacks it replaced
(aiohttp alone, kept in ``bench/aiohttp_sender.py`` as the comparison; httpx's API over it).
"""
from __future__ import annotations

from workers.twilio.transport.http11 import Http11Sender, Sender
from workers.twilio.transport.reply import Headers, Reply

__all__ = ["Headers", "Http11Sender", "Reply", "Sender"]
