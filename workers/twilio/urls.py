"""Where Twilio API calls go: ``https://{product}.twilio.com``, or ``THREADLINE_TWILIO_BASE_URL``.

One function decides it, so the twin (or a proxy) receives every call threadline makes.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from workers.foundations.settings import Settings

# Which Twilio host serves which path prefix.
_HOSTS = {"/v2/": "conversations", "/v1/Stores": "memory", "/v1/Services": "conversations",
          "/2010-04-01/": "api"}


def host_for(path: str) -> str:
    for prefix, product in _HOSTS.items():
        if path.startswith(prefix):
            return f"https://{product}.twilio.com"
    raise ValueError(f"no Twilio host serves {path!r}")


def api_url(settings: Settings, path: str) -> str:
    """The absolute URL of a Twilio API ``path`` (which starts with ``/``)."""
    base = settings.twilio_base_url or host_for(path)
    return base + path


def rebase(settings: Settings, url: str) -> str:
    """Rewrite an absolute ``https://*.twilio.com`` URL onto the base URL, when one is set."""
    if not settings.twilio_base_url:
        return url
    parts = urlsplit(url)
    if not parts.hostname or not parts.hostname.endswith("twilio.com"):
        return url
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    return settings.twilio_base_url + rest
