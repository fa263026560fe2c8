"""The engine's HTTP stack for Twilio: a lean HTTP/1.1 keep-alive client (:mod:`.http11`),
with aiohttp's (:mod:`.aiohttp_sender`) kept beside it as the measured comparison.

Both answer with a :class:`.reply.Reply` and raise httpx's error classes, whose meaning the
V2Client's rules rely on: connect failures are *not sent*, anything after the write *maybe
processed*. ``bench/httpstack.py`` measures them side by side.
"""
from __future__ import annotations

from workers.twilio.transport.aiohttp_sender import AiohttpSender
from workers.twilio.transport.http11 import Http11Sender, Sender
from workers.twilio.transport.reply import Headers, Reply

__all__ = ["AiohttpSender", "Headers", "Http11Sender", "Reply", "Sender"]
