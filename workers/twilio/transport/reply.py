"""What the V2Client and its callers read of an HTTP answer: httpx.Response's names, nothing more.

The sender (:mod:`.http11`, and the benchmark's aiohttp comparison, ``bench/aiohttp_sender.py``)
hands back a :class:`Reply`, so the client's rules read one shape whichever stack sent the request.
"""
from __future__ import annotations

import json
from typing import Any


class Headers(dict[str, str]):
    """Response headers, looked up case-insensitively (keys are stored lower-case; a repeated
    header's values are joined with ", ", as HTTP allows)."""

    __slots__ = ()

    def get(self, key: str, default: Any = None) -> Any:
        return dict.get(self, key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, key.lower())

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key.lower() if isinstance(key, str) else key)


class Reply:
    """One HTTP answer, read whole: status, headers, body bytes and the reason phrase."""

    __slots__ = ("status_code", "headers", "content", "reason_phrase")

    def __init__(self, status: int, headers: Any, content: bytes, reason: str) -> None:
        self.status_code, self.headers, self.content, self.reason_phrase = status, headers, content, reason

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")
