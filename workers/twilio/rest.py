"""A twilio-python HTTP client that sends ``https://*.twilio.com`` traffic where threadline does.

``twilio.rest.Client(..., http_client=RebasingHttpClient(settings))`` behaves exactly like the
stock client except that every URL goes through :func:`workers.twilio.urls.rebase` — the same
mechanism ``THREADLINE_TWILIO_BASE_URL`` uses everywhere in threadline — so the library's own
requests reach the twin (or a proxy) unchanged. Without a base URL it is the stock client.
"""
from __future__ import annotations

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response

from workers.settings import Settings
from workers.twilio.urls import rebase


class RebasingHttpClient(TwilioHttpClient):
    def __init__(self, settings: Settings, **kwargs: object) -> None:
        kwargs.setdefault("timeout", settings.twilio_timeout)
        super().__init__(**kwargs)
        self.settings = settings

    def request(self, method: str, url: str, *args: object, **kwargs: object) -> Response:
        return super().request(method, rebase(self.settings, url), *args, **kwargs)
